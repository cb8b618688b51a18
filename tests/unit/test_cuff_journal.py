"""The cuff journal: a reading survives the round trip through its row, once per identity."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from device_drivers.model import BloodPressureReading, DeviceIdentity, DeviceKind, ReadingFlag
from gateway.contract import reading_id_for
from gateway.cuff_journal import CuffJournal, decode_bp_reading, encode_bp_reading
from gateway.outbox import SqliteOutbox

CUFF = DeviceIdentity(
    "F0:5A:4A:00:00:02",
    DeviceKind.BLOOD_PRESSURE_MONITOR,
    system_id="0123456789abcdef",
    serial_number="BP-7",
    model_number="M1",
    manufacturer="Anjia",
)


def reading(systolic: float, minute: int = 0) -> BloodPressureReading:
    return BloodPressureReading(
        device=CUFF,
        device_time=datetime(2026, 3, 1, 7, minute),  # naive, as the cuff said
        measured_at=datetime(2026, 2, 28, 23, minute, tzinfo=UTC),
        received_at=datetime(2026, 3, 1, 0, 5, 30, 123456, tzinfo=UTC),
        systolic_mmhg=systolic,
        diastolic_mmhg=82.5,
        mean_arterial_mmhg=None,
        pulse_bpm=71.0,
        original_unit="kPa",
        user_id=2,
        measurement_status=0x0004,
        clock_skew_s=-12.5,
        flags=frozenset({ReadingFlag.HIGH_OUT_OF_RANGE}),
    )


def test_a_reading_round_trips_through_its_row_exactly() -> None:
    original = reading(141.0)
    decoded = decode_bp_reading(encode_bp_reading(original))
    assert decoded == original
    assert decoded.device_time is not None
    assert decoded.device_time.tzinfo is None
    assert decoded.identity == original.identity


def test_one_row_per_identity_oldest_first_and_removed_when_stored(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    with SqliteOutbox(path):  # the outbox creates and checks the file first, as in the daemon
        pass
    ticks = iter(range(100))
    journal = CuffJournal(path, clock=lambda: float(next(ticks)))
    try:
        first = journal.add("f0:5a:4a:00:00:02", reading(141.0, 1))
        second = journal.add("F0:5A:4A:00:00:02", reading(150.0, 2))
        assert journal.add("F0:5A:4A:00:00:02", reading(141.0, 1)) == first  # resent: one row
        assert first == reading_id_for(reading(141.0, 1).identity)
        assert journal.count() == 2
        entries = journal.pending("F0:5A:4A:00:00:02")
        assert [(e[0], e[1]) for e in entries] == [
            (first, "F0:5A:4A:00:00:02"),
            (second, "F0:5A:4A:00:00:02"),
        ]
        assert entries[1][2] == reading(150.0, 2)
        assert journal.pending("F0:5A:4A:00:00:09") == []
        assert journal.remove([first, "r-unknown"]) == 1
        assert [e[0] for e in journal.pending()] == [second]
    finally:
        journal.close()
    reopened = CuffJournal(path)  # durable: another connection sees it
    try:
        assert reopened.count() == 1
    finally:
        reopened.close()
