"""The drivers end to end: ``connect_gatt_link`` (bleak API, our bumble backend) and
``GlucoseMeterDriver`` / ``BloodPressureDriver`` against the simulated meter and cuff, real bumble
GATT peripherals on one in-process air (docs/simulator.md).

Every assertion compares with the simulator's ground truth (its record store, the samples' true
times, its clock and its pairing count), never with constants. Spec: specs/ble.md §1.4-§1.6 (RACP
sync, sequence reset), §1.5 (bonding), §2.4-§2.5 (cuff resend after a lost confirmation), §3
(clock skew, Current Time); contracts: docs/device_layer.md ("Sessions, conversion, drivers").
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from device_drivers.bleak_link import BleakGattLink, connect_gatt_link
from device_drivers.bumble_air import BumbleAir
from device_drivers.driver import BloodPressureDriver, GlucoseMeterDriver, SyncResult
from device_drivers.errors import ConnectStage, GattError
from device_drivers.model import BloodPressureReading, GlucoseReading, ReadingFlag
from device_drivers.session.bp_measurement import fresh_readings
from device_drivers.session.clock import gateway_local_time
from device_drivers.uuids import GLUCOSE_MEASUREMENT
from firmware_sim.device_state import GlucoseRecord, SimBpMonitor, SimGlucoseMeter
from firmware_sim.faults import Faults
from firmware_sim.peripheral import SimCuff, SimMeter
from firmware_sim.scenarios import BpSample, GlucoseSample, generate

pytestmark = pytest.mark.sim

HOUSEHOLD_OFFSET_MIN = 480
TZ = ZoneInfo("Asia/Shanghai")  # the household (UTC+8, no DST)
CONNECT_S = 3.0
RACP_STEP_S = 5.0
TIME_TOLERANCE_S = 1.0


def now() -> datetime:
    """The true time, for the simulated devices and the gateway alike."""
    return datetime.now(UTC)


def glucose_samples(count: int, *, seed: int = 5) -> tuple[GlucoseSample, ...]:
    data = generate(
        "well_controlled",
        seed=seed,
        end=now(),
        days=count // 3 + 3,
        utc_offset_minutes=HOUSEHOLD_OFFSET_MIN,
    )
    samples = data.last_glucose(count).glucose
    assert len(samples) == count
    return samples


def new_tests(count: int, *, after: datetime) -> list[GlucoseSample]:
    """Tests made on the meter after ``after`` (each a minute apart, ending a minute ago)."""
    start = max(after, now() - timedelta(minutes=count + 1))
    return [
        GlucoseSample(start + timedelta(seconds=50 * (i + 1)), 5.0 + i / 10, meal=1 + i % 5)
        for i in range(count)
    ]


@pytest.fixture
async def air() -> AsyncIterator[BumbleAir]:
    the_air = BumbleAir()
    yield the_air
    await the_air.close()


async def start_meter(air: BumbleAir, state: SimGlucoseMeter) -> SimMeter:
    return await SimMeter(air, state).start()


async def sync_meter(
    air: BumbleAir,
    meter: SimMeter,
    watermark: int | None,
    *,
    pair: bool = True,
    set_clock: bool = True,
    before_fetch: Callable[[BleakGattLink], None] | None = None,
) -> SyncResult:
    link = await connect_gatt_link(meter.address, air=air, pair=pair, timeout_s=CONNECT_S)
    try:
        if before_fetch is not None:
            before_fetch(link)
        driver = GlucoseMeterDriver(
            link, clock=now, tz=TZ, timeout_s=RACP_STEP_S, set_clock=set_clock
        )
        return await driver.fetch_since(watermark)
    finally:
        await link.disconnect()


def glucose_readings(result: SyncResult) -> list[GlucoseReading]:
    readings = [r for r in result.readings if isinstance(r, GlucoseReading)]
    assert len(readings) == len(result.readings)
    return readings


def assert_matches_store(
    readings: Sequence[GlucoseReading], records: Iterable[GlucoseRecord]
) -> None:
    """Each reading equals the meter's record with its sequence number: value, unit, device time,
    true time (within a second), context joined."""
    by_seq = {r.sequence_number: r for r in records}
    for reading in readings:
        record = by_seq[reading.sequence_number]
        m = record.measurement
        assert reading.glucose_mmol_l == m.glucose_mmol_l
        assert reading.original_unit == m.concentration_unit
        assert m.concentration is not None
        assert reading.original_value == m.concentration.value
        assert reading.device_time == m.user_facing_time
        assert reading.sample_type == m.type
        assert reading.sample_location == m.sample_location
        assert reading.measured_at is not None
        error_s = abs((reading.measured_at - record.measured_at).total_seconds())
        assert error_s <= TIME_TOLERANCE_S, (reading.sequence_number, error_s)
        if record.context is None:
            assert reading.context is None
        else:
            assert reading.context is not None
            assert reading.context.meal == record.context.meal
            assert reading.context.tester == record.context.tester
            assert reading.context.health == record.context.health
            assert reading.context.carbohydrate_id == record.context.carbohydrate_id
            carbs = record.context.carbohydrate_kg
            expected_g = None if carbs is None or carbs.value is None else carbs.value * 1000
            assert reading.context.carbohydrate_g == pytest.approx(expected_g)


def identities(readings: Iterable[GlucoseReading | BloodPressureReading]) -> set[tuple[str, ...]]:
    return {r.identity for r in readings}


# -- glucose meter ------------------------------------------------------------------------------


async def test_sync_500_records(air: BumbleAir) -> None:
    state = SimGlucoseMeter(now, samples=glucose_samples(500), capacity=1000)
    meter = await start_meter(air, state)
    try:
        result = await sync_meter(air, meter, None)
    finally:
        await meter.stop()
    assert result.ok, result.failure_reason
    readings = glucose_readings(result)
    records = state.records
    assert [r.sequence_number for r in readings] == [r.sequence_number for r in records]
    assert len(readings) == len(records) == 500
    assert_matches_store(readings, records)
    assert sum(r.context is not None for r in readings) == sum(
        r.context is not None for r in records
    )
    assert any(r.context is not None for r in records)  # the join is exercised
    assert result.watermark == records[-1].sequence_number
    assert result.device.serial_number == state.info.serial
    assert result.device.model_number == state.info.model
    assert result.device.system_id == state.info.system_id.hex
    assert result.battery_percent == state.battery_percent
    assert result.features == state.feature.value
    assert all(ReadingFlag.CLOCK_UNCORRECTED not in r.flags for r in readings)
    assert result.malformed == 0
    assert not result.resynced


async def test_disconnect_mid_transfer_then_resync_from_the_watermark(air: BumbleAir) -> None:
    first, later = 300, 200
    cut_after = 120
    state = SimGlucoseMeter(
        now,
        samples=glucose_samples(first),
        faults=Faults(disconnect_after_records=cut_after, on_connections=frozenset({2})),
    )
    meter = await start_meter(air, state)
    try:
        synced = await sync_meter(air, meter, None)  # connection 1
        assert synced.ok
        assert synced.watermark == state.records[-1].sequence_number
        await meter.add_measurements(new_tests(later, after=state.records[-1].measured_at))

        cut = await sync_meter(air, meter, synced.watermark)  # connection 2: dropped
        assert cut.failure_stage is ConnectStage.TRANSFER
        assert cut.watermark == synced.watermark  # not committed without the final response
        new_records = [r for r in state.records if r.sequence_number > synced.watermark]
        assert len(new_records) == later
        expected_cut = [r.sequence_number for r in new_records[:cut_after]]
        assert [r.sequence_number for r in glucose_readings(cut)] == expected_cut

        resumed = await sync_meter(air, meter, cut.watermark)  # connection 3
    finally:
        await meter.stop()
    assert resumed.ok, resumed.failure_reason
    assert state.connection_number == 3
    again = glucose_readings(resumed)
    # exactly the records after the watermark, each once: nothing lost, nothing twice
    assert [r.sequence_number for r in again] == [r.sequence_number for r in new_records]
    assert resumed.watermark == state.records[-1].sequence_number
    assert_matches_store(again, state.records)
    everything = [*glucose_readings(synced), *glucose_readings(cut), *again]
    stored = fresh_readings(everything, frozenset())  # what a store keeping identities holds
    assert len(stored) == len(state.records)
    assert {r.sequence_number for r in stored} == {r.sequence_number for r in state.records}
    assert identities(glucose_readings(cut)) <= identities(again)


async def test_sequence_reset_triggers_a_full_resync_and_loses_nothing(air: BumbleAir) -> None:
    state = SimGlucoseMeter(
        now, samples=glucose_samples(500), faults=Faults(reset_sequence_on_connection=2)
    )
    meter = await start_meter(air, state)
    try:
        before = await sync_meter(air, meter, None)  # connection 1: all 500
        assert before.ok
        old_records = state.records
        assert before.watermark == old_records[-1].sequence_number == 500

        empty = await sync_meter(air, meter, before.watermark)  # connection 2: battery change
        assert empty.ok
        assert not state.records  # memory cleared
        assert empty.readings == ()
        assert empty.watermark == before.watermark

        await meter.add_measurements(new_tests(30, after=old_records[-1].measured_at))
        after = await sync_meter(air, meter, empty.watermark)  # connection 3
    finally:
        await meter.stop()
    assert after.ok, after.failure_reason
    assert after.resynced
    new = glucose_readings(after)
    assert [r.sequence_number for r in new] == [r.sequence_number for r in state.records]
    assert [r.sequence_number for r in new] == list(range(1, 31))  # numbers reused
    assert after.watermark == 30  # the watermark follows the meter down
    assert_matches_store(new, state.records)
    # dedupe keeps apart a new record that reuses an old sequence number
    seen = identities(glucose_readings(before))
    assert fresh_readings(new, seen) == new
    assert len(seen | identities(new)) == len(old_records) + len(state.records)


async def test_bonding_is_required_and_the_bond_is_reused(air: BumbleAir) -> None:
    state = SimGlucoseMeter(now, samples=glucose_samples(20))
    meter = await start_meter(air, state)
    try:
        refused = await sync_meter(air, meter, None, pair=False)
        assert refused.failure_stage is ConnectStage.PAIR
        assert refused.readings == ()
        assert refused.watermark is None
        assert not refused.clock_written  # Current Time writes need encryption too
        assert meter.pairings == 0

        async def link_level(pair: bool) -> None:
            link = await connect_gatt_link(meter.address, air=air, pair=pair, timeout_s=CONNECT_S)
            try:
                with pytest.raises(GattError) as info:
                    await link.subscribe(GLUCOSE_MEASUREMENT, lambda _u, _d: None)
                assert (info.value.uuid16, info.value.code) == (GLUCOSE_MEASUREMENT, 0x0F)
                assert info.value.requires_pairing
            finally:
                await link.disconnect()

        await link_level(pair=False)

        encrypted: list[bool] = []

        def note_encryption(_link: BleakGattLink) -> None:
            assert meter.connection is not None
            encrypted.append(meter.connection.is_encrypted)

        paired = await sync_meter(air, meter, None, before_fetch=note_encryption)
        assert paired.ok, paired.failure_reason
        assert len(paired.readings) == len(state.records)
        assert meter.pairings == 1
        reconnected = await sync_meter(air, meter, paired.watermark, before_fetch=note_encryption)
    finally:
        await meter.stop()
    assert reconnected.ok, reconnected.failure_reason
    assert reconnected.readings == ()
    assert meter.pairings == 1  # the bond was reused: no second pairing
    # first paired connection: encrypted on demand (after connect); the reconnect: at once
    assert encrypted == [False, True]


@pytest.mark.parametrize("skew_min", [-17, 42])
async def test_clock_skew_is_measured_corrected_and_the_clock_set(
    air: BumbleAir, skew_min: int
) -> None:
    skew_s = skew_min * 60.0
    state = SimGlucoseMeter(now, samples=glucose_samples(60), faults=Faults(clock_skew_s=skew_s))
    assert state.clock.skew_s == pytest.approx(HOUSEHOLD_OFFSET_MIN * 60 + skew_s, abs=1)
    meter = await start_meter(air, state)
    try:
        result = await sync_meter(air, meter, None)
    finally:
        await meter.stop()
    assert result.ok, result.failure_reason
    assert result.clock_skew_s == pytest.approx(skew_s, abs=TIME_TOLERANCE_S)
    readings = glucose_readings(result)
    assert all(r.clock_skew_s == result.clock_skew_s for r in readings)
    # device times are the skewed clock's; the corrected times are the truth within a second
    assert_matches_store(readings, state.records)
    first = state.records[0]
    assert first.measurement.user_facing_time == gateway_local_time(
        first.measured_at + timedelta(seconds=skew_s), TZ
    ).replace(microsecond=0)
    # Current Time was written with the household's local time; the clock is right from now on
    assert result.clock_written
    [adjustment] = state.clock.adjustments
    written = adjustment.written.to_datetime()
    assert written is not None
    truth = gateway_local_time(adjustment.at, TZ)
    assert abs((written - truth).total_seconds()) <= TIME_TOLERANCE_S
    assert state.clock.skew_s == pytest.approx(HOUSEHOLD_OFFSET_MIN * 60, abs=TIME_TOLERANCE_S)


async def test_clock_not_written_when_not_allowed_still_corrects(air: BumbleAir) -> None:
    skew_s = 25 * 60.0
    state = SimGlucoseMeter(now, samples=glucose_samples(30), faults=Faults(clock_skew_s=skew_s))
    meter = await start_meter(air, state)
    try:
        result = await sync_meter(air, meter, None, set_clock=False)
    finally:
        await meter.stop()
    assert result.ok
    assert not result.clock_written
    assert state.clock.adjustments == []
    assert result.clock_skew_s == pytest.approx(skew_s, abs=TIME_TOLERANCE_S)
    assert_matches_store(glucose_readings(result), state.records)


async def test_meter_on_the_wrong_time_zone(air: BumbleAir) -> None:
    """A meter left on UTC in a UTC+8 household: its times are 8 h behind the household's wall
    clock. The driver measures a skew of -8 h against household local time (docs/device_layer.md:
    skew = device minus gateway local wall time), keeps the device time as the meter showed it,
    places the readings at the true UTC instant, and sets the meter to household local time."""
    state = SimGlucoseMeter(
        now, samples=glucose_samples(40), faults=Faults(clock_zone_offset_minutes=0)
    )
    meter = await start_meter(air, state)
    try:
        result = await sync_meter(air, meter, None)
        assert result.ok, result.failure_reason
        zone_error_s = -HOUSEHOLD_OFFSET_MIN * 60.0
        assert result.clock_skew_s == pytest.approx(zone_error_s, abs=TIME_TOLERANCE_S)
        readings = glucose_readings(result)
        assert_matches_store(readings, state.records)
        for reading, record in zip(readings, state.records, strict=True):
            # what the meter showed was UTC wall time, not the household's
            expected_device = record.measured_at.astimezone(UTC).replace(tzinfo=None)
            assert reading.device_time == expected_device.replace(microsecond=0)
        assert result.clock_written
        assert state.clock.skew_s == pytest.approx(HOUSEHOLD_OFFSET_MIN * 60, abs=1)

        # a test made after the clock was set is in household local time, and a later sync
        # measures no skew left
        last = state.records[-1]
        await meter.add_measurements(new_tests(1, after=last.measured_at))
        later = await sync_meter(air, meter, result.watermark)
    finally:
        await meter.stop()
    assert later.ok
    assert later.clock_skew_s == pytest.approx(0.0, abs=TIME_TOLERANCE_S)
    assert not later.clock_written
    [fresh] = glucose_readings(later)
    record = state.records[-1]
    assert fresh.device_time == gateway_local_time(record.measured_at, TZ).replace(microsecond=0)
    assert_matches_store([fresh], state.records)


# -- blood-pressure cuff ------------------------------------------------------------------------


def bp_samples() -> list[BpSample]:
    """Two readings a minute apart for each of users 1 and 2 on three days, and one guest."""
    base = now().replace(microsecond=0) - timedelta(days=3)
    samples = [
        BpSample(base + timedelta(days=d, minutes=m), 120 + 3 * d + u, 78 + d, 64 + m, user_id=u)
        for d in range(3)
        for u in (1, 2)
        for m in (0, 1)
    ]
    samples.append(BpSample(base + timedelta(hours=30), 131, 85, 70, user_id=0xFF))
    return samples


async def collect(air: BumbleAir, cuff: SimCuff) -> SyncResult:
    link = await connect_gatt_link(cuff.address, air=air, timeout_s=CONNECT_S)
    try:
        driver = BloodPressureDriver(link, clock=now, tz=TZ)
        return await driver.collect(idle_timeout_s=RACP_STEP_S)
    finally:
        await link.disconnect()


def bp_readings(result: SyncResult) -> list[BloodPressureReading]:
    readings = [r for r in result.readings if isinstance(r, BloodPressureReading)]
    assert len(readings) == len(result.readings)
    return readings


def assert_bp_matches(readings: Iterable[BloodPressureReading], samples: list[BpSample]) -> None:
    """Each reading is a sample of its user slot: values equal, true time within a second."""
    for reading in readings:
        assert reading.measured_at is not None
        at = reading.measured_at
        sample = min(
            (s for s in samples if s.user_id == reading.user_id),
            key=lambda s: abs((s.measured_at - at).total_seconds()),
        )
        assert abs((sample.measured_at - at).total_seconds()) <= TIME_TOLERANCE_S
        assert reading.systolic_mmhg == sample.systolic_mmhg
        assert reading.diastolic_mmhg == sample.diastolic_mmhg
        assert reading.mean_arterial_mmhg == sample.mean_arterial_mmhg
        assert reading.pulse_bpm == sample.pulse_bpm


async def test_multi_user_cuff_resend_after_lost_confirmation_is_deduplicated(
    air: BumbleAir,
) -> None:
    samples = bp_samples()
    lost = frozenset({1, 4})
    state = SimBpMonitor(
        now,
        samples=samples,
        faults=Faults(
            lose_confirmations=lost, duplicate_records=frozenset({6}), on_connections=frozenset({1})
        ),
    )
    cuff = await SimCuff(air, state, idle_disconnect_s=0.3).start()
    try:
        first = await collect(air, cuff)
        kept = state.pending
        second = await collect(air, cuff)
    finally:
        await cuff.stop()
    assert first.ok, first.failure_reason
    assert second.ok, second.failure_reason
    one, two = bp_readings(first), bp_readings(second)
    # every stored reading arrived once in the first session (the duplicate indication is
    # recognised within the session), for every user slot
    assert len(one) == len(samples)
    assert first.duplicates == 1
    assert {r.user_id for r in one} == {s.user_id for s in samples} == {1, 2, 0xFF}
    assert_bp_matches(one, samples)
    # the cuff kept the readings whose confirmation it "lost" and sent them again
    assert len(kept) == len(lost)
    assert len(two) == len(lost)
    assert state.pending == ()
    assert identities(two) <= identities(one)
    assert fresh_readings(two, identities(one)) == []
    stored = fresh_readings([*one, *two], frozenset())
    assert len(stored) == len(samples)
    assert first.device.serial_number == state.info.serial
