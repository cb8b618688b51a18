"""The durable event queue: one row per event id, bounded by dropping the oldest non-critical."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gateway import contract as c
from gateway.event_queue import EventQueue, is_critical


def event(event_id: str, kind: str, severity: str = "warning") -> c.EventMessage:
    return c.EventMessage(
        schema_version=c.SCHEMA_VERSION,
        gateway_id="gw-1",
        event_id=event_id,
        occurred_at=datetime(2026, 3, 1, tzinfo=UTC),
        type=kind,
        severity=severity,
        message_zh="测试",
        message_en="test",
    )


def test_full_queue_drops_the_oldest_non_critical_first(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    queue = EventQueue(tmp_path / "outbox.db", capacity=3)
    try:
        assert queue.add(event("e-u1", "urgent_reading")) == []
        assert queue.add(event("e-f1", "outbox_filling")) == []
        assert queue.add(event("e-f1", "outbox_filling")) == []  # same id: one row
        assert queue.add(event("e-c1", "config_rejected")) == []
        with caplog.at_level(logging.WARNING, logger="gateway.event_queue"):
            assert queue.add(event("e-u2", "urgent_reading")) == ["e-f1"]
            assert queue.add(event("e-d1", "device_failing", severity="critical")) == ["e-c1"]
            # only critical ones left: the oldest goes
            assert queue.add(event("e-u3", "urgent_reading")) == ["e-u1"]
        assert [e.event_id for e in queue.pending()] == ["e-u2", "e-d1", "e-u3"]
        assert [e.event_id for e in queue.pending({"e-u2"})] == ["e-d1", "e-u3"]
        assert "dropped the oldest outbox_filling event e-f1" in caplog.text
        assert c.decode_event(queue.pending()[0].payload).event_id == "e-u2"
        assert queue.remove(["e-u2", "e-nope"]) == 1
        assert queue.count() == 2
    finally:
        queue.close()


def test_critical_means_urgent_readings_and_critical_severity() -> None:
    assert is_critical(event("a", "urgent_reading"))
    assert is_critical(event("b", "device_failing", severity="critical"))
    assert not is_critical(event("c", "config_rejected"))
