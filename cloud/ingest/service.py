"""Running ingest workers in one process until told to stop: what `anjia cloud ingest` does.

With the workers runs the :class:`~cloud.ingest.config_push.ConfigPusher`, which keeps every
gateway's retained config message current, and, when ``tsdb.enabled``, the time-series mirror
(:class:`~cloud.timeseries.mirror.TsdbMirror`), which drains ``tsdb_pending`` into InfluxDB.

Each worker has its own MQTT client on the shared subscription and its own writer thread; the
database engine is shared. Several workers in one process overlap database round trips; for more
CPU, run the command several times (one process per core: the shared subscription splits the load
between all of them). IO, thin.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING

from cloud.ingest.config_push import ConfigPusher
from cloud.ingest.hook import AlertHook
from cloud.ingest.worker import IngestWorker
from cloud.runtime import Runtime

if TYPE_CHECKING:
    from cloud.timeseries.mirror import TsdbMirror

__all__ = ["IngestService"]

_LOGGER = logging.getLogger(__name__)


class IngestService:
    """``workers`` ingest workers sharing the runtime's database engine."""

    def __init__(
        self,
        runtime: Runtime,
        *,
        workers: int | None = None,
        hook: AlertHook | None = None,
        name: str | None = None,
        push_config: bool = True,
        run_mirror: bool = True,
    ) -> None:
        cfg = runtime.settings.mqtt
        count = workers if workers is not None else cfg.workers
        if count < 1:
            raise ValueError("workers must be >= 1")
        mirror = runtime.settings.tsdb.enabled
        self.workers: Sequence[IngestWorker] = tuple(
            IngestWorker(
                cfg,
                runtime.session_factory,
                clock=runtime.clock,
                hook=hook,
                mirror=mirror,
                index=index,
                client_id=f"{name}-{index}" if name else None,
            )
            for index in range(count)
        )
        self.config_pusher = (
            ConfigPusher(
                cfg,
                runtime.session_factory,
                clock=runtime.clock,
                client_id=f"{name}-config" if name else None,
            )
            if push_config
            else None
        )
        self.tsdb_mirror: TsdbMirror | None = None
        if mirror and run_mirror:
            from cloud.timeseries.mirror import TsdbMirror  # influxdb-client only when enabled

            self.tsdb_mirror = TsdbMirror(
                runtime.settings.tsdb, runtime.session_factory, clock=runtime.clock
            )

    def start(self, ready_timeout_s: float = 10.0) -> bool:
        """Start every worker; True when all subscribed within ``ready_timeout_s``."""
        for worker in self.workers:
            worker.start()
        if self.config_pusher is not None:
            self.config_pusher.start()
        if self.tsdb_mirror is not None:
            self.tsdb_mirror.start()
        ready = all(worker.wait_ready(ready_timeout_s) for worker in self.workers)
        if ready:
            _LOGGER.info("ingest: %d worker(s) subscribed", len(self.workers))
        else:
            _LOGGER.warning("ingest: not every worker subscribed yet (broker unreachable?)")
        return ready

    def run_until(self, stop: threading.Event) -> None:
        stop.wait()
        self.stop()

    def stop(self) -> None:
        if self.config_pusher is not None:
            self.config_pusher.stop()
        if self.tsdb_mirror is not None:
            self.tsdb_mirror.stop()
        for worker in self.workers:
            worker.stop()
        received = sum(w.stats.received for w in self.workers)
        _LOGGER.info("ingest stopped after %d message(s)", received)
