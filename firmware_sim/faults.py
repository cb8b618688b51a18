"""Fault knobs of the simulated devices, and the seeded dice that apply them.

Every knob is off by default. "Transfer" faults (disconnect, drop, duplicate, malformed, RACP error
codes, silence) apply on the connections listed in ``on_connections`` (1-based, counted by the
device since it was created), or on every connection when that is None, so a test can make the
first sync fail and check that the retry recovers. Record indices count the records of one
transfer (a RACP report, or the indications of one cuff session) from 0.

Pure: no I/O, no clock; randomness only from ``random.Random(seed)``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Final

from firmware_sim.errors import SimConfigError

__all__ = ["Faults", "RecordFault", "TransferDice"]


@dataclass(frozen=True, slots=True)
class Faults:
    """What the simulated device does wrong. See docs/simulator.md for recipes.

    Transfer faults (gated by ``on_connections``):

    * ``disconnect_after_records``: drop the link after sending this many records of a transfer
      (no final RACP indication; a cuff drops it after this many confirmed readings).
    * ``drop_records`` / ``drop_probability``: a record is not sent at all (the meter sends
      neither measurement nor context; the cuff skips it this session and keeps it stored).
    * ``duplicate_records`` / ``duplicate_probability``: a record is sent twice in a row.
    * ``truncate_records``: the measurement payload loses its last two bytes.
    * ``reserved_sfloat_records``: the concentration (meter) or systolic pressure (cuff) is the
      reserved SFLOAT 0x0801.
    * ``racp_response_code``: every report/delete/count request is answered with this RACP
      response code (e.g. 0x08 procedure not completed).
    * ``silent_racp``: RACP writes are accepted and never answered (a hung meter; later writes
      get ATT 0x80 until the link drops).
    * ``lose_confirmations``: cuff readings (by index) whose confirmation the cuff "loses": it
      keeps them and indicates them again on the next connection.

    Device faults (always on):

    * ``unconnectable``: advertise, but not connectably (a connect never completes).
    * ``reset_sequence_on_connection``: on that connection the meter behaves as after a battery
      change: store cleared, numbering restarts at the first sequence number.
    * ``clock_skew_s``, ``clock_drift_ppm``: the device clock is off by this much (plus drift
      since it was last set).
    * ``clock_zone_offset_minutes``: the zone the device clock was set in (``0`` = a meter set to
      UTC in a UTC+8 household); None = the household's own zone.
    """

    seed: int = 0
    on_connections: frozenset[int] | None = None
    disconnect_after_records: int | None = None
    drop_records: frozenset[int] = frozenset()
    drop_probability: float = 0.0
    duplicate_records: frozenset[int] = frozenset()
    duplicate_probability: float = 0.0
    truncate_records: frozenset[int] = frozenset()
    reserved_sfloat_records: frozenset[int] = frozenset()
    racp_response_code: int | None = None
    silent_racp: bool = False
    lose_confirmations: frozenset[int] = frozenset()
    unconnectable: bool = False
    reset_sequence_on_connection: int | None = None
    clock_skew_s: float = 0.0
    clock_drift_ppm: float = 0.0
    clock_zone_offset_minutes: int | None = None

    def __post_init__(self) -> None:
        for name in ("drop_probability", "duplicate_probability"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise SimConfigError(name, f"{value!r} is not a probability in 0..1")
        if self.disconnect_after_records is not None and self.disconnect_after_records < 0:
            raise SimConfigError("disconnect_after_records", "must be >= 0")
        if self.racp_response_code is not None and not 0 <= self.racp_response_code <= 0xFF:
            raise SimConfigError("racp_response_code", "must fit in uint8")
        if self.clock_zone_offset_minutes is not None and not (
            -12 * 60 <= self.clock_zone_offset_minutes <= 14 * 60
        ):
            raise SimConfigError("clock_zone_offset_minutes", "must be within -12 h..+14 h")
        if abs(self.clock_drift_ppm) > 10_000:
            raise SimConfigError("clock_drift_ppm", "more than 1 % is not a clock")

    def active_on(self, connection_number: int) -> bool:
        """Whether the transfer faults apply on this (1-based) connection."""
        return self.on_connections is None or connection_number in self.on_connections


@dataclass(frozen=True, slots=True)
class RecordFault:
    """What happens to one record of a transfer."""

    drop: bool = False
    duplicate: bool = False
    truncate: bool = False
    reserved_sfloat: bool = False
    lose_confirmation: bool = False


_NO_FAULT: Final = RecordFault()


class TransferDice:
    """Decides the fault of each record in a transfer, from the knobs and a seeded RNG.

    One instance lives as long as the device, so a run of several transfers is reproducible.
    """

    def __init__(self, faults: Faults) -> None:
        self._faults = faults
        self._rng = random.Random(faults.seed)  # noqa: S311 - simulation, not security

    @property
    def faults(self) -> Faults:
        return self._faults

    def record_fault(self, index: int, active: bool) -> RecordFault:
        if not active:
            return _NO_FAULT
        f = self._faults
        # Always draw both numbers so the stream does not depend on which knobs are set.
        drop_roll = self._rng.random()
        duplicate_roll = self._rng.random()
        return RecordFault(
            drop=index in f.drop_records or drop_roll < f.drop_probability,
            duplicate=index in f.duplicate_records or duplicate_roll < f.duplicate_probability,
            truncate=index in f.truncate_records,
            reserved_sfloat=index in f.reserved_sfloat_records,
            lose_confirmation=index in f.lose_confirmations,
        )
