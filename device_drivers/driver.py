"""Drivers: pump a :class:`~device_drivers.link.GattLink` through the sans-I/O sessions.

Spec: specs/ble.md §1.6 (meter flow), §2.5 (cuff flow), §3 (Device Information, Battery, Current
Time). The drivers own no protocol logic: they read the identity and clock characteristics, hand
every notification/indication to :class:`~device_drivers.session.glucose_transfer.GlucoseTransfer`
or :class:`~device_drivers.session.bp_measurement.BloodPressureSession`, perform the actions the
sessions return, apply the timeouts, and convert records to readings
(:mod:`device_drivers.convert`).

Both return a :class:`SyncResult` also when something fails: readings received before the failure
are kept (they are idempotent downstream), the glucose watermark only moves after the meter's final
success response, and ``failure_stage`` says where it went wrong. Link errors the link raises as
:class:`~device_drivers.errors.DeviceUnavailableError` become a failure stage; any other error
propagates. The caller owns the connection (connect, pair, disconnect).

The wall clock is injected (``clock() -> aware UTC datetime``); timeouts use the event loop's
monotonic time. IO (asyncio), thin.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from typing import Final, TypeVar

from device_drivers.codec.battery import BatteryLevel
from device_drivers.codec.device_info import SystemId, decode_string
from device_drivers.codec.glucose import GlucoseFeature
from device_drivers.codec.time_service import CurrentTime
from device_drivers.convert import bp_reading, glucose_reading
from device_drivers.errors import (
    ConnectStage,
    DecodeError,
    DeviceUnavailableError,
    DriverError,
    GattError,
)
from device_drivers.link import GattLink, ValueCallback
from device_drivers.model import DeviceIdentity, DeviceKind, Reading
from device_drivers.session import bp_measurement as bp
from device_drivers.session import glucose_transfer as gt
from device_drivers.session.clock import (
    CLOCK_TOLERANCE_S,
    ClockDecision,
    current_time_for,
    measure_skew,
    plan_clock,
)
from device_drivers.session.common import Subscribe, Write
from device_drivers.uuids import (
    BATTERY_LEVEL,
    CURRENT_TIME,
    GLUCOSE_FEATURE,
    GLUCOSE_MEASUREMENT_CONTEXT,
    INTERMEDIATE_CUFF_PRESSURE,
    MANUFACTURER_NAME,
    MODEL_NUMBER,
    SERIAL_NUMBER,
    SYSTEM_ID,
)

__all__ = [
    "BP_IDLE_TIMEOUT_S",
    "BloodPressureDriver",
    "GlucoseMeterDriver",
    "SyncResult",
    "WallClock",
    "read_device_identity",
]

_LOGGER = logging.getLogger(__name__)

WallClock = Callable[[], datetime]
"""Returns the current aware UTC time."""

GATT_OP_TIMEOUT_S: Final = 10.0
"""One read or write on the link that takes longer than this counts as a lost link."""
BP_IDLE_TIMEOUT_S: Final = 10.0
"""A cuff that sends nothing for this long has delivered everything it had."""
BP_MAX_SESSION_S: Final = 300.0
_POLL_S: Final = 0.25  # how often a wait checks that the link is still up

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class SyncResult:
    """What one session with a device produced.

    ``watermark``: the glucose watermark to store (unchanged unless the meter answered success;
    None for cuffs and before a first successful sync). ``failure_stage``/``failure_reason`` are
    None when the session ended normally. ``clock_skew_s``: device minus gateway local time,
    measured before any clock write.
    """

    device: DeviceIdentity
    readings: tuple[Reading, ...]
    watermark: int | None = None
    clock_skew_s: float | None = None
    clock_written: bool = False
    battery_percent: int | None = None
    features: int | None = None
    failure_stage: ConnectStage | None = None
    failure_reason: str | None = None
    malformed: int = 0
    duplicates: int = 0
    resynced: bool = False
    events: tuple[object, ...] = field(default=(), repr=False)
    """Session events other than records (diagnostics for logs and tests)."""

    @property
    def ok(self) -> bool:
        return self.failure_stage is None


class _StageFailed(Exception):
    def __init__(self, stage: ConnectStage, reason: str) -> None:
        self.stage = stage
        self.reason = reason
        super().__init__(f"{stage.value}: {reason}")


class _Inbox:
    """Values from link callbacks, stamped with the wall clock when they arrived.

    A deque and one waiter future rather than ``asyncio.Queue`` + ``asyncio.timeout``: a meter
    sends one value per event-loop turn, so the driver waits once per value, and this wait is a
    measurable part of a 500-record sync (bench/bench_ble.py)."""

    def __init__(self, clock: WallClock) -> None:
        self._clock = clock
        self._items: deque[tuple[int, bytes, datetime]] = deque()
        self._waiter: asyncio.Future[None] | None = None

    def __call__(self, uuid16: int, data: bytes) -> None:
        self._items.append((uuid16, bytes(data), self._clock()))
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def get(self, link: GattLink, timeout_s: float) -> tuple[int, bytes, datetime] | None:
        """The next value; None after ``timeout_s``, or as soon as the link is down and every
        value it delivered has been taken (checked every :data:`_POLL_S`)."""
        loop = asyncio.get_running_loop()
        end = loop.time() + max(timeout_s, 0.0)
        while True:
            if self._items:
                return self._items.popleft()
            if not link.is_connected:
                return None
            remaining = end - loop.time()
            if remaining <= 0:
                return None
            waiter: asyncio.Future[None] = loop.create_future()
            self._waiter = waiter
            timer = loop.call_later(min(remaining, _POLL_S), _wake, waiter)
            try:
                await waiter
            finally:
                timer.cancel()
                self._waiter = None


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class _DeviceBase:
    """Identity, battery and clock handling shared by both drivers."""

    kind: DeviceKind

    def __init__(
        self,
        link: GattLink,
        *,
        clock: WallClock,
        tz: tzinfo,
        identity: DeviceIdentity | None,
        set_clock: bool,
        clock_tolerance_s: float,
        gatt_timeout_s: float,
    ) -> None:
        self._link = link
        self._clock = clock
        self._tz = tz
        self._identity = identity
        self._set_clock = set_clock
        self._clock_tolerance_s = clock_tolerance_s
        self._gatt_timeout_s = gatt_timeout_s

    async def _io(self, stage: ConnectStage, op: Awaitable[T]) -> T:
        try:
            async with asyncio.timeout(self._gatt_timeout_s):
                return await op
        except TimeoutError as exc:
            raise _StageFailed(stage, f"no answer within {self._gatt_timeout_s:.0f} s") from exc
        except DeviceUnavailableError as exc:
            raise _StageFailed(stage, exc.reason) from exc

    async def _read_optional(self, uuid16: int, stage: ConnectStage) -> bytes | None:
        """The value, or None when the characteristic is absent or refuses the read."""
        if not self._link.has_characteristic(uuid16):
            return None
        try:
            return await self._io(stage, self._link.read(uuid16))
        except _StageFailed:
            raise
        except DriverError as exc:  # e.g. an ATT error: insufficient authentication
            _LOGGER.warning("%s: read of 0x%04x refused: %s", self._link.address, uuid16, exc)
            return None

    def _decode_optional(self, what: str, decode: Callable[[bytes], T], raw: bytes) -> T | None:
        try:
            return decode(raw)
        except DecodeError as exc:
            _LOGGER.warning("%s: %s malformed: %s", self._link.address, what, exc.fault)
            _LOGGER.debug("%s: %s payload %s", self._link.address, what, exc.payload.hex())
            return None

    async def _read_identity(self) -> DeviceIdentity:
        if self._identity is not None:
            return self._identity
        stage = ConnectStage.DISCOVER
        strings: dict[int, str | None] = {}
        for uuid16 in (SERIAL_NUMBER, MODEL_NUMBER, MANUFACTURER_NAME):
            raw = await self._read_optional(uuid16, stage)
            text = None if raw is None else self._decode_optional("DIS string", decode_string, raw)
            strings[uuid16] = text or None
        raw = await self._read_optional(SYSTEM_ID, stage)
        sid = None if raw is None else self._decode_optional("system id", SystemId.from_bytes, raw)
        self._identity = DeviceIdentity(
            address=self._link.address,
            kind=self.kind,
            system_id=None if sid is None else sid.hex,
            serial_number=strings[SERIAL_NUMBER],
            model_number=strings[MODEL_NUMBER],
            manufacturer=strings[MANUFACTURER_NAME],
        )
        return self._identity

    async def _read_battery(self) -> int | None:
        raw = await self._read_optional(BATTERY_LEVEL, ConnectStage.DISCOVER)
        if raw is None:
            return None
        level = self._decode_optional("battery level", BatteryLevel.from_bytes, raw)
        return None if level is None else level.percent

    async def _check_clock(self) -> tuple[float | None, bool]:
        """(skew, written): measure the skew from Current Time, then set the clock when it is
        off by more than the tolerance (a refused write only means the skew stays in use)."""
        if not self._link.has_characteristic(CURRENT_TIME):
            return None, False
        before = self._clock()
        raw = await self._read_optional(CURRENT_TIME, ConnectStage.CLOCK)
        after = self._clock()
        if raw is None:
            return None, False
        value = self._decode_optional("current time", CurrentTime.from_bytes, raw)
        if value is None:
            return None, False
        skew = measure_skew(value, before + (after - before) / 2, self._tz)
        plan = plan_clock(skew, writable=self._set_clock, tolerance_s=self._clock_tolerance_s)
        if plan.decision is not ClockDecision.WRITE:
            return skew, False
        payload = bytes(current_time_for(self._clock(), self._tz))
        try:
            await self._io(ConnectStage.CLOCK, self._link.write(CURRENT_TIME, payload))
        except _StageFailed:
            raise
        except DriverError as exc:  # not writable on this model, or the write was refused
            _LOGGER.info("%s: clock not set (%s); skew %s s kept", self._link.address, exc, skew)
            return skew, False
        _LOGGER.info("%s: clock set (skew was %s s)", self._link.address, skew)
        return skew, True

    async def _perform(self, action: Subscribe | Write, inbox: ValueCallback) -> None:
        """Do what a session asked; any link error fails the session at that stage."""
        if isinstance(action, Subscribe):
            stage, op = ConnectStage.SUBSCRIBE, self._link.subscribe(action.uuid16, inbox)
        else:
            stage, op = ConnectStage.TRANSFER, self._link.write(action.uuid16, action.data)
        try:
            await self._io(stage, op)
        except _StageFailed:
            raise
        except DriverError as exc:  # ATT error: 0x80 procedure in progress, 0x81 CCCD, auth
            if isinstance(exc, GattError) and exc.requires_pairing:
                stage = ConnectStage.PAIR  # not bonded (connected with pair=False, bond lost)
            raise _StageFailed(stage, f"0x{action.uuid16:04x}: {exc}") from exc

    async def _best_effort(self, action: Subscribe | Write, inbox: ValueCallback) -> None:
        try:
            await self._perform(action, inbox)
        except _StageFailed as exc:
            _LOGGER.debug("%s: %s not done: %s", self._link.address, action, exc)


class GlucoseMeterDriver(_DeviceBase):
    """Record sync with a glucose meter (GLP): identity, battery, feature, clock, RACP transfer.

    ``timeout_s`` is the per-step RACP timeout (no progress for that long aborts the transfer).
    ``identity`` may be passed when it was read before (DIS is read once per device and cached).
    """

    kind = DeviceKind.GLUCOSE_METER

    def __init__(
        self,
        link: GattLink,
        *,
        clock: WallClock,
        tz: tzinfo,
        timeout_s: float = gt.RACP_STEP_TIMEOUT_S,
        identity: DeviceIdentity | None = None,
        set_clock: bool = True,
        clock_tolerance_s: float = CLOCK_TOLERANCE_S,
        gatt_timeout_s: float = GATT_OP_TIMEOUT_S,
    ) -> None:
        super().__init__(
            link,
            clock=clock,
            tz=tz,
            identity=identity,
            set_clock=set_clock,
            clock_tolerance_s=clock_tolerance_s,
            gatt_timeout_s=gatt_timeout_s,
        )
        self._timeout_s = timeout_s

    async def fetch_since(
        self, watermark: int | None, *, meter_highest_sequence: int | None = None
    ) -> SyncResult:
        """Every record after ``watermark`` (all records when None) as readings."""
        link = self._link
        identity = DeviceIdentity(link.address, self.kind)
        readings: list[Reading] = []
        events: list[object] = []
        skew: float | None = None
        written = False
        battery = features = None
        transfer = gt.GlucoseTransfer(
            watermark,
            has_context=link.has_characteristic(GLUCOSE_MEASUREMENT_CONTEXT),
            meter_highest_sequence=meter_highest_sequence,
            step_timeout_s=self._timeout_s,
        )
        failure: tuple[ConnectStage, str] | None = None
        try:
            identity = await self._read_identity()
            battery = await self._read_battery()
            raw = await self._read_optional(GLUCOSE_FEATURE, ConnectStage.DISCOVER)
            if raw is not None:
                feature = self._decode_optional("feature", GlucoseFeature.from_bytes, raw)
                features = None if feature is None else feature.value
            skew, written = await self._check_clock()
            failure = await self._transfer(transfer, identity, skew, readings, events)
        except _StageFailed as exc:
            failure = (exc.stage, exc.reason)
        if failure is not None:
            _LOGGER.warning("%s: sync failed at %s: %s", link.address, failure[0], failure[1])
        malformed = sum(isinstance(e, gt.MalformedRecord) for e in events)
        return SyncResult(
            device=identity,
            readings=tuple(readings),
            watermark=transfer.committed_watermark,
            clock_skew_s=skew,
            clock_written=written,
            battery_percent=battery,
            features=features,
            failure_stage=None if failure is None else failure[0],
            failure_reason=None if failure is None else failure[1],
            malformed=malformed,
            resynced=any(isinstance(e, gt.ResyncRequired) for e in events),
            events=tuple(events),
        )

    async def _transfer(
        self,
        transfer: gt.GlucoseTransfer,
        identity: DeviceIdentity,
        skew: float | None,
        readings: list[Reading],
        events: list[object],
    ) -> tuple[ConnectStage, str] | None:
        loop = asyncio.get_running_loop()
        inbox = _Inbox(self._clock)
        address = self._link.address
        outputs: list[gt.Output] = transfer.start(now=loop.time())
        stamp = self._clock()  # when the value that produced ``outputs`` arrived
        failure: tuple[ConnectStage, str] | None = None
        while True:
            for out in outputs:
                if isinstance(out, Subscribe | Write):
                    if transfer.state is gt.TransferState.FAILED:
                        await self._best_effort(out, inbox)  # the abort after a failure
                    else:
                        await self._perform(out, inbox)
                elif isinstance(out, gt.RecordReceived):
                    readings.append(
                        glucose_reading(
                            out.measurement, out.context, identity, stamp, skew, self._tz
                        )
                    )
                else:
                    events.append(out)
                    failure = self._note(out, address) or failure
            if transfer.state in (gt.TransferState.DONE, gt.TransferState.FAILED):
                return failure
            deadline = transfer.deadline
            wait_s = self._timeout_s if deadline is None else deadline - loop.time()
            item = await inbox.get(self._link, wait_s)
            if item is None:
                if not self._link.is_connected:
                    return ConnectStage.TRANSFER, "link lost during the transfer"
                outputs = transfer.on_timeout(loop.time())
                stamp = self._clock()
                continue
            uuid16, data, stamp = item
            outputs = transfer.on_value(uuid16, data, now=loop.time())

    @staticmethod
    def _note(event: object, address: str) -> tuple[ConnectStage, str] | None:
        if isinstance(event, gt.TransferFailed):
            reason = f"{event.reason.value}"
            if event.response_code is not None:
                reason += f" (response code 0x{event.response_code:02x})"
            if event.expected is not None:
                reason += f" ({event.received} of {event.expected} records)"
            return ConnectStage.TRANSFER, reason
        if isinstance(event, gt.MalformedRecord):
            _LOGGER.warning("%s: malformed 0x%04x: %s", address, event.uuid16, event.fault)
            _LOGGER.debug("%s: malformed payload %s", address, event.payload.hex())
        elif isinstance(event, gt.ResyncRequired):
            _LOGGER.info("%s: sequence numbers went backwards: full resync", address)
        elif isinstance(event, gt.UnmatchedContext | gt.UnexpectedValue):
            _LOGGER.debug("%s: %s", address, event)
        return None


class BloodPressureDriver(_DeviceBase):
    """Collects indications from a cuff (BLP): identity, battery, clock, then measurements until
    the cuff disconnects or is quiet for ``idle_timeout_s``.

    ``on_cuff_pressure`` receives live cuff pressure while the cuff inflates.
    """

    kind = DeviceKind.BLOOD_PRESSURE_MONITOR

    def __init__(
        self,
        link: GattLink,
        *,
        clock: WallClock,
        tz: tzinfo,
        identity: DeviceIdentity | None = None,
        set_clock: bool = True,
        clock_tolerance_s: float = CLOCK_TOLERANCE_S,
        gatt_timeout_s: float = GATT_OP_TIMEOUT_S,
        max_session_s: float = BP_MAX_SESSION_S,
        on_cuff_pressure: Callable[[bp.CuffPressure], None] | None = None,
    ) -> None:
        super().__init__(
            link,
            clock=clock,
            tz=tz,
            identity=identity,
            set_clock=set_clock,
            clock_tolerance_s=clock_tolerance_s,
            gatt_timeout_s=gatt_timeout_s,
        )
        self._max_session_s = max_session_s
        self._on_cuff_pressure = on_cuff_pressure

    async def collect(
        self,
        idle_timeout_s: float = BP_IDLE_TIMEOUT_S,
        *,
        on_reading: Callable[[Reading], None] | None = None,
    ) -> SyncResult:
        """Collect until the cuff is quiet or gone.

        ``on_reading`` sees each reading as it arrives, **synchronously inside the link's value
        callback**, before that callback returns: a cuff forgets a reading once its indication
        is confirmed, and a stack that confirms when the callback returns (bumble) then confirms
        only after the hook has stored it (BlueZ confirms in bluetoothd before the value reaches
        us: there the hook narrows the window to the delivery and the store). A hook that raises
        is logged; the reading stays in the result."""
        link = self._link
        loop = asyncio.get_running_loop()
        identity = DeviceIdentity(link.address, self.kind)
        readings: list[Reading] = []
        events: list[object] = []
        skew: float | None = None
        written = False
        battery = None
        session = bp.BloodPressureSession(
            has_intermediate_cuff_pressure=link.has_characteristic(INTERMEDIATE_CUFF_PRESSURE)
        )
        failure: tuple[ConnectStage, str] | None = None
        try:
            identity = await self._read_identity()
            skew, written = await self._check_clock()
            battery = await self._read_battery()
            inbox = _Inbox(self._clock)
            known = identity

            def on_value(uuid16: int, data: bytes) -> None:
                # decoded here, in the link's callback, so ``on_reading`` runs before the stack
                # confirms the indication; the inbox only tells the idle wait that it came
                received_at = self._clock()
                for out in session.on_value(uuid16, bytes(data)):
                    if isinstance(out, bp.MeasurementReceived):
                        reading = bp_reading(out.measurement, known, received_at, skew, self._tz)
                        readings.append(reading)
                        self._handed_over(reading, on_reading)
                    elif isinstance(out, bp.CuffPressure):
                        if self._on_cuff_pressure is not None:
                            self._on_cuff_pressure(out)
                    else:
                        events.append(out)
                        if isinstance(out, bp.MalformedMeasurement):
                            _LOGGER.warning(
                                "%s: malformed 0x%04x: %s", link.address, out.uuid16, out.fault
                            )
                inbox(uuid16, data)

            for action in session.start():
                assert isinstance(action, Subscribe)
                await self._perform(action, on_value)
            end = loop.time() + self._max_session_s
            while True:
                wait_s = min(idle_timeout_s, end - loop.time())
                if await inbox.get(link, wait_s) is None:
                    break  # quiet, disconnected, or the session is long enough
        except _StageFailed as exc:
            failure = (exc.stage, exc.reason)
            _LOGGER.warning("%s: session failed at %s: %s", link.address, exc.stage, exc.reason)
        if session.state is bp.SessionState.COLLECTING:
            events += session.close()
        return SyncResult(
            device=identity,
            readings=tuple(readings),
            clock_skew_s=skew,
            clock_written=written,
            battery_percent=battery,
            failure_stage=None if failure is None else failure[0],
            failure_reason=None if failure is None else failure[1],
            malformed=sum(isinstance(e, bp.MalformedMeasurement) for e in events),
            duplicates=session.duplicate_count,
            events=tuple(events),
        )

    def _handed_over(self, reading: Reading, hook: Callable[[Reading], None] | None) -> None:
        if hook is None:
            return
        try:
            hook(reading)
        except Exception:  # the reading stays in the result; the caller stores it at the end
            _LOGGER.exception("%s: the per-reading hook failed", self._link.address)


class _IdentityReader(_DeviceBase):
    def __init__(self, link: GattLink, kind: DeviceKind, *, tz: tzinfo, timeout_s: float) -> None:
        self.kind = kind
        super().__init__(
            link,
            clock=lambda: datetime.now(tz),
            tz=tz,
            identity=None,
            set_clock=False,
            clock_tolerance_s=CLOCK_TOLERANCE_S,
            gatt_timeout_s=timeout_s,
        )


async def read_device_identity(
    link: GattLink, kind: DeviceKind, *, tz: tzinfo, gatt_timeout_s: float = GATT_OP_TIMEOUT_S
) -> DeviceIdentity | None:
    """Device Information only (System ID, serial, model, manufacturer), as the drivers read it:
    for telling which device answers at an address before syncing it. None when the link fails
    (a characteristic that is absent or refused is just None in the identity)."""
    try:
        return await _IdentityReader(link, kind, tz=tz, timeout_s=gatt_timeout_s)._read_identity()
    except _StageFailed as exc:
        _LOGGER.debug("%s: identity not read: %s", link.address, exc)
        return None
