"""The SQLite outbox (gateway/outbox.py, docs/mqtt.md "Outbox"): a real SQLite file per test."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
import pytest

from device_drivers.model import DeviceIdentity, DeviceKind, GlucoseReading
from gateway.contract import (
    ContractError,
    ReadingMessage,
    encode_reading,
    from_reading,
)
from gateway.outbox import FILL_LEVELS, OutboxError, RejectedReading, SqliteOutbox

T0 = datetime(2026, 3, 1, 7, 30, tzinfo=UTC)


def meter(n: int) -> DeviceIdentity:
    return DeviceIdentity(
        f"C0:00:00:00:00:{n:02X}", DeviceKind.GLUCOSE_METER, system_id=f"{n:016x}"
    )


def reading(seq: int, device: int = 1, *, mmol: float = 6.0) -> ReadingMessage:
    return from_reading(
        GlucoseReading(
            meter(device),
            seq,
            datetime(2026, 3, 1, 8, 0) + timedelta(minutes=seq),
            T0 + timedelta(minutes=seq),
            T0 + timedelta(minutes=seq),
            mmol,
            mmol / 1000,
            "mol/L",
        ),
        "p-1",
    )


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def outbox(tmp_path: Path, clock: Clock) -> Iterator[SqliteOutbox]:
    with SqliteOutbox(tmp_path / "outbox.db", capacity=100, urgent_reserve=5, clock=clock) as box:
        yield box


def drain(outbox: SqliteOutbox, max_n: int = 10) -> list[ReadingMessage]:
    out: list[ReadingMessage] = []
    while (batch := outbox.next_batch(max_n)) is not None:
        out.extend(batch.readings())
        outbox.ack(batch.reading_ids)
    return out


def test_readings_come_out_in_arrival_order_per_device(outbox: SqliteOutbox) -> None:
    outbox.add([reading(1, 1), reading(1, 2), reading(2, 1)])
    outbox.add([reading(2, 2), reading(3, 1)])
    got = drain(outbox, max_n=2)
    by_device: dict[str, list[int | None]] = {}
    for r in got:
        by_device.setdefault(r.device.key, []).append(r.sequence_number)
    assert by_device == {meter(1).key: [1, 2, 3], meter(2).key: [1, 2]}
    assert [r.sequence_number for r in got] == [1, 1, 2, 2, 3]
    assert outbox.depth() == 0


def test_add_is_idempotent_on_reading_id(outbox: SqliteOutbox) -> None:
    first = outbox.add([reading(1), reading(2)])
    again = outbox.add([reading(2), reading(3), reading(1)])
    assert first.added == (reading(1).reading_id, reading(2).reading_id)
    assert again.added == (reading(3).reading_id,)
    assert set(again.duplicates) == {reading(1).reading_id, reading(2).reading_id}
    assert again.stored == {reading(i).reading_id for i in (1, 2, 3)}
    assert outbox.depth() == 3
    assert len(drain(outbox)) == 3


def test_a_batch_is_in_flight_until_the_cloud_acks_it_not_on_puback(outbox: SqliteOutbox) -> None:
    outbox.add([reading(i) for i in range(5)])
    batch = outbox.next_batch(3)
    assert batch is not None
    assert batch.reading_ids == tuple(reading(i).reading_id for i in range(3))
    assert not batch.urgent
    assert outbox.in_flight_ids(batch.message_id) == batch.reading_ids
    assert outbox.mark_published([batch.message_id]) == 3
    stats = outbox.stats()
    assert (stats.pending, stats.in_flight, stats.depth) == (2, 3, 5)
    # a second batch does not hand out in-flight readings again
    second = outbox.next_batch(10)
    assert second is not None
    assert second.reading_ids == (reading(3).reading_id, reading(4).reading_id)
    assert second.message_id != batch.message_id
    assert outbox.next_batch(10) is None
    # the ack removes exactly what it names; unknown and repeated ids are harmless
    assert outbox.ack([*batch.reading_ids[:2], "0" * 32]) == 2
    assert outbox.ack(batch.reading_ids[:2]) == 0
    assert outbox.depth() == 3


def test_unacked_readings_are_requeued_and_replayed(outbox: SqliteOutbox, clock: Clock) -> None:
    outbox.add([reading(i) for i in range(4)])
    old = outbox.next_batch(2)
    clock.now += 100
    new = outbox.next_batch(2)
    assert old is not None
    assert new is not None
    assert outbox.requeue_unacked(older_than=clock.now - 50) == 2  # only the old batch
    replay = outbox.next_batch(10)
    assert replay is not None
    assert replay.reading_ids == old.reading_ids  # back in their original order
    assert outbox.requeue_unacked() == 4  # after a reconnect: everything in flight
    assert outbox.stats().pending == 4
    # an ack for a replayed reading still removes it, whichever message carried it
    assert outbox.ack(old.reading_ids) == 2
    assert [r.sequence_number for r in drain(outbox)] == [2, 3]


def test_urgent_readings_jump_the_queue_and_travel_alone(outbox: SqliteOutbox) -> None:
    outbox.add([reading(i) for i in range(5)])
    outbox.add([reading(50, mmol=2.5)], urgent=True)
    outbox.add([msgspec.structs.replace(reading(51, mmol=2.4), urgent=True)])  # urgent by message
    first = outbox.next_batch(10)
    assert first is not None
    assert first.urgent
    assert first.reading_ids == (reading(50).reading_id, reading(51).reading_id)
    assert outbox.next_batch(10, urgent_only=True) is None
    rest = outbox.next_batch(10)
    assert rest is not None
    assert not rest.urgent
    assert len(rest.reading_ids) == 5


def test_a_known_reading_added_again_as_urgent_becomes_urgent(outbox: SqliteOutbox) -> None:
    outbox.add([reading(1), reading(2)])
    result = outbox.add([reading(2)], urgent=True)
    assert result.duplicates == (reading(2).reading_id,)
    batch = outbox.next_batch(10, urgent_only=True)
    assert batch is not None
    assert batch.reading_ids == (reading(2).reading_id,)


def test_full_outbox_refuses_new_readings_and_never_drops_stored_ones(tmp_path: Path) -> None:
    box = SqliteOutbox(tmp_path / "o.db", capacity=10, urgent_reserve=2)
    first = box.add([reading(i) for i in range(7)])
    assert first.warnings == ()
    second = box.add([reading(i) for i in range(7, 9)])
    assert [w.level for w in second.warnings] == [FILL_LEVELS[0]]  # 8 of 10: 80 %
    third = box.add([reading(i) for i in range(9, 13)])
    assert third.added == (reading(9).reading_id,)
    assert third.refused == tuple(reading(i).reading_id for i in range(10, 13))
    assert [w.level for w in third.warnings] == [FILL_LEVELS[1], 1.0]  # 95 %, then refusing
    assert third.warnings[-1].full
    # a duplicate of a stored reading is still recognised when full (not refused)
    assert box.add([reading(0)]).duplicates == (reading(0).reading_id,)
    # urgent readings still get in, up to the reserve
    urgent = box.add([reading(20, mmol=2.0), reading(21, mmol=2.0), reading(22)], urgent=True)
    assert len(urgent.added) == 2
    assert urgent.refused == (reading(22).reading_id,)
    stats = box.stats()
    assert stats.depth == 12
    assert stats.refused_total == 4
    assert stats.urgent_pending == 2
    # everything stored is still there, in order; draining re-arms the warnings
    out = drain(box, max_n=4)
    assert [r.sequence_number for r in out] == [20, 21, *range(10)]
    again = box.add([reading(i) for i in range(100, 109)])
    assert [w.level for w in again.warnings] == [FILL_LEVELS[0]]
    box.close()


def test_rejected_readings_are_kept_aside_and_retryable_ones_return(outbox: SqliteOutbox) -> None:
    outbox.add([reading(1), reading(2), reading(3)])
    batch = outbox.next_batch(10)
    assert batch is not None
    moved = outbox.reject(
        [
            RejectedReading(reading(1).reading_id, "unsupported_kind", "no"),
            RejectedReading(reading(2).reading_id, "db_busy", retryable=True),
        ]
    )
    assert moved == 1
    assert outbox.rejected_readings() == [
        RejectedReading(reading(1).reading_id, "unsupported_kind", "no")
    ]
    stats = outbox.stats()
    assert (stats.pending, stats.in_flight, stats.rejected) == (1, 1, 1)
    assert outbox.depth() == 2


def test_reopening_the_file_keeps_readings_and_makes_every_one_pending(
    tmp_path: Path, clock: Clock
) -> None:
    path = tmp_path / "o.db"
    box = SqliteOutbox(path, clock=clock)
    box.add([reading(i) for i in range(6)])
    box.add([reading(99, mmol=2.0)], urgent=True)
    in_flight = box.next_batch(1)  # the urgent one
    assert in_flight is not None
    acked = box.next_batch(2)
    assert acked is not None
    box.ack(acked.reading_ids)
    box.reject([RejectedReading(reading(2).reading_id, "invalid")])
    box.close()

    # in-flight state is memory only: a new process sends it again (the cloud dedupes)
    reopened = SqliteOutbox(path, clock=clock)
    stats = reopened.stats()
    assert (stats.pending, stats.in_flight, stats.rejected) == (4, 0, 1)
    assert stats.urgent_pending == 1
    assert reopened.depth() == 4
    assert reopened.in_flight_ids(in_flight.message_id) == ()
    assert reopened.requeue_unacked() == 0
    assert [r.sequence_number for r in drain(reopened)] == [99, 3, 4, 5]
    reopened.close()


def segments_on_disk(path: Path) -> dict[str, int]:
    with sqlite3.connect(path) as other:
        names = [
            row[0]
            for row in other.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name GLOB 'readings_*'"
            )
        ]
        return {
            name: int(other.execute(f"SELECT COUNT(*) FROM {name}").fetchone()[0]) for name in names
        }


def test_acked_readings_leave_the_file_with_their_whole_segment(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    box = SqliteOutbox(path, segment_rows=4, flush_age_s=1_000)
    box.add([reading(i) for i in range(10)])
    assert segments_on_disk(path) == {"readings_1": 4, "readings_2": 4, "readings_3": 2}
    first = box.next_batch(3)
    assert first is not None
    assert box.ack(first.reading_ids) == 3
    assert box.depth() == 7  # gone for the outbox, still on disk
    assert sum(segments_on_disk(path).values()) == 10
    second = box.next_batch(2)
    assert second is not None
    assert second.reading_ids == (reading(3).reading_id, reading(4).reading_id)  # never again
    assert box.ack(second.reading_ids) == 2  # segment 1 all acked: dropped whole at the tick
    assert segments_on_disk(path) == {"readings_1": 4, "readings_2": 4, "readings_3": 2}
    assert box.flush_due() == 0  # no row deleted one by one
    assert segments_on_disk(path) == {"readings_2": 4, "readings_3": 2}
    box.flush_age_s = 0.0  # a segment that does not drain: its acked rows go one by one
    assert box.flush_due() == 1
    assert segments_on_disk(path) == {"readings_2": 3, "readings_3": 2}
    assert [r.sequence_number for r in drain(box)] == [5, 6, 7, 8, 9]
    assert box.depth() == 0
    box.flush_due()
    assert segments_on_disk(path) == {"readings_3": 0}  # the newest is emptied, kept
    box.add([reading(20)])
    assert segments_on_disk(path) == {"readings_3": 1}
    box.close()
    reopened = SqliteOutbox(path, segment_rows=4)
    assert [r.sequence_number for r in drain(reopened)] == [20]
    reopened.close()


def test_acks_of_readings_sent_by_a_previous_process_remove_them(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    box = SqliteOutbox(path)
    box.add([reading(i) for i in range(4)])
    batch = box.next_batch(4)
    assert batch is not None
    box.close()
    reopened = SqliteOutbox(path)  # the acks waited at the broker for the new session
    assert reopened.ack(batch.reading_ids[:2]) == 2
    assert reopened.ack(batch.reading_ids[:2]) == 0
    assert [r.sequence_number for r in drain(reopened)] == [2, 3]
    reopened.close()


_KILLED_AFTER_ACK = """
import os, signal, sys
sys.path.insert(0, sys.argv[2])
from tests.unit.test_outbox import reading
from gateway.outbox import SqliteOutbox
box = SqliteOutbox(sys.argv[1])
box.add([reading(i) for i in range(5)])
batch = box.next_batch(3)
assert box.ack(batch.reading_ids) == 3 and box.depth() == 2
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_killed_after_acks_before_the_bulk_delete_replays_those_readings(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run(
        [sys.executable, "-c", _KILLED_AFTER_ACK, str(path), str(root)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    reopened = SqliteOutbox(path)
    assert reopened.depth() == 5  # the acked three are sent again: duplicates for the cloud
    assert [r.sequence_number for r in drain(reopened)] == [0, 1, 2, 3, 4]
    reopened.close()


_V1_SCHEMA = """
CREATE TABLE readings (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, reading_id TEXT NOT NULL UNIQUE,
    device_key TEXT NOT NULL, urgent INTEGER NOT NULL, state INTEGER NOT NULL DEFAULT 0,
    message_id TEXT, sent_at REAL, puback_at REAL, attempts INTEGER NOT NULL DEFAULT 0,
    added_at REAL NOT NULL, payload BLOB NOT NULL
);
CREATE INDEX readings_pending ON readings (urgent, seq) WHERE state = 0;
CREATE INDEX readings_in_flight ON readings (sent_at) WHERE state = 1;
CREATE INDEX readings_message ON readings (message_id) WHERE state = 1;
CREATE TABLE rejected (
    reading_id TEXT PRIMARY KEY, device_key TEXT NOT NULL, reason TEXT NOT NULL,
    detail TEXT NOT NULL, rejected_at REAL NOT NULL, payload BLOB NOT NULL
);
CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
PRAGMA user_version=1;
"""


def test_a_schema_1_file_opens_with_its_readings_all_pending(tmp_path: Path) -> None:
    path = tmp_path / "v1.db"
    with sqlite3.connect(path) as db:
        db.executescript(_V1_SCHEMA)
        for i, (urgent, state) in enumerate([(0, 1), (0, 0), (1, 1), (0, 0)]):
            r = reading(i, mmol=2.0 if urgent else 6.0)
            db.execute(
                "INSERT INTO readings (reading_id, device_key, urgent, state, message_id,"
                " added_at, payload) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    r.reading_id,
                    r.device.key,
                    urgent,
                    state,
                    "m-old" if state else None,
                    1.0,
                    encode_reading(r),
                ),
            )
        db.execute("INSERT INTO counters VALUES ('refused_total', 7)")
    box = SqliteOutbox(path)
    stats = box.stats()
    assert (stats.pending, stats.in_flight, stats.urgent_pending) == (4, 0, 1)
    assert stats.refused_total == 7
    assert box.add([reading(1)]).duplicates == (reading(1).reading_id,)
    assert box.add([reading(4)]).added == (reading(4).reading_id,)
    assert [r.sequence_number for r in drain(box)] == [2, 0, 1, 3, 4]
    box.close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == 2
        indexes = {
            row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'index'")
        }
        assert "readings_pending" not in indexes
        assert "readings_0_urgent" in indexes  # the v1 table is segment 0


def test_a_crash_between_reserve_and_ack_loses_nothing(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    box = SqliteOutbox(path)
    box.add([reading(i) for i in range(3)])
    assert box.next_batch(10) is not None
    # no close(): the process "dies" with the connection open
    del box
    reopened = SqliteOutbox(path)
    assert [r.sequence_number for r in drain(reopened)] == [0, 1, 2]
    reopened.close()


def test_file_is_in_wal_mode_and_adds_are_synchronous_full(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    box = SqliteOutbox(path)
    box.add([reading(1)])
    with sqlite3.connect(path) as other:
        assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert box._db.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL between adds
    box.close()


def test_a_reading_the_wire_cannot_carry_is_refused_before_storing(outbox: SqliteOutbox) -> None:
    bad = msgspec.structs.replace(reading(1), person_ref="p" * 500)
    with pytest.raises(ContractError):
        outbox.add([reading(2), bad])
    assert outbox.depth() == 0


def test_a_file_from_a_newer_gateway_or_garbage_is_refused_not_recreated(tmp_path: Path) -> None:
    newer = tmp_path / "newer.db"
    with sqlite3.connect(newer) as db:
        db.execute("PRAGMA user_version=99")
    with pytest.raises(OutboxError) as err:
        SqliteOutbox(newer)
    assert err.value.path == newer
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not a database" * 100)
    with pytest.raises(OutboxError):
        SqliteOutbox(garbage)
    assert garbage.read_bytes() == b"this is not a database" * 100


def test_big_acks_and_batches_cross_the_sql_variable_limit(tmp_path: Path) -> None:
    box = SqliteOutbox(tmp_path / "o.db", capacity=5_000)
    box.add([reading(i) for i in range(1_200)])
    batch = box.next_batch(1_200)
    assert batch is not None
    assert len(batch.reading_ids) == 1_200
    assert box.ack(batch.reading_ids) == 1_200
    assert box.depth() == 0
    box.close()


def test_requeue_can_be_limited_to_what_the_broker_acknowledged(outbox: SqliteOutbox) -> None:
    outbox.add([reading(i) for i in range(4)])
    published = outbox.next_batch(2)
    unpublished = outbox.next_batch(2)
    assert published is not None
    assert unpublished is not None
    outbox.mark_published([published.message_id])
    assert outbox.requeue_unacked(published_only=True) == 2
    assert outbox.in_flight_ids(unpublished.message_id) == unpublished.reading_ids


def test_fill_warnings_become_loud_events(tmp_path: Path) -> None:
    box = SqliteOutbox(tmp_path / "o.db", capacity=10, urgent_reserve=0)
    result = box.add([reading(i) for i in range(12)])
    events = [w.to_event("gw-1", T0, f"e-{n}") for n, w in enumerate(result.warnings)]
    assert [e.type for e in events] == ["outbox_filling", "outbox_filling", "outbox_full"]
    assert [e.severity for e in events] == ["warning", "critical", "critical"]
    assert events[-1].detail == {"depth": 10, "capacity": 10, "level": 1.0}
    assert all(e.message_zh and e.message_en for e in events)
    box.close()


def test_urgent_readings_can_be_taken_one_per_message(outbox: SqliteOutbox) -> None:
    outbox.add([reading(1), reading(2)])
    outbox.add([reading(50, mmol=2.5), reading(51, mmol=2.4)], urgent=True)
    sizes = []
    while (batch := outbox.next_batch(10, max_urgent=1)) is not None:
        sizes.append((len(batch.reading_ids), batch.urgent))
    assert sizes == [(1, True), (1, True), (2, False)]


def _mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def test_a_new_outbox_and_its_wal_are_readable_by_the_gateways_user_only(tmp_path: Path) -> None:
    path = tmp_path / "new-dir" / "outbox.db"
    with SqliteOutbox(path) as box:
        box.add([reading(1)])
        files = [path, Path(f"{path}-wal"), Path(f"{path}-shm")]
        assert all(f.exists() for f in files)
        assert [_mode(f) for f in files] == [0o600, 0o600, 0o600]
    assert _mode(path.parent) == 0o700


def test_an_outbox_open_to_others_is_tightened_and_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "outbox.db"
    with SqliteOutbox(path) as box:
        box.add([reading(1)])
    for f in (path, Path(f"{path}-wal")):
        if f.exists():
            f.chmod(0o644)
    with caplog.at_level("WARNING", logger="gateway.outbox"), SqliteOutbox(path) as box:
        assert box.depth() == 1
    assert _mode(path) == 0o600
    assert all(_mode(f) == 0o600 for f in tmp_path.glob("outbox.db-*"))
    assert "now 0600" in caplog.text
