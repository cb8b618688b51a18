"""Clock correction at the edge: give every reading a ``measured_at``, and find clock trouble.

The converter (device_drivers/convert.py) already sets ``measured_at`` when it can. This module
handles what is left, following the PHD rules (specs/fhir_phd.md, "Timestamps & time zones"):

* no device time at all: the reading is placed at ``received_at`` and flagged NO_DEVICE_TIME
  ("PHD sends no timestamps -> use reception time");
* a device time and a measured skew: the gateway is the better-synchronised side (NTP), so the
  device's wall time is shifted by the skew (``clock_skew_s`` = device clock minus gateway clock,
  device_drivers/model.py) and read in the household's time zone. The skew is measured on the
  device's current timeline, so even a clock reset to 2000 is placed right;
* a device time and no skew (or a NaN/infinite one): the device time is read in the household's
  time zone as it is and the reading is flagged CLOCK_UNCORRECTED;
* a device time that cannot be placed at all (out of datetime's range after the shift): placed at
  ``received_at`` and flagged TIME_FAULT, never dropped.

Two checks across a batch:

* :func:`skew_jumps`: the skew of one device changes by more than ``skew_jump_s`` between two
  readings of the batch (the meter's clock was set, reset or moved to another zone between syncs).
  Reported as :class:`SkewJump` events; no reading is changed, because each reading carries the
  skew of its own sync.
* :func:`time_runs_backwards`: within one device, in sequence-number order, a reading whose
  corrected time is later than that of a *later* record by more than a tolerance. The skew is
  measured on the device's current timeline, so records made before a clock change are the ones
  shifted wrongly: they get TIME_FAULT (the later records keep their times).

China has no daylight saving time; the default household zone is UTC+8. A household elsewhere
passes its own ``tzinfo`` (a ``zoneinfo.ZoneInfo``).

Pure: no I/O, no clock.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import timedelta, timezone, tzinfo
from enum import StrEnum
from typing import Final

import numpy as np
import numpy.typing as npt

from device_drivers.model import Reading, ReadingFlag
from device_drivers.session.clock import device_time_to_utc
from edge.columns import BatchColumns
from edge.errors import ThresholdError

__all__ = [
    "CHINA_STANDARD_TIME",
    "ClockPolicy",
    "Placement",
    "SkewJump",
    "find_skew_jumps",
    "place_in_time",
    "skew_jumps",
    "time_runs_backwards",
]

Floats = npt.NDArray[np.float64]
Bools = npt.NDArray[np.bool_]
Ints = npt.NDArray[np.int64]

CHINA_STANDARD_TIME: Final = timezone(timedelta(hours=8), "CST")
"""UTC+8, no daylight saving time (the default household zone)."""


@dataclass(frozen=True, slots=True)
class ClockPolicy:
    household_tz: tzinfo = CHINA_STANDARD_TIME
    skew_jump_s: float = 300.0
    """A change of skew larger than this within a batch is a jump (RTC drift is seconds a day)."""
    backwards_tolerance_s: float = 60.0
    """Times may run backwards by this much before it counts (minute-resolution device clocks)."""

    def __post_init__(self) -> None:
        for name in ("skew_jump_s", "backwards_tolerance_s"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ThresholdError(name, value, "needs a finite value >= 0")


class Placement(StrEnum):
    """How :func:`place_in_time` gave a reading its ``measured_at``."""

    KEPT = "kept"  # the converter had set it
    CORRECTED = "corrected"  # device time shifted by the measured skew
    UNCORRECTED = "uncorrected"  # device time used as is (no skew): CLOCK_UNCORRECTED
    AT_RECEPTION = "at_reception"  # no device time: NO_DEVICE_TIME
    UNPLACEABLE = "unplaceable"  # device time could not be placed: TIME_FAULT, at reception


def place_in_time(reading: Reading, tz: tzinfo) -> tuple[Reading, Placement]:
    """Give a reading without ``measured_at`` one, with the flag that says how. A reading that
    already has ``measured_at`` is returned as it is (the same object).

    The correction itself is :func:`device_drivers.session.clock.device_time_to_utc` (the same
    function the converter uses), with the reception time as the reference instant."""
    if reading.measured_at is not None:
        return reading, Placement.KEPT
    device_time = reading.device_time
    if device_time is None:
        return (
            replace(
                reading,
                measured_at=reading.received_at,
                flags=reading.flags | {ReadingFlag.NO_DEVICE_TIME},
            ),
            Placement.AT_RECEPTION,
        )
    skew = reading.clock_skew_s
    if skew is not None and not math.isfinite(skew):
        skew = None  # a NaN or infinite skew is no measurement (as in the converter)
    try:
        if device_time.tzinfo is not None:  # the model says naive; take an aware one's wall time
            device_time = device_time.astimezone(tz).replace(tzinfo=None)
        measured = device_time_to_utc(
            device_time, tz, clock_skew_s=skew, reference=reading.received_at
        )
    except (OverflowError, ValueError):
        # out of datetime's range after the shift: cannot be placed on the timeline
        return (
            replace(
                reading,
                measured_at=reading.received_at,
                flags=reading.flags | {ReadingFlag.TIME_FAULT},
            ),
            Placement.UNPLACEABLE,
        )
    if skew is None:
        return (
            replace(
                reading,
                measured_at=measured,
                flags=reading.flags | {ReadingFlag.CLOCK_UNCORRECTED},
            ),
            Placement.UNCORRECTED,
        )
    return replace(reading, measured_at=measured), Placement.CORRECTED


def skew_jumps(device_code: Ints, skew_s: Floats, threshold_s: float) -> Bools:
    """True at each row whose skew differs by more than ``threshold_s`` from the skew of the
    previous row (in the given order) of the same device that has a skew. NaN skews are skipped."""
    n = device_code.shape[0]
    out = np.zeros(n, dtype=np.bool_)
    rows = np.flatnonzero(~np.isnan(skew_s))
    if rows.shape[0] < 2:
        return out
    order = rows[np.argsort(device_code[rows], kind="stable")]
    codes = device_code[order]
    skews = skew_s[order]
    same_device = codes[1:] == codes[:-1]
    with np.errstate(invalid="ignore"):
        jumped = np.abs(np.diff(skews)) > threshold_s
    out[order[1:][same_device & jumped]] = True
    return out


@dataclass(frozen=True, slots=True)
class SkewJump:
    """A device's clock skew changed within a batch. ``row`` is the reading's position in the
    batch given to :func:`find_skew_jumps`."""

    device_key: str
    row: int
    previous_skew_s: float
    skew_s: float

    @property
    def jump_s(self) -> float:
        return self.skew_s - self.previous_skew_s


def find_skew_jumps(columns: BatchColumns, threshold_s: float) -> tuple[SkewJump, ...]:
    mask = skew_jumps(columns.device_code, columns.clock_skew_s, threshold_s)
    if not mask.any():
        return ()
    jumps: list[SkewJump] = []
    last: dict[int, float] = {}
    for i, (code, skew) in enumerate(
        zip(columns.device_code.tolist(), columns.clock_skew_s.tolist(), strict=True)
    ):
        if math.isnan(skew):
            continue
        if mask[i]:
            jumps.append(SkewJump(columns.device_keys[code], i, last[code], skew))
        last[code] = skew
    return tuple(jumps)


def time_runs_backwards(
    device_code: Ints, has_sequence: Bools, measured_at_s: Floats, tolerance_s: float
) -> Bools:
    """True at each row (with a sequence number) whose time is later, by more than
    ``tolerance_s``, than the time of some later row of the same device. Rows must be in
    sequence-number order within each device; rows without a sequence number or a time are
    neither flagged nor compared."""
    n = device_code.shape[0]
    out = np.zeros(n, dtype=np.bool_)
    usable = has_sequence & np.isfinite(measured_at_s)
    rows = np.flatnonzero(usable)
    if rows.shape[0] < 2:
        return out
    order = rows[np.argsort(device_code[rows], kind="stable")]
    codes = device_code[order]
    times = measured_at_s[order]
    bounds = np.flatnonzero(np.diff(codes)) + 1
    for start, stop in zip(
        np.concatenate(([0], bounds)).tolist(),
        np.concatenate((bounds, [codes.shape[0]])).tolist(),
        strict=True,
    ):
        if stop - start < 2:
            continue
        group = times[start:stop]
        # the earliest time among all *later* rows: reversed running minimum, shifted by one
        later_min = np.minimum.accumulate(group[::-1])[::-1]
        later_min = np.concatenate((later_min[1:], [np.inf]))
        out[order[start:stop][group > later_min + tolerance_s]] = True
    return out
