"""Sync watermarks beside the outbox, and the supervisor's backoff (pure)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from gateway.outbox import SqliteOutbox
from gateway.supervisor import backoff_delay
from gateway.watermarks import WatermarkStore

T1 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
T2 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def test_watermarks_live_in_the_outbox_file_and_survive_reopening(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    outbox = SqliteOutbox(path)
    store = WatermarkStore(path)
    assert store.get("f0:5a:4a:00:00:01") is None
    store.commit("f0:5a:4a:00:00:01", device_key="sysid:aa", glucose_seq=41)
    store.commit("F0:5A:4A:00:00:02", device_key="sysid:bb", bp_last_measured_at=T2)
    store.commit("F0:5A:4A:00:00:02", device_key="sysid:bb", bp_last_measured_at=T1)
    store.close()
    outbox.close()
    reopened = WatermarkStore(path)
    meter = reopened.get("F0:5A:4A:00:00:01")
    assert meter is not None
    assert (meter.device_key, meter.glucose_seq) == ("sysid:aa", 41)
    cuff = reopened.get("f0:5a:4a:00:00:02")
    assert cuff is not None
    assert cuff.bp_last_measured_at == T2  # never moves backwards
    assert [w.address for w in reopened.all()] == ["F0:5A:4A:00:00:01", "F0:5A:4A:00:00:02"]
    # the outbox still opens the file (its schema version untouched)
    SqliteOutbox(path).close()
    reopened.close()


def test_none_keeps_the_sequence_and_another_device_resets_it(tmp_path: Path) -> None:
    store = WatermarkStore(tmp_path / "outbox.db")
    store.commit("A", device_key="sysid:aa", glucose_seq=10)
    kept = store.commit("A", device_key="sysid:aa", glucose_seq=None)
    assert kept.glucose_seq == 10
    assert kept.glucose_since("sysid:aa") == 10
    assert kept.glucose_since("sysid:other") is None  # another meter at the same address
    reset = store.commit("A", device_key="sysid:other", glucose_seq=None)
    assert reset.glucose_seq is None
    assert reset.device_key == "sysid:other"
    store.close()


@pytest.mark.parametrize(
    ("retryable", "hint", "n", "expected"),
    [
        (True, 0.25, 1, 1.0),  # at least a second
        (True, 4.0, 1, 4.0),
        (True, 4.0, 3, 16.0),
        (True, 4.0, 10, 900.0),  # capped
        (True, 1.0, 10_000, 900.0),  # no overflow
        (False, 0.0, 1, 900.0),  # a person must act (pairing refused)
    ],
)
def test_backoff(retryable: bool, hint: float, n: int, expected: float) -> None:
    assert backoff_delay(retryable, hint, n, 900.0) == expected
