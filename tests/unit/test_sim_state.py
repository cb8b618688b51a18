"""The simulated devices' pure state: RACP server (specs/ble.md §1.4), store, faults, cuff resend,
clock. Wire bytes are literals on purpose: the sim encodes with the shared codecs, so only literal
vectors catch a symmetric bug.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from device_drivers.codec.glucose import GlucoseMeasurement
from device_drivers.codec.sfloat import Special
from device_drivers.errors import DecodeError
from firmware_sim.device_state import (
    RacpOutcome,
    SimBpMonitor,
    SimGlucoseMeter,
    cuff_pressure_profile,
)
from firmware_sim.errors import SimAttError, SimConfigError
from firmware_sim.faults import Faults
from firmware_sim.scenarios import BpSample, GlucoseSample

GM, CTX, RACP, CTS = 0x2A18, 0x2A34, 0x2A52, 0x2A2B
T0 = datetime(2026, 11, 23, 23, 30, tzinfo=UTC)  # 2026-11-24 07:30 in UTC+8


class FakeClock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def h(text: str) -> bytes:
    return bytes.fromhex(text)


def sample(minutes: int = 0, mmol: float = 5.6, meal: int | None = 3) -> GlucoseSample:
    return GlucoseSample(T0 + timedelta(minutes=minutes), mmol, meal=meal)


def ready(meter: SimGlucoseMeter) -> SimGlucoseMeter:
    """Connected, with 0x2A18 notifications and 0x2A52 indications enabled."""
    meter.on_connect()
    meter.set_subscription(GM, notify=True, indicate=False)
    meter.set_subscription(CTX, notify=True, indicate=False)
    meter.set_subscription(RACP, notify=False, indicate=True)
    return meter


def meter_with(count: int, **kwargs: object) -> SimGlucoseMeter:
    clock = FakeClock(T0 + timedelta(days=1))
    samples = [sample(minutes=i) for i in range(count)]
    return ready(SimGlucoseMeter(clock, samples=samples, **kwargs))  # type: ignore[arg-type]


def seqs(outcome: RacpOutcome) -> list[int]:
    return [
        GlucoseMeasurement.from_bytes(n.data).sequence_number
        for n in outcome.notifications
        if n.uuid16 == GM
    ]


def finish(meter: SimGlucoseMeter, data: str) -> RacpOutcome:
    outcome = meter.handle_racp(h(data))
    meter.procedure_finished()
    return outcome


# -- report: literal wire vectors ----------------------------------------------------------------
def test_report_all_sends_measurement_then_context_then_success() -> None:
    meter = meter_with(1)
    outcome = meter.handle_racp(h("01 01"))
    assert [(n.uuid16, n.data) for n in outcome.notifications] == [
        # flags 0x13: time offset, concentration kg/L, context follows; seq 1; 2026-11-24
        # 07:30:00; offset 0; 101 mg/dL = 101e-5 kg/L (SFLOAT 0xB065); capillary plasma/finger
        (GM, h("13 01 00 ea 07 0b 18 07 1e 00 00 00 65 b0 12")),
        # flags 0x06: meal + tester/health; seq 1; fasting; self / no health issues
        (CTX, h("06 01 00 03 51")),
    ]
    assert outcome.indication == h("06 00 01 01")
    assert outcome.starts_procedure
    assert not outcome.disconnect


def test_mol_per_litre_meter_sends_5_6_mmol_as_56e_minus_4() -> None:
    clock = FakeClock(T0)
    meter = ready(SimGlucoseMeter(clock, samples=[sample(meal=None)], unit="mol/L"))
    outcome = meter.handle_racp(h("01 01"))
    # flags 0x07: time offset, concentration, mol/L; no context; SFLOAT 0xC038
    assert [n.data for n in outcome.notifications] == [
        h("07 01 00 ea 07 0b 18 07 1e 00 00 00 38 c0 12")
    ]


def test_count_and_filters_by_sequence_number() -> None:
    meter = meter_with(5)
    assert finish(meter, "04 01").indication == h("05 00 05 00")
    assert finish(meter, "04 03 01 04 00").indication == h("05 00 02 00")
    assert seqs(finish(meter, "01 03 01 04 00")) == [4, 5]
    assert seqs(finish(meter, "01 02 01 02 00")) == [1, 2]
    assert seqs(finish(meter, "01 04 01 02 00 03 00")) == [2, 3]
    assert seqs(finish(meter, "01 05")) == [1]
    assert seqs(finish(meter, "01 06")) == [5]


def test_filter_by_user_facing_time() -> None:
    meter = meter_with(5)  # 07:30 .. 07:34 on 2026-11-24
    outcome = finish(meter, "01 03 02 ea 07 0b 18 07 21 00")  # >= 07:33:00
    assert seqs(outcome) == [4, 5]
    outcome = finish(meter, "01 04 02 ea 07 0b 18 07 1f 00 ea 07 0b 18 07 1f 00")  # == 07:31
    assert seqs(outcome) == [2]


def test_empty_results() -> None:
    meter = meter_with(3)
    assert finish(meter, "01 03 01 63 00").indication == h("06 00 01 06")
    assert finish(meter, "04 03 01 63 00").indication == h("05 00 00 00")
    empty = meter_with(0)
    assert finish(empty, "01 01").indication == h("06 00 01 06")
    assert finish(empty, "01 06").indication == h("06 00 01 06")
    assert finish(empty, "02 01").indication == h("06 00 02 06")


@pytest.mark.parametrize(
    ("request_hex", "response_hex"),
    [
        ("01 00", "06 00 01 03"),  # report with operator Null: invalid operator
        ("01 07", "06 00 01 04"),  # RFU operator: operator not supported
        ("04 00", "06 00 04 03"),
        ("09 01", "06 00 09 02"),  # unknown op code
        ("05 00 01 00", "06 00 05 02"),  # a response op code written by the client
        ("06 00 01 01", "06 00 06 02"),
        ("01 03 01 05", "06 00 01 05"),  # operand one byte short: invalid operand
        ("01 01 00", "06 00 01 05"),  # operand where none belongs
        ("01 04 01 0a 00 05 00", "06 00 01 05"),  # range upside down
        ("01 03 03 01 00", "06 00 01 09"),  # unknown filter type: operand not supported
        ("03 01", "06 00 03 03"),  # abort needs operator Null
        ("03 00", "06 00 03 01"),  # abort with nothing running: success
    ],
)
def test_response_codes(request_hex: str, response_hex: str) -> None:
    meter = meter_with(3)
    outcome = meter.handle_racp(h(request_hex))
    assert outcome.indication == h(response_hex)
    assert outcome.notifications == ()
    assert not meter.procedure_running


def test_delete() -> None:
    meter = meter_with(5)
    assert finish(meter, "02 02 01 02 00").indication == h("06 00 02 01")
    assert [r.sequence_number for r in meter.records] == [3, 4, 5]
    assert finish(meter, "02 01").indication == h("06 00 02 01")
    assert finish(meter, "04 01").indication == h("05 00 00 00")
    meter.add_sample(sample())
    assert meter.records[0].sequence_number == 6  # numbering goes on after a delete


# -- ATT application errors ---------------------------------------------------------------------
@pytest.mark.parametrize(
    ("subscriptions"),
    [
        {},
        {GM: (True, False)},  # RACP indications missing
        {RACP: (False, True)},  # measurement notifications missing
        {GM: (False, True), RACP: (False, True)},  # indications instead of notifications
    ],
)
def test_racp_before_cccds_is_att_error_0x81(subscriptions: dict[int, tuple[bool, bool]]) -> None:
    meter = SimGlucoseMeter(FakeClock(T0), samples=[sample()])
    meter.on_connect()
    for uuid16, (notify, indicate) in subscriptions.items():
        meter.set_subscription(uuid16, notify=notify, indicate=indicate)
    with pytest.raises(SimAttError) as info:
        meter.handle_racp(h("01 01"))
    assert (info.value.code, info.value.uuid16) == (0x81, RACP)


def test_subscriptions_do_not_survive_a_reconnect() -> None:
    meter = meter_with(1)
    meter.on_disconnect()
    meter.on_connect()
    with pytest.raises(SimAttError) as info:
        meter.handle_racp(h("04 01"))
    assert info.value.code == 0x81


def test_procedure_in_progress_is_att_error_0x80_and_abort_stops_it() -> None:
    meter = meter_with(3)
    report = meter.handle_racp(h("01 01"))
    assert report.starts_procedure
    assert meter.procedure_running
    for request in ("01 01", "04 01", "02 01"):
        with pytest.raises(SimAttError) as info:
            meter.handle_racp(h(request))
        assert info.value.code == 0x80
    abort = meter.handle_racp(h("03 00"))
    assert abort.indication == h("06 00 03 01")
    assert abort.aborts_procedure
    assert not meter.procedure_running
    assert meter.handle_racp(h("04 01")).indication == h("05 00 03 00")


def test_finished_procedure_accepts_the_next_request_and_disconnect_clears_it() -> None:
    meter = meter_with(2)
    meter.handle_racp(h("01 01"))
    meter.procedure_finished()
    meter.handle_racp(h("01 01"))
    meter.on_disconnect()
    ready(meter)
    assert meter.handle_racp(h("04 01")).indication == h("05 00 02 00")


# -- the store -----------------------------------------------------------------------------------
def test_full_store_drops_the_oldest_record() -> None:
    meter = meter_with(600, capacity=500)
    assert len(meter.records) == 500
    assert meter.records[0].sequence_number == 101
    assert meter.records[-1].sequence_number == 600
    assert finish(meter, "04 01").indication == h("05 00 f4 01")
    assert seqs(finish(meter, "01 05")) == [101]


def test_sequence_number_wraps_at_u16() -> None:
    meter = meter_with(3, first_sequence_number=0xFFFE)
    assert [r.sequence_number for r in meter.records] == [0xFFFE, 0xFFFF, 0]
    assert seqs(finish(meter, "01 06")) == [0]  # "last" is the newest, not the largest


def test_reset_sequence_fault_restarts_numbering_on_that_connection() -> None:
    clock = FakeClock(T0 + timedelta(days=1))
    meter = SimGlucoseMeter(
        clock,
        samples=[sample(i) for i in range(4)],
        faults=Faults(reset_sequence_on_connection=2),
    )
    ready(meter)
    assert len(meter.records) == 4
    meter.on_disconnect()
    ready(meter)
    assert meter.records == ()
    meter.add_sample(sample(10))
    assert meter.records[0].sequence_number == 1


def test_control_solution_and_hi_have_no_context_or_carry_status() -> None:
    meter = ready(SimGlucoseMeter(FakeClock(T0)))
    control = meter.add_sample(GlucoseSample(T0, 6.9, sample_type=10, sample_location=4))
    high = meter.add_sample(GlucoseSample(T0, 33.4, meal=4, sensor_status=1 << 5))
    assert control.context is None
    assert control.measurement.is_control_solution
    assert high.measurement.sensor_status == 0x20
    assert high.context is not None
    assert high.context.meal == 4
    assert high.measurement.glucose_mg_dl == 602.0


# -- faults --------------------------------------------------------------------------------------
def test_disconnect_after_records_sends_only_those_and_no_answer() -> None:
    meter = meter_with(5, faults=Faults(disconnect_after_records=2))
    outcome = meter.handle_racp(h("01 01"))
    assert seqs(outcome) == [1, 2]
    assert outcome.disconnect
    assert outcome.indication is None


def test_drop_and_duplicate_by_index() -> None:
    meter = meter_with(
        4, faults=Faults(drop_records=frozenset({1}), duplicate_records=frozenset({2}))
    )
    outcome = meter.handle_racp(h("01 01"))
    assert seqs(outcome) == [1, 3, 3, 4]
    kinds = [n.uuid16 for n in outcome.notifications]
    assert kinds == [GM, CTX, GM, CTX, GM, CTX, GM, CTX]
    assert outcome.indication == h("06 00 01 01")


def test_malformed_payloads() -> None:
    meter = meter_with(
        2, faults=Faults(truncate_records=frozenset({0}), reserved_sfloat_records=frozenset({1}))
    )
    outcome = meter.handle_racp(h("01 01"))
    truncated, _, reserved, _ = (n.data for n in outcome.notifications)
    assert len(truncated) == 13
    with pytest.raises(DecodeError):
        GlucoseMeasurement.from_bytes(truncated)
    assert reserved[12:14] == h("01 08")  # SFLOAT 0x0801, reserved
    decoded = GlucoseMeasurement.from_bytes(reserved)
    assert decoded.concentration is not None
    assert decoded.concentration.special is Special.RESERVED
    assert decoded.glucose_mmol_l is None


def test_racp_error_code_fault() -> None:
    meter = meter_with(2, faults=Faults(racp_response_code=0x08))
    assert meter.handle_racp(h("01 01")).indication == h("06 00 01 08")
    assert meter.handle_racp(h("04 01")).indication == h("06 00 04 08")


def test_silent_meter_never_answers_and_stays_busy() -> None:
    meter = meter_with(2, faults=Faults(silent_racp=True))
    outcome = meter.handle_racp(h("01 01"))
    assert outcome.notifications == ()
    assert outcome.indication is None
    assert not outcome.disconnect
    with pytest.raises(SimAttError) as info:
        meter.handle_racp(h("01 01"))
    assert info.value.code == 0x80
    assert meter.handle_racp(h("03 00")).indication is None  # not even an abort


def test_faults_only_on_listed_connections() -> None:
    faults = Faults(disconnect_after_records=1, on_connections=frozenset({1}))
    meter = meter_with(3, faults=faults)
    assert meter.handle_racp(h("01 01")).disconnect
    meter.on_disconnect()
    ready(meter)
    outcome = meter.handle_racp(h("01 03 01 02 00"))
    assert seqs(outcome) == [2, 3]
    assert outcome.indication == h("06 00 01 01")


def test_random_drops_are_seeded() -> None:
    def dropped(seed: int) -> list[int]:
        meter = meter_with(60, faults=Faults(seed=seed, drop_probability=0.2))
        return seqs(meter.handle_racp(h("01 01")))

    first = dropped(7)
    assert first == dropped(7)
    assert first != dropped(8)
    assert 30 < len(first) < 60


@pytest.mark.parametrize(
    "kwargs",
    [
        {"drop_probability": 1.5},
        {"duplicate_probability": -0.1},
        {"disconnect_after_records": -1},
        {"racp_response_code": 256},
        {"clock_zone_offset_minutes": 15 * 60},
        {"clock_drift_ppm": 20_000.0},
    ],
)
def test_fault_knobs_are_validated(kwargs: dict[str, object]) -> None:
    with pytest.raises(SimConfigError):
        Faults(**kwargs)  # type: ignore[arg-type]


# -- clock ---------------------------------------------------------------------------------------
def test_clock_skew_zone_and_drift_stamp_records() -> None:
    clock = FakeClock(T0)
    skewed = SimGlucoseMeter(clock, samples=[sample()], faults=Faults(clock_skew_s=125))
    assert skewed.records[0].measurement.base_time.to_datetime() == datetime(2026, 11, 24, 7, 32, 5)
    utc_meter = SimGlucoseMeter(
        clock, samples=[sample()], faults=Faults(clock_zone_offset_minutes=0)
    )
    assert utc_meter.records[0].measurement.base_time.to_datetime() == datetime(
        2026, 11, 23, 23, 30
    )
    drifting = SimGlucoseMeter(clock, faults=Faults(clock_drift_ppm=100))
    clock.advance(1_000_000)  # 100 ppm of 10^6 s = 100 s fast
    assert drifting.clock.skew_s == pytest.approx(8 * 3600 + 100)


def test_current_time_read_and_write() -> None:
    clock = FakeClock(T0)
    meter = SimGlucoseMeter(clock, faults=Faults(clock_zone_offset_minutes=0, clock_skew_s=-30))
    # UTC 23:29:30 on Monday 2026-11-23; fractions 0; adjust reason 0
    assert meter.current_time_value() == h("ea 07 0b 17 17 1d 1e 01 00 00")
    # the collector writes household local time 2026-11-24 07:30:00, Tuesday, external reference
    meter.write_current_time(h("ea 07 0b 18 07 1e 00 02 00 02"))
    assert meter.clock.read() == datetime(2026, 11, 24, 7, 30)
    assert len(meter.clock.adjustments) == 1
    assert meter.clock.adjustments[0].device_time_before == datetime(2026, 11, 23, 23, 29, 30)
    clock.advance(60)
    assert meter.current_time_value() == h("ea 07 0b 18 07 1f 00 02 00 02")
    meter.add_sample(GlucoseSample(clock.now, 5.0))
    assert meter.records[-1].measurement.base_time.to_datetime() == datetime(2026, 11, 24, 7, 31)


@pytest.mark.parametrize(
    "payload", ["ea 07 0d 01 00 00 00 00 00 00", "ea 07", "00 00 00 00 00 00 00 00 00 00"]
)
def test_invalid_current_time_write_is_att_out_of_range(payload: str) -> None:
    meter = SimGlucoseMeter(FakeClock(T0))
    with pytest.raises(SimAttError) as info:
        meter.write_current_time(h(payload))
    assert (info.value.code, info.value.uuid16) == (0xFF, CTS)
    assert meter.clock.adjustments == []


def test_naive_true_clock_is_refused() -> None:
    with pytest.raises(SimConfigError):
        SimGlucoseMeter(lambda: datetime(2026, 1, 1))


# -- blood pressure ------------------------------------------------------------------------------
def bp(user: int, minutes: int = 0, systolic: int = 120) -> BpSample:
    return BpSample(T0 + timedelta(minutes=minutes), systolic, 80, 70, user)


def test_bp_measurement_wire_vector_mmhg_and_kpa() -> None:
    cuff = SimBpMonitor(FakeClock(T0), samples=[bp(1)])
    # flags 0x0E: time stamp, pulse, user id; 120/80 MAP 93 mmHg; 2026-11-24 07:30; 70 bpm; user 1
    assert cuff.plan_session().indications[0].data == h(
        "0e 78 00 50 00 5d 00 ea 07 0b 18 07 1e 00 46 00 01"
    )
    kpa = SimBpMonitor(FakeClock(T0), samples=[bp(2)], unit="kPa")
    # flags 0x0F: + kPa; 16.0 / 10.7 / 12.4 kPa as SFLOAT exponent -1 (0xF0A0, 0xF06B, 0xF07C)
    assert kpa.plan_session().indications[0].data == h(
        "0f a0 f0 6b f0 7c f0 ea 07 0b 18 07 1e 00 46 00 02"
    )


def test_bp_readings_are_resent_until_confirmed() -> None:
    cuff = SimBpMonitor(FakeClock(T0), samples=[bp(1, 0), bp(2, 1), bp(1, 2), bp(0xFF, 3)])
    cuff.on_connect()
    plan = cuff.plan_session()
    assert [i.user_id for i in plan.indications] == [1, 2, 1, 0xFF]
    cuff.confirmed(plan.indications[0])
    cuff.confirmed(plan.indications[1])  # then the link drops
    cuff.on_disconnect()
    cuff.on_connect()
    again = cuff.plan_session()
    assert [i.reading_id for i in again.indications] == [i.reading_id for i in plan.indications[2:]]
    for item in again.indications:
        assert cuff.confirmed(item)
    assert cuff.pending == ()
    assert cuff.plan_session().indications == ()
    assert len(cuff.delivered) == 4


def test_bp_lost_confirmation_and_disconnect_faults() -> None:
    faults = Faults(lose_confirmations=frozenset({0}), disconnect_after_records=2)
    cuff = SimBpMonitor(FakeClock(T0), samples=[bp(1, i) for i in range(3)], faults=faults)
    cuff.on_connect()
    plan = cuff.plan_session()
    assert plan.disconnect_after == 2
    assert not cuff.confirmed(plan.indications[0])  # the cuff "lost" the confirmation
    assert cuff.confirmed(plan.indications[1])
    assert len(cuff.pending) == 2
    assert cuff.confirmed(plan.indications[1]) is False  # confirming twice is harmless


def test_bp_unknown_user_is_refused() -> None:
    cuff = SimBpMonitor(FakeClock(T0), users=(1, 2))
    with pytest.raises(SimConfigError):
        cuff.add_sample(bp(3))


def test_cuff_pressures_rise_above_systolic_then_fall_below_diastolic() -> None:
    profile = cuff_pressure_profile(130, 85)
    top = profile.index(max(profile))
    assert profile[0] == 0
    assert max(profile) == 160
    assert all(a < b for a, b in itertools.pairwise(profile[: top + 1]))
    assert all(a > b for a, b in itertools.pairwise(profile[top:]))
    assert min(profile[top:]) <= 75
    cuff = SimBpMonitor(FakeClock(T0))
    values = cuff.cuff_pressures(BpSample(T0, 130, 85, 70, 2))
    assert len(values) == len(profile)
    assert values[1] == h("08 14 00 ff 07 ff 07 02")  # 20 mmHg, NaN, NaN, user 2
