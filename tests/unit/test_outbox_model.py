"""The outbox against a model (hypothesis, stateful): any sequence of adds, batches, acks (whole
messages, parts, several messages at once, repeats, strangers), rejections, requeues, ticks and
restarts keeps every reading exactly where the model says, and a final drain hands out each
stored reading once, in order. Small segments, so that batches and acks cross them."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Literal

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from gateway.outbox import RejectedReading, SqliteOutbox
from tests.unit.test_outbox import reading

State = Literal["pending", "in_flight", "acked", "rejected"]


class OutboxModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="anjia-outbox-model-"))
        self.box = self._open()
        self.next_seq = 0
        self.order: list[str] = []  # every reading id, in the order it was added
        self.seq_of: dict[str, int] = {}
        self.state: dict[str, State] = {}
        self.urgent: set[str] = set()
        self.message_of: dict[str, str] = {}  # in flight: under which message

    def _open(self) -> SqliteOutbox:
        return SqliteOutbox(self.dir / "o.db", segment_rows=3, flush_age_s=0.0)

    def _ids(self, state: State) -> list[str]:
        return [rid for rid in self.order if self.state[rid] == state]

    # --- rules --------------------------------------------------------------------------------
    @rule(count=st.integers(1, 7), urgent=st.booleans())
    def add(self, count: int, urgent: bool) -> None:
        readings = [reading(self.next_seq + i) for i in range(count)]
        self.next_seq += count
        result = self.box.add(readings, urgent=urgent)
        assert result.added == tuple(r.reading_id for r in readings)
        for r in readings:
            self.order.append(r.reading_id)
            self.seq_of[r.reading_id] = r.sequence_number or 0
            self.state[r.reading_id] = "pending"
            if urgent:
                self.urgent.add(r.reading_id)

    @rule(max_n=st.integers(1, 8))
    def take(self, max_n: int) -> None:
        batch = self.box.next_batch(max_n, max_urgent=1)
        pending = self._ids("pending")
        if batch is None:
            assert pending == []
            return
        ids = batch.reading_ids
        assert 0 < len(ids) <= max_n
        assert all(self.state[rid] == "pending" for rid in ids)
        assert [r.reading_id for r in batch.readings()] == list(ids)
        urgent_pending = [rid for rid in pending if rid in self.urgent]
        if urgent_pending:  # urgent first, alone
            assert batch.urgent
            assert ids == (urgent_pending[0],)
        else:  # bulk in arrival order
            assert not batch.urgent
            assert list(ids) == pending[: len(ids)]
        for rid in ids:
            self.state[rid] = "in_flight"
            self.message_of[rid] = batch.message_id

    @precondition(lambda self: self.order)
    @rule(data=st.data())
    def ack(self, data: st.DataObject) -> None:
        chosen = data.draw(st.lists(st.sampled_from(self.order), max_size=12))
        if data.draw(st.booleans()):  # whole messages, several at once (as the cloud acks)
            messages = {self.message_of[rid] for rid in chosen if self.state[rid] == "in_flight"}
            chosen = [rid for rid in self.order if self.message_of.get(rid) in messages]
            chosen += chosen[:2]  # and a repeat or two
        stranger = "0" * 32
        expected = {rid for rid in chosen if self.state[rid] in ("pending", "in_flight")}
        assert self.box.ack([*chosen, stranger]) == len(expected)
        for rid in expected:
            self.state[rid] = "acked"
            self.message_of.pop(rid, None)

    @precondition(lambda self: self.order)
    @rule(data=st.data(), retryable=st.booleans())
    def reject(self, data: st.DataObject, retryable: bool) -> None:
        chosen = data.draw(st.lists(st.sampled_from(self.order), max_size=4, unique=True))
        moved = self.box.reject(RejectedReading(rid, "test", retryable=retryable) for rid in chosen)
        expected = 0
        for rid in chosen:
            if retryable and self.state[rid] == "in_flight":
                self.state[rid] = "pending"
                self.message_of.pop(rid)
            elif not retryable and self.state[rid] in ("pending", "in_flight"):
                self.state[rid] = "rejected"
                self.message_of.pop(rid, None)
                expected += 1
        assert moved == expected

    @rule()
    def requeue(self) -> None:
        in_flight = self._ids("in_flight")
        assert self.box.requeue_unacked() == len(in_flight)
        for rid in in_flight:
            self.state[rid] = "pending"
            self.message_of.pop(rid)

    @rule()
    def tick(self) -> None:
        self.box.flush_due()

    @rule()
    def restart(self) -> None:
        self.box.close()
        self.box = self._open()
        for rid in self._ids("in_flight"):  # in-flight bookkeeping lives in memory only
            self.state[rid] = "pending"
            self.message_of.pop(rid)

    # --- invariants ---------------------------------------------------------------------------
    @invariant()
    def counts_agree(self) -> None:
        stats = self.box.stats()
        in_flight = len(self._ids("in_flight"))
        assert stats.in_flight == in_flight
        assert stats.pending == len(self._ids("pending"))
        assert stats.rejected == len(self._ids("rejected"))
        assert self.box.depth() == stats.pending + in_flight

    @invariant()
    def messages_hold_what_the_model_says(self) -> None:
        for message_id in set(self.message_of.values()):
            expected = [rid for rid in self.order if self.message_of.get(rid) == message_id]
            assert list(self.box.in_flight_ids(message_id)) == expected

    def teardown(self) -> None:
        try:
            self.box.requeue_unacked()
            left = [rid for rid in self.order if self.state[rid] in ("pending", "in_flight")]
            urgent = [rid for rid in left if rid in self.urgent]
            out: list[str] = []
            while (batch := self.box.next_batch(5)) is not None:
                out.extend(batch.reading_ids)
                assert self.box.ack(batch.reading_ids) == len(batch.reading_ids)
            assert out == urgent + [rid for rid in left if rid not in self.urgent]
            assert self.box.depth() == 0
            self.box.close()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


OutboxModel.TestCase.settings = settings(
    max_examples=100, stateful_step_count=30, deadline=None, database=None
)
test_outbox_against_a_model = OutboxModel.TestCase
