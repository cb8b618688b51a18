"""The cuff session journal: each blood-pressure reading stored the moment it arrives.

A cuff forgets a reading once its indication is confirmed, and a session's readings reach the
outbox only when the session ends (edge processing needs the whole session). So every reading is
first written here, synchronously, from the driver's per-reading hook
(:meth:`device_drivers.driver.BloodPressureDriver.collect` ``on_reading``): with bumble the
indication is confirmed only after the row is committed; with BlueZ the window shrinks to the
value's way from bluetoothd to us. The journal is drained through the normal ingest path
(:class:`gateway.ingest.ReadingIngest`: edge, outbox, alerts, watermark) at the end of the
session, after a session that failed or timed out, and at start-up after a crash. Rows are keyed
by ``reading_id`` (the reading's identity), so a reading the cuff sends again is one row, and the
outbox ignores what it already has: exactly once in the outbox whatever the crash point.

The table lives in the outbox file (:mod:`gateway.state_db`). Rows hold the reading as it came
from the driver, before the edge: :func:`encode_bp_reading` / :func:`decode_bp_reading` (pure).
IO (SQLite), one small commit per reading on the caller's thread (the event loop: on purpose,
the write must finish before the link callback returns).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any, Final

from device_drivers.model import BloodPressureReading, DeviceIdentity, DeviceKind, ReadingFlag
from gateway.contract import reading_id_for
from gateway.state_db import StateTable

__all__ = ["CuffJournal", "JournalEntry", "decode_bp_reading", "encode_bp_reading"]

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS cuff_journal (
    reading_id TEXT PRIMARY KEY,       -- contract.reading_id_for(reading.identity)
    address TEXT NOT NULL,             -- the session's Bluetooth address, upper case
    added_at REAL NOT NULL,
    payload TEXT NOT NULL              -- encode_bp_reading (JSON, before the edge)
);
CREATE INDEX IF NOT EXISTS cuff_journal_address ON cuff_journal (address, added_at);
"""

JournalEntry = tuple[str, str, BloodPressureReading]
"""(reading_id, address, reading)."""


def _time(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _parse(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def encode_bp_reading(reading: BloodPressureReading) -> str:
    """The reading as JSON (every field; times ISO 8601, naive device time stays naive)."""
    d = reading.device
    return json.dumps(
        {
            "device": {
                "address": d.address,
                "kind": d.kind.value,
                "system_id": d.system_id,
                "serial_number": d.serial_number,
                "model_number": d.model_number,
                "manufacturer": d.manufacturer,
            },
            "device_time": _time(reading.device_time),
            "measured_at": _time(reading.measured_at),
            "received_at": reading.received_at.isoformat(),
            "systolic_mmhg": reading.systolic_mmhg,
            "diastolic_mmhg": reading.diastolic_mmhg,
            "mean_arterial_mmhg": reading.mean_arterial_mmhg,
            "pulse_bpm": reading.pulse_bpm,
            "original_unit": reading.original_unit,
            "user_id": reading.user_id,
            "measurement_status": reading.measurement_status,
            "sequence_number": reading.sequence_number,
            "clock_skew_s": reading.clock_skew_s,
            "flags": sorted(f.value for f in reading.flags),
        },
        separators=(",", ":"),
        allow_nan=False,
    )


def decode_bp_reading(text: str) -> BloodPressureReading:
    """The inverse of :func:`encode_bp_reading`. Raises ValueError/KeyError on a bad row."""
    data: dict[str, Any] = json.loads(text)
    d = data["device"]
    received_at = _parse(data["received_at"])
    assert received_at is not None
    return BloodPressureReading(
        device=DeviceIdentity(
            address=d["address"],
            kind=DeviceKind(d["kind"]),
            system_id=d["system_id"],
            serial_number=d["serial_number"],
            model_number=d["model_number"],
            manufacturer=d["manufacturer"],
        ),
        device_time=_parse(data["device_time"]),
        measured_at=_parse(data["measured_at"]),
        received_at=received_at,
        systolic_mmhg=data["systolic_mmhg"],
        diastolic_mmhg=data["diastolic_mmhg"],
        mean_arterial_mmhg=data["mean_arterial_mmhg"],
        pulse_bpm=data["pulse_bpm"],
        original_unit=data["original_unit"],
        user_id=data["user_id"],
        measurement_status=data["measurement_status"],
        sequence_number=data["sequence_number"],
        clock_skew_s=data["clock_skew_s"],
        flags=frozenset(ReadingFlag(f) for f in data["flags"]),
    )


class CuffJournal(StateTable):
    """The ``cuff_journal`` table of the outbox file. Thread-safe (one lock)."""

    SCHEMA = _SCHEMA

    def add(self, address: str, reading: BloodPressureReading) -> str:
        """Store one reading durably (committed, ``synchronous=FULL``) before returning; a
        reading already journaled is left as it is. Returns its ``reading_id``."""
        reading_id = reading_id_for(reading.identity)
        payload = encode_bp_reading(reading)
        with self._lock:
            self._db.execute(
                "INSERT OR IGNORE INTO cuff_journal (reading_id, address, added_at, payload) "
                "VALUES (?, ?, ?, ?)",
                (reading_id, address.upper(), self._clock(), payload),
            )
        return reading_id

    def pending(self, address: str | None = None) -> list[JournalEntry]:
        """Journaled readings (of one address, or all), oldest first. A row that cannot be
        decoded (written by a future version) is skipped and kept."""
        sql = "SELECT reading_id, address, payload FROM cuff_journal"
        params: tuple[str, ...] = ()
        if address is not None:
            sql += " WHERE address = ?"
            params = (address.upper(),)
        with self._lock:
            rows = self._db.execute(sql + " ORDER BY added_at, rowid", params).fetchall()
        entries: list[JournalEntry] = []
        for reading_id, addr, payload in rows:
            try:
                entries.append((reading_id, addr, decode_bp_reading(payload)))
            except (ValueError, KeyError, TypeError, AssertionError):
                continue
        return entries

    def remove(self, reading_ids: Iterable[str]) -> int:
        """Forget readings that are now in the outbox (or can never be)."""
        ids = list(reading_ids)
        removed = 0
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for start in range(0, len(ids), 500):
                    chunk = ids[start : start + 500]
                    marks = ",".join("?" * len(chunk))
                    cur = self._db.execute(
                        f"DELETE FROM cuff_journal WHERE reading_id IN ({marks})",  # noqa: S608
                        chunk,
                    )
                    removed += cur.rowcount
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return removed

    def count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM cuff_journal").fetchone()[0])
