"""Duplicates and order within a batch.

A reading is a duplicate when its identity (:attr:`GlucoseReading.identity`,
:attr:`BloodPressureReading.identity`: device key, kind, sequence number or user slot + time +
values) was already seen, earlier in the same batch or in a recent batch. Recent identities live in
a bounded, least-recently-used :class:`SeenWindow`; the window is a value: adding identities returns
a new window and never changes the old one, so :func:`edge.pipeline.process` stays pure.

Duplicates are *returned*, flagged DUPLICATE and counted, never dropped silently. The cloud is
idempotent on the same identity anyway (the window only saves uplink traffic), so a window too
small to catch an old duplicate costs bandwidth, not correctness. Size it to at least the records
the household's devices can hold (a glucose meter keeps up to about 1000, a cuff a few hundred per
user): a full re-sync after a sequence reset then collapses at the edge.

Order: per device (devices in order of first appearance in the batch), readings with a sequence
number first, by sequence number; then readings without one (classic cuffs), by measured time;
ties keep batch order. Sequence numbers wrapping past 65535 are not unwrapped here (the driver's
re-sync on a sequence reset handles that, and the identity keeps the device time).

Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

import numpy as np
import numpy.typing as npt

from edge.columns import BatchColumns
from edge.errors import ThresholdError

__all__ = [
    "DEFAULT_WINDOW",
    "DedupeResult",
    "Identity",
    "SeenWindow",
    "find_duplicates",
    "order_rows",
]

Identity = tuple[str, ...]
Ints = npt.NDArray[np.int64]

DEFAULT_WINDOW: Final = 20_000
"""Identities remembered across batches by default (a few households' device memories)."""


@dataclass(frozen=True, slots=True, eq=False)
class SeenWindow:
    """The most recently seen identities, oldest first, at most ``capacity`` of them.

    ``entries`` is never mutated: :meth:`with_seen` builds a new window (copying costs a few
    milliseconds for 20,000 entries, once per batch)."""

    capacity: int = DEFAULT_WINDOW
    entries: Mapping[Identity, None] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if self.capacity < 1:
            raise ThresholdError("capacity", self.capacity, "a dedupe window needs capacity >= 1")

    def __contains__(self, identity: object) -> bool:
        return identity in self.entries

    def __len__(self) -> int:
        return len(self.entries)

    def with_seen(self, identities: Iterable[Identity]) -> SeenWindow:
        """A new window with ``identities`` as the most recent (in order), the oldest evicted."""
        entries = dict(self.entries)
        for identity in identities:
            entries.pop(identity, None)
            entries[identity] = None
        excess = len(entries) - self.capacity
        if excess > 0:
            for identity in list(entries)[:excess]:
                del entries[identity]
        return SeenWindow(self.capacity, entries)


@dataclass(frozen=True, slots=True)
class DedupeResult:
    unique: tuple[int, ...]  # rows of first occurrences not seen before, in batch order
    duplicates: tuple[int, ...]  # rows that repeat an identity, in batch order
    within_batch: int  # duplicates of an earlier row of the same batch
    seen_before: int  # duplicates of an identity in the window
    window: SeenWindow  # the window after this batch


def find_duplicates(identities: Sequence[Identity], window: SeenWindow) -> DedupeResult:
    """Split a batch's rows into first occurrences and duplicates. The first occurrence of an
    identity in the batch wins unless the window has already seen it."""
    unique: list[int] = []
    duplicates: list[int] = []
    first_row: dict[Identity, int] = {}
    within = before = 0
    for row, identity in enumerate(identities):
        if identity in first_row:
            duplicates.append(row)
            within += 1
        elif identity in window:
            first_row[identity] = row
            duplicates.append(row)
            before += 1
        else:
            first_row[identity] = row
            unique.append(row)
    return DedupeResult(
        unique=tuple(unique),
        duplicates=tuple(duplicates),
        within_batch=within,
        seen_before=before,
        window=window.with_seen(first_row),
    )


def order_rows(columns: BatchColumns) -> Ints:
    """Row order for publishing: by device (first appearance), then sequence number, then time
    (``measured_at``, else ``received_at``), then batch position."""
    n = len(columns)
    rows = np.arange(n, dtype=np.int64)
    seq = columns.sequence_number
    no_seq = np.isnan(seq)
    seq_key = np.where(no_seq, 0.0, seq)
    time_key = np.where(
        np.isfinite(columns.measured_at_s), columns.measured_at_s, columns.received_at_s
    )
    order = np.lexsort((rows, time_key, seq_key, no_seq, columns.device_code))
    return np.asarray(order, dtype=np.int64)
