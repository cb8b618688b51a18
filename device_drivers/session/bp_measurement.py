"""Collecting blood-pressure measurements from a cuff: a sans-I/O session (h11 style).

Spec: specs/ble.md §2.1-2.2 (measurement and intermediate cuff pressure), §2.4 (classic BLS 1.0
cuffs keep unsent readings and indicate them all after the collector enables indications), §2.5
(the collector's flow: indications on 0x2A35 with CCCD 0x0002, notifications on 0x2A36, stay
connected until the cuff disconnects or goes quiet, deduplicate on user, time stamp and values
because stored readings are resent when a confirmation was lost).

Within one session a measurement with a time stamp that repeats an earlier one exactly (same user,
time stamp, values, status) is a resend: it produces :class:`DuplicateMeasurement`, not a second
:class:`MeasurementReceived`. Without a time stamp a resend cannot be told from a new measurement
with the same values, so every such measurement is passed on (and its reading's identity carries
the moment it was received: two such measurements never collapse into one). Across sessions,
:func:`fresh_readings` filters converted readings against the identities already seen.

Pure: no I/O, no clock.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Set
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TypeVar

from device_drivers.codec.blood_pressure import BloodPressureMeasurement, IntermediateCuffPressure
from device_drivers.errors import DecodeError
from device_drivers.model import MMHG_PER_KPA, BloodPressureReading, GlucoseReading
from device_drivers.session.common import LocalProtocolError, Subscribe
from device_drivers.uuids import BLOOD_PRESSURE_MEASUREMENT, INTERMEDIATE_CUFF_PRESSURE

__all__ = [
    "BloodPressureSession",
    "BpEvent",
    "BpOutput",
    "CuffPressure",
    "DuplicateMeasurement",
    "MalformedMeasurement",
    "MeasurementReceived",
    "SessionEnded",
    "SessionState",
    "UnexpectedValue",
    "fresh_readings",
]

_LOGGER = logging.getLogger(__name__)

R = TypeVar("R", GlucoseReading, BloodPressureReading)


class SessionState(StrEnum):
    IDLE = "idle"
    COLLECTING = "collecting"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class MeasurementReceived:
    measurement: BloodPressureMeasurement


@dataclass(frozen=True, slots=True)
class DuplicateMeasurement:
    """A stored measurement indicated again in the same session (a lost confirmation)."""

    measurement: BloodPressureMeasurement


@dataclass(frozen=True, slots=True)
class CuffPressure:
    """Live cuff pressure while inflating, in ``unit`` as sent; ``value`` None for a special."""

    value: float | None
    unit: str
    user_id: int | None = None

    @property
    def mmhg(self) -> float | None:
        """The pressure in mmHg (kPa converted, rounded to 0.1 mmHg)."""
        if self.value is None or self.unit != "kPa":
            return self.value
        return round(self.value * MMHG_PER_KPA, 1)


@dataclass(frozen=True, slots=True)
class MalformedMeasurement:
    """A value that did not decode; the bytes are kept. Equality ignores the exception object."""

    uuid16: int
    payload: bytes
    fault: str
    error: DecodeError = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class UnexpectedValue:
    uuid16: int
    data: bytes


@dataclass(frozen=True, slots=True)
class SessionEnded:
    """``received``: distinct measurements passed on; ``duplicates``: resends suppressed."""

    received: int
    duplicates: int


BpEvent = (
    MeasurementReceived
    | DuplicateMeasurement
    | CuffPressure
    | MalformedMeasurement
    | UnexpectedValue
    | SessionEnded
)
BpOutput = Subscribe | BpEvent


class BloodPressureSession:
    """One connection to a cuff. ``has_intermediate_cuff_pressure``: the cuff has 0x2A36."""

    def __init__(self, *, has_intermediate_cuff_pressure: bool = False) -> None:
        self._has_icp = has_intermediate_cuff_pressure
        self._state = SessionState.IDLE
        self._seen: set[BloodPressureMeasurement] = set()
        self._received = 0
        self._duplicates = 0

    @property
    def state(self) -> SessionState:
        return self._state

    @property
    def received_count(self) -> int:
        return self._received

    @property
    def duplicate_count(self) -> int:
        return self._duplicates

    def start(self) -> list[BpOutput]:
        """Indications on the measurement (the link writes CCCD 0x0002 for an indicate-only
        characteristic), then notifications on the intermediate cuff pressure if present."""
        self._require(SessionState.IDLE, "start")
        self._state = SessionState.COLLECTING
        out: list[BpOutput] = [Subscribe(BLOOD_PRESSURE_MEASUREMENT)]
        if self._has_icp:
            out.append(Subscribe(INTERMEDIATE_CUFF_PRESSURE))
        return out

    def on_indicate(self, uuid16: int, data: bytes) -> list[BpOutput]:
        return self.on_value(uuid16, data)

    def on_notify(self, uuid16: int, data: bytes) -> list[BpOutput]:
        return self.on_value(uuid16, data)

    def on_values(self, values: Iterable[tuple[int, bytes]]) -> list[BpOutput]:
        out: list[BpOutput] = []
        for uuid16, data in values:
            out += self.on_value(uuid16, data)
        return out

    def on_value(self, uuid16: int, data: bytes) -> list[BpOutput]:
        """Any value from the link, routed by characteristic."""
        if self._state is SessionState.IDLE:
            raise LocalProtocolError("BloodPressureSession", self._state.value, "on_value")
        data = bytes(data)
        if self._state is SessionState.CLOSED:
            _LOGGER.debug("value on 0x%04x after the session ended: %s", uuid16, data.hex())
            return []
        if uuid16 == BLOOD_PRESSURE_MEASUREMENT:
            return self._on_measurement(data)
        if uuid16 == INTERMEDIATE_CUFF_PRESSURE:
            return self._on_cuff(data)
        return [UnexpectedValue(uuid16, data)]

    def close(self) -> list[BpOutput]:
        """The cuff disconnected or went quiet."""
        self._require(SessionState.COLLECTING, "close")
        self._state = SessionState.CLOSED
        return [SessionEnded(self._received, self._duplicates)]

    def _on_measurement(self, data: bytes) -> list[BpOutput]:
        try:
            m = BloodPressureMeasurement.from_bytes(data)
        except DecodeError as exc:
            return [MalformedMeasurement(BLOOD_PRESSURE_MEASUREMENT, exc.payload, exc.fault, exc)]
        if m.timestamp is not None:
            if m in self._seen:
                self._duplicates += 1
                return [DuplicateMeasurement(m)]
            self._seen.add(m)
        self._received += 1
        return [MeasurementReceived(m)]

    def _on_cuff(self, data: bytes) -> list[BpOutput]:
        try:
            icp = IntermediateCuffPressure.from_bytes(data)
        except DecodeError as exc:
            return [MalformedMeasurement(INTERMEDIATE_CUFF_PRESSURE, exc.payload, exc.fault, exc)]
        return [CuffPressure(icp.cuff_pressure.value, icp.unit, icp.user_id)]

    def _require(self, state: SessionState, action: str) -> None:
        if self._state is not state:
            raise LocalProtocolError("BloodPressureSession", self._state.value, action)


def fresh_readings(readings: Iterable[R], seen: Set[tuple[str, ...]]) -> list[R]:
    """The readings whose identity is neither in ``seen`` (identities stored by earlier sessions)
    nor repeated earlier in ``readings``, in order. ``seen`` is not modified."""
    out: list[R] = []
    batch: set[tuple[str, ...]] = set()
    for reading in readings:
        key = reading.identity
        if key in seen or key in batch:
            continue
        batch.add(key)
        out.append(reading)
    return out
