"""bench/bench_gateway.py stays runnable: a tiny run (the real daemon syncing a simulated meter,
a small outbox replay, the bare publishers) writes every key bench/README.md promises, with
every reading delivered. Times nothing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.brokers import find_mosquitto

pytestmark = [pytest.mark.broker, pytest.mark.sim, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "bench" / "bench_gateway.py"
KEYS = {
    "peak_rss_mb_sync",
    "cpu_s_sync",
    "idle_rss_mb",
    "idle_cpu_pct",
    "replay_readings_per_s",
    "bare_publish_msgs_per_s",
    "reading_to_puback_ms_p50",
    "reading_to_puback_ms_p99",
    "commit",
    "load_avg_1m",
}


def test_a_tiny_run_writes_every_promised_key(tmp_path: Path) -> None:
    find_mosquitto()  # skips (fails under CI) without the broker
    out = tmp_path / "gateway.json"
    args = ["--records", "30", "--replay", "600", "--bare-single", "100", "--idle-seconds", "0.5"]
    proc = subprocess.run(
        [sys.executable, str(BENCH), *args, "--output", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert KEYS <= set(result), KEYS - set(result)
    daemon, replay = result["daemon"], result["replay"]
    assert daemon["readings_stored_by_cloud"] == daemon["latency_readings"] == 30
    assert daemon["daemon_exit_code"] == 0  # SIGTERM: a clean stop
    assert 0 < result["peak_rss_mb_sync"] < 1000
    assert 0 <= result["reading_to_puback_ms_p50"] <= result["reading_to_puback_ms_p99"]
    assert replay["acker_stored"] == 600 + replay["urgent_during_last_replay"]
    assert replay["publisher_stats"]["readings_acked"] == replay["acker_stored"]
    assert len(replay["replay_runs_s"]) == 3
    assert result["replay_readings_per_s"] > 0
    assert result["bare_publish_msgs_per_s"] > 0
    assert replay["standin_stored"] == 600 + replay["standin_urgent_during_replay"]
    assert replay["standin_duplicate_deliveries"] == 0
    assert result["replay_standin_readings_per_s"] > 0
    assert result["replay_to_broker_readings_per_s"] > 0
    assert "phase replay" in proc.stdout  # a progress line per phase
