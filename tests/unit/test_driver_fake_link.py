"""Drivers over a tiny in-memory GattLink that replays recorded bytes.

``ReplayLink`` is a STAND-IN FOR THE RADIO, not a simulated meter: it answers reads from a table,
records writes and subscriptions, and when a given value is written it plays back a fixed script
of notifications/indications (recorded bytes, as literal hex). It checks only the driver's
plumbing: the order of reads, subscriptions and writes, timeouts, link loss and conversion. The
protocol against real GATT servers (bumble simulated meters, real CCCD writes, indicate vs notify)
is covered by the sim-tier tests the lead adds (tests/sim/).
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from device_drivers.driver import BloodPressureDriver, GlucoseMeterDriver
from device_drivers.errors import ConnectStage, DriverError
from device_drivers.link import ValueCallback
from device_drivers.model import DeviceIdentity, DeviceKind, ReadingFlag
from device_drivers.session.bp_measurement import CuffPressure

SHANGHAI = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 11, 24, 0, 5, tzinfo=UTC)  # 08:05 in Shanghai, a Tuesday


def h(text: str) -> bytes:
    return bytes.fromhex(text)


def clock() -> datetime:
    return NOW


Script = list[tuple[int, bytes]]


class ReplayLink:
    """In-memory GattLink (see the module docstring): reads from ``values``, scripted pushes."""

    def __init__(
        self,
        values: dict[int, bytes],
        *,
        on_write: dict[tuple[int, bytes], Script] | None = None,
        on_subscribe: dict[int, Script] | None = None,
        refuse_writes: frozenset[int] = frozenset(),
        disconnect_after_script: bool = False,
    ) -> None:
        self.values = values
        self.on_write = on_write or {}
        self.on_subscribe = on_subscribe or {}
        self.refuse_writes = refuse_writes
        self.disconnect_after_script = disconnect_after_script
        self.connected = True
        self.reads: list[int] = []
        self.writes: list[tuple[int, bytes]] = []
        self.subscribed: list[int] = []
        self._callbacks: dict[int, ValueCallback] = {}

    @property
    def address(self) -> str:
        return "C0:00:00:00:00:01"

    @property
    def is_connected(self) -> bool:
        return self.connected

    def has_characteristic(self, uuid16: int) -> bool:
        return uuid16 in self.values or uuid16 in (0x2A18, 0x2A35, 0x2A52)

    async def read(self, uuid16: int) -> bytes:
        self.reads.append(uuid16)
        return self.values[uuid16]

    async def write(self, uuid16: int, data: bytes, *, response: bool = True) -> None:
        if uuid16 in self.refuse_writes:
            raise DriverError(f"ATT error on 0x{uuid16:04x}")
        self.writes.append((uuid16, bytes(data)))
        self._play(self.on_write.get((uuid16, bytes(data)), []))

    async def subscribe(self, uuid16: int, callback: ValueCallback) -> None:
        self.subscribed.append(uuid16)
        self._callbacks[uuid16] = callback
        self._play(self.on_subscribe.get(uuid16, []))

    async def unsubscribe(self, uuid16: int) -> None:
        self._callbacks.pop(uuid16, None)

    async def disconnect(self) -> None:
        self.connected = False

    def _play(self, script: Script) -> None:
        loop = asyncio.get_running_loop()
        for uuid16, data in script:  # delivered after the write returns, like the radio
            loop.call_soon(self._callbacks[uuid16], uuid16, data)
        if script and self.disconnect_after_script:
            loop.call_soon(setattr, self, "connected", False)


GM, CTX, RACP, CTS = 0x2A18, 0x2A34, 0x2A52, 0x2A2B
DIS = {
    0x2A23: h("08 07 06 05 04 03 02 01"),  # System ID
    0x2A25: h("53 4e 31 32 33 00"),  # "SN123" + NUL padding
    0x2A24: h("47 4d 2d 31"),  # "GM-1"
    0x2A29: h("41 6e 6a 69 61"),  # "Anjia"
    0x2A19: h("5a"),  # battery 90 %
}
METER_ON_UTC = h("ea 07 0b 18 00 05 00 02 00 00")  # 2026-11-24 00:05:00: the meter's clock is UTC
METER_RIGHT = h("ea 07 0b 18 08 05 14 02 00 00")  # 08:05:20, 20 s fast: within tolerance


def meas(seq: int, *, ctx: bool = False) -> bytes:
    """Recorded Glucose Measurement: seq, 2026-11-24 00:<seq>:00 on the meter, 0.001 kg/L."""
    flags = "12" if ctx else "02"
    return h(f"{flags} {seq:02x} 00 ea 07 0b 18 00 {seq:02x} 00 01 d0 11")


def meter(
    script: dict[tuple[int, bytes], Script], cts: bytes = METER_ON_UTC, **kw: object
) -> ReplayLink:
    values = {**DIS, 0x2A51: h("ff 07"), CTS: cts, CTX: b""}
    return ReplayLink(values, on_write=script, **kw)  # type: ignore[arg-type]


FIRST_SYNC: dict[tuple[int, bytes], Script] = {
    (RACP, h("01 01")): [
        (GM, meas(1)),
        (GM, meas(2, ctx=True)),
        (CTX, h("02 02 00 03")),  # context of seq 2: meal 3 (fasting)
        (GM, meas(3)),
        (GM, meas(3)),  # duplicated on the air
        (RACP, h("06 00 01 01")),
    ]
}


async def test_first_sync_reads_identity_sets_clock_and_converts_records() -> None:
    link = meter(FIRST_SYNC)
    driver = GlucoseMeterDriver(link, clock=clock, tz=SHANGHAI, timeout_s=1.0)
    result = await driver.fetch_since(None)
    assert result.ok, result.failure_reason
    assert link.subscribed == [GM, CTX, RACP]
    # the clock is read, found 8 h off, and set to Shanghai local time (adjust reason 0x02)
    assert link.writes == [(CTS, h("ea 07 0b 18 08 05 00 02 00 02")), (RACP, h("01 01"))]
    assert result.clock_skew_s == -8 * 3600
    assert result.clock_written
    assert result.device == DeviceIdentity(
        "C0:00:00:00:00:01",
        DeviceKind.GLUCOSE_METER,
        system_id="0807060504030201",
        serial_number="SN123",
        model_number="GM-1",
        manufacturer="Anjia",
    )
    assert result.battery_percent == 90
    assert result.features == 0x07FF
    assert result.watermark == 3
    assert [r.sequence_number for r in result.readings] == [1, 2, 3]
    first = result.readings[0]
    # stamped 00:01 by a meter running on UTC: corrected, that is 00:01 UTC
    assert first.measured_at == datetime(2026, 11, 24, 0, 1, tzinfo=UTC)
    assert first.received_at == NOW
    assert first.device.key == "sysid:0807060504030201"
    assert result.readings[1].context is not None
    assert result.readings[1].context.meal == 3  # type: ignore[union-attr]


async def test_incremental_sync_counts_then_fetches_after_the_watermark() -> None:
    link = meter(
        {
            (RACP, h("04 03 01 03 00")): [(RACP, h("05 00 01 00"))],
            (RACP, h("01 03 01 03 00")): [(GM, meas(3)), (RACP, h("06 00 01 01"))],
        },
        cts=METER_RIGHT,
    )
    result = await GlucoseMeterDriver(link, clock=clock, tz=SHANGHAI).fetch_since(2)
    assert result.ok
    assert [w for w in link.writes if w[0] == CTS] == []  # 20 s off: left alone
    assert result.clock_skew_s == 20.0
    assert result.watermark == 3
    assert [r.sequence_number for r in result.readings] == [3]


async def test_known_identity_skips_the_device_information_reads() -> None:
    known = DeviceIdentity("C0:00:00:00:00:01", DeviceKind.GLUCOSE_METER, serial_number="X")
    link = meter({(RACP, h("01 01")): [(RACP, h("06 00 01 06"))]}, cts=METER_RIGHT)
    driver = GlucoseMeterDriver(link, clock=clock, tz=SHANGHAI, identity=known)
    result = await driver.fetch_since(None)
    assert result.ok
    assert result.readings == ()
    assert result.device is known
    assert not {0x2A23, 0x2A24, 0x2A25, 0x2A29} & set(link.reads)


async def test_timeout_writes_abort_and_keeps_the_watermark_and_received_readings() -> None:
    link = meter({(RACP, h("01 03 01 08 00")): [(GM, meas(8))]}, cts=METER_RIGHT)
    driver = GlucoseMeterDriver(link, clock=clock, tz=SHANGHAI, timeout_s=0.1)
    link.on_write[(RACP, h("04 03 01 08 00"))] = [(RACP, h("05 00 02 00"))]
    result = await driver.fetch_since(7)
    assert result.failure_stage is ConnectStage.TRANSFER
    assert result.failure_reason == "timeout"
    assert link.writes[-1] == (RACP, h("03 00"))
    assert result.watermark == 7
    assert [r.sequence_number for r in result.readings] == [8]


async def test_link_lost_mid_transfer_is_a_failure_fast() -> None:
    link = meter({(RACP, h("01 01")): [(GM, meas(1))]}, disconnect_after_script=True)
    driver = GlucoseMeterDriver(link, clock=clock, tz=SHANGHAI, timeout_s=5.0)
    started = time.monotonic()
    result = await driver.fetch_since(None)
    assert time.monotonic() - started < 2.0  # not the 5 s step timeout
    assert (result.failure_stage, result.failure_reason) == (
        ConnectStage.TRANSFER,
        "link lost during the transfer",
    )
    assert [r.sequence_number for r in result.readings] == [1]
    assert result.watermark is None


async def test_meter_refusing_the_clock_write_still_syncs_with_the_skew() -> None:
    link = meter(FIRST_SYNC, refuse_writes=frozenset({CTS}))
    result = await GlucoseMeterDriver(link, clock=clock, tz=SHANGHAI).fetch_since(None)
    assert result.ok
    assert not result.clock_written
    assert result.clock_skew_s == -8 * 3600
    assert ReadingFlag.CLOCK_UNCORRECTED not in result.readings[0].flags


async def test_refused_racp_write_fails_the_transfer() -> None:
    link = meter(FIRST_SYNC, cts=METER_RIGHT, refuse_writes=frozenset({RACP}))
    result = await GlucoseMeterDriver(link, clock=clock, tz=SHANGHAI).fetch_since(None)
    assert result.failure_stage is ConnectStage.TRANSFER
    assert result.watermark is None


async def test_failure_response_code_and_malformed_identity_are_reported() -> None:
    link = meter({(RACP, h("01 01")): [(GM, h("02 01")), (RACP, h("06 00 01 05"))]})
    link.values[0x2A29] = h("ff fe")  # not UTF-8: identity without manufacturer, sync goes on
    result = await GlucoseMeterDriver(link, clock=clock, tz=SHANGHAI).fetch_since(None)
    assert result.device.manufacturer is None
    assert result.device.serial_number == "SN123"
    assert result.malformed == 1
    assert result.failure_stage is ConnectStage.TRANSFER
    assert result.failure_reason == "response_code (response code 0x05)"


# -- blood pressure -------------------------------------------------------------------------------

BPM, ICP = 0x2A35, 0x2A36
# flags 1e: 2026-11-24 08:0<m>:00, pulse 72, user <u>, status 0; 120/80 MAP 93 mmHg
STORED_1 = h("1e 78 00 50 00 5d 00 ea 07 0b 18 08 00 00 48 00 01 00 00")
STORED_2 = h("1e 82 00 55 00 64 00 ea 07 0b 18 08 03 00 48 00 02 00 00")


def cuff(script: Script, **kw: object) -> ReplayLink:
    values = {**DIS, CTS: METER_RIGHT, ICP: b""}
    return ReplayLink(values, on_subscribe={BPM: script}, **kw)  # type: ignore[arg-type]


async def test_cuff_resends_are_collected_once_until_the_cuff_goes_quiet() -> None:
    link = cuff([(BPM, STORED_1), (BPM, STORED_2), (BPM, STORED_1)])
    pressures: list[CuffPressure] = []
    link.on_subscribe[ICP] = [(ICP, h("00 96 00 ff 07 ff 07"))]
    driver = BloodPressureDriver(link, clock=clock, tz=SHANGHAI, on_cuff_pressure=pressures.append)
    result = await driver.collect(idle_timeout_s=0.1)
    assert result.ok
    assert link.subscribed == [BPM, ICP]
    assert [(r.user_id, r.systolic_mmhg) for r in result.readings] == [(1, 120.0), (2, 130.0)]
    assert result.duplicates == 1
    assert pressures == [CuffPressure(150.0, "mmHg")]
    assert result.readings[0].measured_at == datetime(2026, 11, 23, 23, 59, 40, tzinfo=UTC)
    assert result.watermark is None


async def test_cuff_session_ends_when_the_cuff_disconnects() -> None:
    link = cuff([(BPM, STORED_1)], disconnect_after_script=True)
    started = time.monotonic()
    result = await BloodPressureDriver(link, clock=clock, tz=SHANGHAI).collect(idle_timeout_s=5)
    assert time.monotonic() - started < 2.0
    assert result.ok
    assert len(result.readings) == 1


@pytest.mark.parametrize("refused", [BPM])
async def test_cuff_subscription_refused_is_a_subscribe_failure(refused: int) -> None:
    class Refusing(ReplayLink):
        async def subscribe(self, uuid16: int, callback: ValueCallback) -> None:
            if uuid16 == refused:
                raise DriverError("CCCD write refused")
            await super().subscribe(uuid16, callback)

    link = Refusing({**DIS, CTS: METER_RIGHT})
    result = await BloodPressureDriver(link, clock=clock, tz=SHANGHAI).collect(idle_timeout_s=0.1)
    assert result.failure_stage is ConnectStage.SUBSCRIBE
    assert result.readings == ()
