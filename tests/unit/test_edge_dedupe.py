"""Dedupe window and ordering."""

from __future__ import annotations

from datetime import timedelta

import pytest

from edge.columns import BatchColumns
from edge.dedupe import SeenWindow, find_duplicates, order_rows
from edge.errors import ThresholdError
from tests.unit.edge_builders import NOW, cuff, glucose, meter, pressure


def ident(*parts: str) -> tuple[str, ...]:
    return parts


def test_first_occurrence_wins_within_a_batch() -> None:
    ids = [ident("a"), ident("b"), ident("a"), ident("c"), ident("b")]
    result = find_duplicates(ids, SeenWindow(10))
    assert result.unique == (0, 1, 3)
    assert result.duplicates == (2, 4)
    assert result.within_batch == 2
    assert result.seen_before == 0


def test_identities_seen_in_an_earlier_batch_are_duplicates() -> None:
    first = find_duplicates([ident("a"), ident("b")], SeenWindow(10))
    second = find_duplicates([ident("b"), ident("c"), ident("b")], first.window)
    assert second.unique == (1,)
    assert second.duplicates == (0, 2)
    assert second.seen_before == 1
    assert second.within_batch == 1


def test_the_window_is_a_value() -> None:
    empty = SeenWindow(10)
    grown = empty.with_seen([ident("a")])
    assert ident("a") in grown
    assert ident("a") not in empty
    assert len(empty) == 0


def test_the_window_evicts_least_recently_seen() -> None:
    window = SeenWindow(3).with_seen([ident("a"), ident("b"), ident("c")])
    window = window.with_seen([ident("a")])  # a is fresh again
    window = window.with_seen([ident("d")])  # evicts b, the least recently seen
    assert [ident("a") in window, ident("b") in window] == [True, False]
    assert len(window) == 3
    assert list(window.entries) == [ident("c"), ident("a"), ident("d")]


def test_a_duplicate_refreshes_its_identity_in_the_window() -> None:
    window = SeenWindow(2).with_seen([ident("a"), ident("b")])
    result = find_duplicates([ident("a")], window)
    assert result.duplicates == (0,)
    after = result.window.with_seen([ident("c")])
    assert ident("a") in after
    assert ident("b") not in after


def test_window_capacity_must_be_positive() -> None:
    with pytest.raises(ThresholdError):
        SeenWindow(0)


def test_glucose_readings_are_ordered_per_device_by_sequence_number() -> None:
    batch = [
        glucose(seq=3),
        pressure(at=NOW - timedelta(minutes=1)),
        glucose(seq=1, device=meter(2)),
        glucose(seq=1),
        pressure(at=NOW - timedelta(minutes=9)),
        glucose(seq=2),
    ]
    order = order_rows(BatchColumns.of(batch)).tolist()
    # meter 1 first (first seen), then the cuff by time, then meter 2
    assert order == [3, 5, 0, 4, 1, 2]


def test_sequence_number_beats_a_wrong_clock() -> None:
    batch = [glucose(seq=2, at=NOW - timedelta(hours=1)), glucose(seq=1, at=NOW)]
    assert order_rows(BatchColumns.of(batch)).tolist() == [1, 0]


def test_ties_keep_batch_order() -> None:
    at = NOW - timedelta(minutes=3)
    batch = [pressure(at=at, user=2, device=cuff()), pressure(at=at, user=1, device=cuff())]
    assert order_rows(BatchColumns.of(batch)).tolist() == [0, 1]


def test_readings_without_time_order_by_reception() -> None:
    batch = [
        pressure(measured_at=None, device_time=None, received_at=NOW),
        pressure(measured_at=None, device_time=None, received_at=NOW - timedelta(seconds=5)),
    ]
    assert order_rows(BatchColumns.of(batch)).tolist() == [1, 0]
