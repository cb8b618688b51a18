"""The mirror task: drains ``tsdb_pending`` into the time-series store until stopped. IO.

One batch is one database transaction: take up to ``batch_size`` of the oldest pending entries
(locked, ``SKIP LOCKED`` on PostgreSQL, so several mirrors take disjoint batches), write their
points in one request, and only when the store accepted them delete the entries and commit. A
failed write rolls back: nothing is deleted, the mirror waits (exponential backoff between
``retry_min_s`` and ``retry_max_s``) and tries the same entries again, so an outage loses
nothing and the mirror catches up when the store is back. The ingest never waits for it.

A batch the store refuses as invalid (HTTP 400/413/422) is written point by point; points still
refused are dropped and counted (``rejected``), so one bad point cannot stall the queue. Readings
with nothing to write (a glucose HI/LO without a number) are dequeued and counted (``skipped``).

Lag: :attr:`TsdbMirror.stats` (pending entries, last success, consecutive failures), logged
when the mirror fails, recovers, and every ``lag_log_interval_s`` while entries are pending;
``GET /healthz`` shows the pending count and the age of the oldest pending reading.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from cloud.db.models import ReadingRow
from cloud.db.repositories.ingest import TsdbPendingRepository
from cloud.runtime import Clock, system_clock
from cloud.settings import TsdbSettings
from cloud.timeseries.backoff import backoff_s
from cloud.timeseries.points import MirrorReading, to_line
from cloud.timeseries.writer import (
    InfluxWriter,
    PointsRejectedError,
    PointWriter,
    TsdbUnavailableError,
)

__all__ = ["MirrorStats", "TsdbMirror", "mirror_reading"]

_LOGGER = logging.getLogger(__name__)


def mirror_reading(row: ReadingRow) -> MirrorReading:
    return MirrorReading(
        kind=row.kind,
        effective_at=row.effective_at,
        household_id=row.household_id,
        person_id=row.person_id,
        device_id=row.device_id,
        values={
            "glucose_mmol_l": row.glucose_mmol_l,
            "systolic_mmhg": row.systolic_mmhg,
            "diastolic_mmhg": row.diastolic_mmhg,
            "mean_arterial_mmhg": row.mean_arterial_mmhg,
            "pulse_bpm": row.pulse_bpm,
        },
    )


@dataclass
class MirrorStats:
    """Counters of one mirror since it started (read them from any thread)."""

    written: int = 0  # points the store accepted
    skipped: int = 0  # readings dequeued with nothing to write
    rejected: int = 0  # points the store refused as invalid, dropped
    batches: int = 0
    failures: int = 0  # consecutive failed attempts (0 when the last one worked)
    pending: int | None = None  # entries left after the last count
    last_success_at: datetime | None = None
    last_error: str | None = None  # an exception's type and HTTP status, never data


class TsdbMirror:
    """Copies pending readings to the time-series store, in a thread or called step by step."""

    def __init__(
        self,
        cfg: TsdbSettings,
        session_factory: sessionmaker[Session],
        *,
        writer: PointWriter | None = None,
        clock: Clock = system_clock,
        lag_log_interval_s: float = 60.0,
    ) -> None:
        self._cfg = cfg
        self._factory = session_factory
        self._writer: PointWriter = writer if writer is not None else InfluxWriter(cfg)
        self._clock = clock
        self._lag_log_interval_s = lag_log_interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.stats = MirrorStats()

    # --- one step -------------------------------------------------------------------------
    def drain_once(self) -> int:
        """Mirror one batch; the number of pending entries it settled (0: nothing pending).

        Raises :class:`TsdbUnavailableError` (nothing deleted) or SQLAlchemy's errors."""
        with self._factory() as session:
            repo = TsdbPendingRepository(session)
            batch = repo.next_batch(self._cfg.batch_size, skip_locked=True)
            if not batch:
                session.rollback()
                return 0
            lines: list[str] = []
            skipped = 0
            for _, row in batch:
                line = to_line(mirror_reading(row))
                if line is None:
                    skipped += 1
                else:
                    lines.append(line)
            written, rejected = self._write(lines)
            repo.delete([pending_id for pending_id, _ in batch])
            session.commit()
        self.stats.written += written
        self.stats.rejected += rejected
        self.stats.skipped += skipped
        self.stats.batches += 1
        self.stats.last_success_at = self._clock()
        return len(batch)

    def _write(self, lines: Sequence[str]) -> tuple[int, int]:
        """(written, rejected); raises TsdbUnavailableError when the store is not taking data."""
        try:
            self._writer.write(lines)
        except PointsRejectedError as exc:
            _LOGGER.warning(
                "tsdb mirror: the store refused a batch of %d point(s) (%s); writing them one "
                "by one",
                len(lines),
                exc,
            )
        else:
            return len(lines), 0
        written = rejected = 0
        for line in lines:
            try:
                self._writer.write([line])
            except PointsRejectedError:
                rejected += 1
            else:
                written += 1
        if rejected:
            _LOGGER.warning("tsdb mirror: dropped %d point(s) the store refused", rejected)
        return written, rejected

    def pending(self) -> int:
        with self._factory() as session:
            count = TsdbPendingRepository(session).count()
        self.stats.pending = count
        return count

    # --- the loop -------------------------------------------------------------------------
    def run(self, stop: threading.Event | None = None) -> None:
        """Mirror until ``stop`` (default: :meth:`stop`) is set."""
        stop = stop if stop is not None else self._stop
        interval_s = self._cfg.interval_ms / 1000
        last_lag_log = time.monotonic()
        while not stop.is_set():
            try:
                settled = self.drain_once()
            except (TsdbUnavailableError, SQLAlchemyError) as exc:
                self._failed(exc)
                stop.wait(self._delay())
                continue
            if self.stats.failures:
                _LOGGER.info(
                    "tsdb mirror: writing again after %d failed attempt(s)", self.stats.failures
                )
                self.stats.failures = 0
                self.stats.last_error = None
            now = time.monotonic()
            if now - last_lag_log >= self._lag_log_interval_s:
                last_lag_log = now
                self._log_lag()
            if settled < self._cfg.batch_size:
                stop.wait(interval_s)

    def _delay(self) -> float:
        low = self._cfg.retry_min_s
        return backoff_s(self.stats.failures, low, max(low, self._cfg.retry_max_s))

    def _failed(self, exc: Exception) -> None:
        self.stats.failures += 1
        what = "store" if isinstance(exc, TsdbUnavailableError) else "database"
        self.stats.last_error = f"{what}: {type(exc).__name__}: {exc}"[:200]
        if isinstance(exc, SQLAlchemyError):  # SQL text may hold ids; the type is enough
            self.stats.last_error = f"database: {type(exc).__name__}"
        try:
            self.pending()
        except SQLAlchemyError:
            pass
        log = (
            _LOGGER.warning
            if self.stats.failures in (1, 10) or not self.stats.failures % 100
            else _LOGGER.debug
        )
        log(
            "tsdb mirror: attempt %d failed (%s); %s entries pending; retrying in %.1f s",
            self.stats.failures,
            self.stats.last_error,
            "?" if self.stats.pending is None else self.stats.pending,
            self._delay(),
        )

    def _log_lag(self) -> None:
        try:
            pending = self.pending()
        except SQLAlchemyError:
            return
        if pending:
            _LOGGER.info(
                "tsdb mirror: %d entries pending, %d point(s) written, last write at %s",
                pending,
                self.stats.written,
                self.stats.last_success_at.isoformat() if self.stats.last_success_at else "never",
            )

    # --- as a thread ----------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("the mirror is already running")
        self._stop.clear()
        self._thread = threading.Thread(target=self.run, name="tsdb-mirror", daemon=True)
        self._thread.start()
        _LOGGER.info("tsdb mirror: started (%s)", self._cfg.url)

    def stop(self, timeout_s: float | None = None) -> None:
        """Stop the thread (if any) and close the writer."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout_s if timeout_s is not None else self._cfg.timeout_ms / 1000 + 5)
        self._writer.close()
