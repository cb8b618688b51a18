"""Per-device sync watermarks: where the next sync of a meter starts.

* Glucose meter: the last sequence number stored (RACP "report records greater than N").
* Blood-pressure cuff: cuffs have no sequence numbers and forget a reading once its indication is
  confirmed, so the watermark is only the newest measurement time seen (diagnostics, and a hint
  for the edge's dedupe after a restart).

A watermark is committed only **after** the readings of its sync are durably in the outbox
(:meth:`gateway.outbox.SqliteOutbox.add` fsyncs before returning) and only when none of them was
refused: a crash between the two commits makes the next sync fetch those readings again, which the
outbox ignores (idempotent on ``reading_id``). The reverse order could lose readings. Rows are
keyed by the enrolled Bluetooth address; ``device_key`` (System ID or serial) detects another
device answering at the same address, whose numbering then starts from scratch. IO (SQLite).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from gateway.state_db import StateTable

__all__ = ["Watermark", "WatermarkStore"]

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS sync_watermarks (
    address TEXT PRIMARY KEY,          -- enrolled Bluetooth address, upper case
    device_key TEXT,                   -- DeviceIdentity.key seen at the last sync
    glucose_seq INTEGER,               -- last stored glucose sequence number
    bp_last_measured_at REAL,          -- newest cuff measurement time stored (epoch s)
    updated_at REAL NOT NULL
);
"""


@dataclass(frozen=True, slots=True)
class Watermark:
    address: str
    device_key: str | None
    glucose_seq: int | None
    bp_last_measured_at: datetime | None
    updated_at: float

    def glucose_since(self, device_key: str | None) -> int | None:
        """The RACP start point for the device now answering with ``device_key`` (None: from
        the beginning). Another device at the same address starts from scratch."""
        if device_key is not None and self.device_key not in (None, device_key):
            return None
        return self.glucose_seq


class WatermarkStore(StateTable):
    """The ``sync_watermarks`` table of the outbox file. Thread-safe (one lock)."""

    SCHEMA = _SCHEMA

    def get(self, address: str) -> Watermark | None:
        with self._lock:
            row = self._db.execute(
                "SELECT address, device_key, glucose_seq, bp_last_measured_at, updated_at "
                "FROM sync_watermarks WHERE address = ?",
                (address.upper(),),
            ).fetchone()
        return None if row is None else _watermark(row)

    def all(self) -> list[Watermark]:
        with self._lock:
            rows = self._db.execute(
                "SELECT address, device_key, glucose_seq, bp_last_measured_at, updated_at "
                "FROM sync_watermarks ORDER BY address"
            ).fetchall()
        return [_watermark(row) for row in rows]

    def commit(
        self,
        address: str,
        *,
        device_key: str | None,
        glucose_seq: int | None = None,
        bp_last_measured_at: datetime | None = None,
    ) -> Watermark:
        """Store the watermark of a finished sync (call only once its readings are in the
        outbox). ``None`` keeps the stored value, except that a new ``device_key`` resets both."""
        key = address.upper()
        now = self._clock()
        measured = None if bp_last_measured_at is None else bp_last_measured_at.timestamp()
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                row = self._db.execute(
                    "SELECT device_key, glucose_seq, bp_last_measured_at FROM sync_watermarks "
                    "WHERE address = ?",
                    (key,),
                ).fetchone()
                old_key, old_seq, old_measured = row if row is not None else (None, None, None)
                if device_key is not None and old_key not in (None, device_key):
                    old_seq = old_measured = None  # another device answers at this address
                seq = glucose_seq if glucose_seq is not None else old_seq
                if measured is not None and old_measured is not None:
                    measured = max(measured, old_measured)
                elif measured is None:
                    measured = old_measured
                self._db.execute(
                    "INSERT INTO sync_watermarks "
                    "(address, device_key, glucose_seq, bp_last_measured_at, updated_at) "
                    "VALUES (?, ?, ?, ?, ?) ON CONFLICT(address) DO UPDATE SET "
                    "device_key = excluded.device_key, glucose_seq = excluded.glucose_seq, "
                    "bp_last_measured_at = excluded.bp_last_measured_at, "
                    "updated_at = excluded.updated_at",
                    (key, device_key or old_key, seq, measured, now),
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return Watermark(
            key,
            device_key or old_key,
            seq,
            None if measured is None else datetime.fromtimestamp(measured, UTC),
            now,
        )


def _watermark(row: tuple[str, str | None, int | None, float | None, float]) -> Watermark:
    address, device_key, seq, measured, updated = row
    return Watermark(
        address,
        device_key,
        seq,
        None if measured is None else datetime.fromtimestamp(measured, UTC),
        updated,
    )
