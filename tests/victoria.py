"""A real VictoriaMetrics server for the time-series mirror tests (Debian's ``victoria-metrics``).

It listens on a free loopback port with a temporary ``-storageDataPath`` and is stopped by the
fixture that started it; ``stop()`` then ``start()`` again reuses the port and the data (an
outage). VictoriaMetrics accepts the InfluxDB v2 write API (``/api/v2/write``, org and bucket
ignored) and names each series ``<measurement>_<field>``. Flags: a retention of 100 years (the
test readings are dated 2026-03, older than the default month), deduplication of samples with
the same series and timestamp (as in production, docs/deployment.md), no search latency offset.

Without the binary the fixture skips, except under CI (``CI=true``), where it fails:
``.ci/system-deps.sh`` installs the package.
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.brokers import find_system_binary, free_port, stop_process, wait_for_port

VM_CANDIDATES = ("victoria-metrics", "/usr/bin/victoria-metrics", "/usr/local/bin/victoria-metrics")


def find_victoria_metrics() -> str:
    return find_system_binary(VM_CANDIDATES, "victoria-metrics", "time-series")


@dataclass
class VictoriaMetrics:
    workdir: Path
    port: int = field(default_factory=free_port)
    binary: str = field(default_factory=find_victoria_metrics)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        if self.proc is not None:
            raise RuntimeError("already running")
        self.workdir.mkdir(parents=True, exist_ok=True)
        log = (self.workdir / "victoria-metrics.log").open("ab")
        self.proc = subprocess.Popen(
            [
                self.binary,
                f"-httpListenAddr=127.0.0.1:{self.port}",
                f"-storageDataPath={self.workdir / 'data'}",
                "-retentionPeriod=100y",
                "-dedup.minScrapeInterval=1ms",
                "-search.latencyOffset=0s",
                "-loggerLevel=WARN",
            ],
            stdout=log,
            stderr=log,
        )
        log.close()
        try:
            wait_for_port(self.port, 20.0, proc=self.proc)
            self._wait_healthy()
        except Exception:
            self.stop()
            raise

    def _wait_healthy(self, timeout_s: float = 20.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=1) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.05)
        raise TimeoutError("victoria-metrics did not become healthy")

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None:
            stop_process(proc, timeout_s=10)

    def log(self) -> str:
        path = self.workdir / "victoria-metrics.log"
        return path.read_text(errors="replace") if path.exists() else ""

    # --- reading back ---------------------------------------------------------------------
    def flush(self) -> None:
        """Make freshly written samples searchable (``/internal/force_flush``)."""
        with urllib.request.urlopen(f"{self.url}/internal/force_flush", timeout=10):
            pass

    def export(self, match: str = '{__name__=~".+"}') -> list[dict[str, Any]]:
        """Every series matching ``match`` with its raw samples (``/api/v1/export``), after a
        flush: ``[{"metric": {...labels}, "values": [...], "timestamps": [...]}, ...]``."""
        self.flush()
        query = urllib.parse.urlencode({"match[]": match, "start": "0"})
        with urllib.request.urlopen(f"{self.url}/api/v1/export?{query}", timeout=10) as response:
            body = response.read().decode()
        return [json.loads(line) for line in body.splitlines() if line.strip()]

    def samples(self, match: str = '{__name__=~".+"}') -> dict[tuple[str, str], list[float]]:
        """(metric name, person label or "") -> values ordered by timestamp."""
        result: dict[tuple[str, str], list[float]] = {}
        for series in self.export(match):
            key = (series["metric"]["__name__"], series["metric"].get("person", ""))
            pairs = sorted(zip(series["timestamps"], series["values"], strict=True))
            result.setdefault(key, []).extend(v for _, v in pairs)
        return result


@pytest.fixture
def victoria_metrics(tmp_path: Path) -> Iterator[VictoriaMetrics]:
    """A started VictoriaMetrics on a free loopback port with its own data directory."""
    server = VictoriaMetrics(tmp_path / "victoria-metrics")
    server.start()
    yield server
    server.stop()
