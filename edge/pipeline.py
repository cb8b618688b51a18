"""The edge pipeline: one pure function from a batch of readings to what the gateway publishes.

``process(batch, now, state, thresholds)`` runs, in order:

1. clock (:mod:`edge.clock`): every reading gets a ``measured_at``; NO_DEVICE_TIME,
   CLOCK_UNCORRECTED or TIME_FAULT say how;
2. dedupe (:mod:`edge.dedupe`): readings whose identity was seen in this batch or in the state's
   window are returned in ``duplicates``, flagged DUPLICATE, and counted;
3. order: per device by sequence number, else by time;
4. quality (:mod:`edge.quality`) and the batch-wide clock checks: flags are *added* with
   ``dataclasses.replace``; no value is ever changed, clamped or dropped;
5. local urgent rules (:mod:`edge.urgent`): :class:`LocalAlert` for level-2 hypoglycaemia, HI/LO,
   and blood pressure at or above 180/110 (re-measure prompt, then confirmation).

The state (dedupe window, recent high pressures awaiting confirmation) goes in and a new state
comes out in :attr:`ProcessedBatch.state`; nothing is mutated. Adopt the new state once the
readings are safely in the outbox: if the gateway dies before that, the old state simply lets the
same readings through again (the cloud is idempotent on identity).

Pure: no I/O, no clock (``now`` is a parameter), no globals.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from types import MappingProxyType

import numpy as np

from device_drivers.model import Reading, ReadingFlag
from edge.clock import ClockPolicy, Placement, SkewJump, find_skew_jumps, place_in_time
from edge.clock import time_runs_backwards as _time_runs_backwards
from edge.columns import BatchColumns
from edge.dedupe import DEFAULT_WINDOW, SeenWindow, find_duplicates, order_rows
from edge.errors import NaiveTimeError
from edge.quality import QualityLimits, assess, flags_by_row
from edge.urgent import (
    HighPressure,
    LocalAlert,
    PersonOf,
    ThresholdSet,
    UrgentThresholds,
    evaluate_urgent,
)

__all__ = ["EdgeConfig", "EdgeState", "EdgeStats", "ProcessedBatch", "process"]

_LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class EdgeConfig:
    """Limits of the quality checks and the clock policy (household time zone)."""

    quality: QualityLimits = field(default_factory=QualityLimits)
    clock: ClockPolicy = field(default_factory=ClockPolicy)


@dataclass(frozen=True, slots=True, eq=False)
class EdgeState:
    """What the edge remembers between batches. A value: :func:`process` returns a new one."""

    seen: SeenWindow = field(default_factory=SeenWindow)
    recent_high: tuple[HighPressure, ...] = ()

    @classmethod
    def initial(cls, window: int = DEFAULT_WINDOW) -> EdgeState:
        return cls(seen=SeenWindow(window))


@dataclass(frozen=True, slots=True)
class EdgeStats:
    received: int
    published: int
    duplicates_within_batch: int
    duplicates_seen_before: int
    placements: Mapping[Placement, int]  # how readings without measured_at were placed
    flags_added: Mapping[ReadingFlag, int]  # by the quality and clock checks (not DUPLICATE)
    skew_jumps: int
    local_alerts: int
    urgent_too_old: int
    urgent_untrusted_time: int

    @property
    def duplicates(self) -> int:
        return self.duplicates_within_batch + self.duplicates_seen_before


@dataclass(frozen=True, slots=True)
class ProcessedBatch:
    readings: tuple[Reading, ...]  # unique readings in publishing order, flags added
    duplicates: tuple[Reading, ...]  # flagged DUPLICATE, in batch order
    local_alerts: tuple[LocalAlert, ...]
    stats: EdgeStats
    state: EdgeState
    skew_jumps: tuple[SkewJump, ...] = ()  # ``row`` indexes ``readings``


def process(
    batch: Sequence[Reading],
    now: datetime,
    state: EdgeState,
    thresholds: ThresholdSet | UrgentThresholds | None = None,
    *,
    config: EdgeConfig | None = None,
    person_of: PersonOf | None = None,
) -> ProcessedBatch:
    """Process one batch (see the module docstring). ``thresholds`` are the urgent-rule
    thresholds, per person through ``person_of`` (the gateway's enrollment); ``now`` must be
    aware. Raises :class:`NaiveTimeError` for a naive ``now``; never raises for a reading."""
    if now.tzinfo is None or now.utcoffset() is None:
        raise NaiveTimeError("now")
    cfg = config or EdgeConfig()
    if thresholds is None:
        threshold_set = ThresholdSet()
    elif isinstance(thresholds, UrgentThresholds):
        threshold_set = ThresholdSet.of(thresholds)
    else:
        threshold_set = thresholds

    # 1. clock
    placements: Counter[Placement] = Counter()
    placed: list[Reading] = []
    for reading in batch:
        moved, how = place_in_time(reading, cfg.clock.household_tz)
        placed.append(moved)
        if how is not Placement.KEPT:
            placements[how] += 1

    # 2. dedupe
    dedupe = find_duplicates([r.identity for r in placed], state.seen)
    unique = [placed[i] for i in dedupe.unique]
    duplicates = tuple(
        replace(placed[i], flags=placed[i].flags | {ReadingFlag.DUPLICATE})
        for i in dedupe.duplicates
    )

    # 3. order
    columns = BatchColumns.of(unique)
    order = order_rows(columns)
    ordered = [unique[i] for i in order.tolist()]
    columns = columns.take(order)

    # 4. quality and clock checks
    masks = assess(columns, cfg.quality)
    backwards = _time_runs_backwards(
        columns.device_code,
        ~np.isnan(columns.sequence_number),
        columns.measured_at_s,
        cfg.clock.backwards_tolerance_s,
    )
    masks = replace(masks, time_fault=masks.time_fault | backwards)
    jumps = find_skew_jumps(columns, cfg.clock.skew_jump_s)
    added = flags_by_row(masks, tuple(r.flags for r in ordered))
    flag_counts: Counter[ReadingFlag] = Counter()
    for i, flags in added.items():
        ordered[i] = replace(ordered[i], flags=ordered[i].flags | flags)
        flag_counts.update(flags)
    columns = replace(
        columns,
        control_solution=masks.control_solution,
        high_out_of_range=masks.high_out_of_range,
        low_out_of_range=masks.low_out_of_range,
        time_fault=columns.time_fault | masks.time_fault,
        implausible=columns.implausible | masks.implausible,
    )

    # 5. local urgent rules
    urgent = evaluate_urgent(
        ordered, now, threshold_set, state.recent_high, person_of=person_of, columns=columns
    )

    stats = EdgeStats(
        received=len(batch),
        published=len(ordered),
        duplicates_within_batch=dedupe.within_batch,
        duplicates_seen_before=dedupe.seen_before,
        placements=MappingProxyType(dict(placements)),
        flags_added=MappingProxyType(dict(flag_counts)),
        skew_jumps=len(jumps),
        local_alerts=len(urgent.alerts),
        urgent_too_old=urgent.too_old,
        urgent_untrusted_time=urgent.untrusted_time,
    )
    _LOGGER.debug(
        "edge batch: %d in, %d out, %d duplicates, %d flagged, %d local alerts",
        stats.received,
        stats.published,
        stats.duplicates,
        len(added),
        stats.local_alerts,
    )
    return ProcessedBatch(
        readings=tuple(ordered),
        duplicates=duplicates,
        local_alerts=urgent.alerts,
        stats=stats,
        state=EdgeState(seen=dedupe.window, recent_high=urgent.recent_high),
        skew_jumps=jumps,
    )
