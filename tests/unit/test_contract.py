"""The MQTT contract (docs/mqtt.md): golden wire files, versions, hostile payloads, topics.

The golden files in tests/vectors/wire/ are the contract test between gateway and cloud: the
gateway's tests (here) build each message from domain objects and check that the file says exactly
that; the cloud's tests decode the same files. Regenerate them after a deliberate, documented
contract change with ``ANJIA_REGEN_WIRE=1 pytest tests/unit/test_contract.py``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from device_drivers.model import (
    BloodPressureReading,
    DeviceIdentity,
    DeviceKind,
    GlucoseContext,
    GlucoseReading,
    ReadingFlag,
)
from gateway import contract as c

WIRE = Path(__file__).parents[1] / "vectors" / "wire"
GW = "gw-demo-0001"
T0 = datetime(2026, 3, 1, 7, 30, tzinfo=UTC)
METER = DeviceIdentity(
    "C0:11:22:33:44:01",
    DeviceKind.GLUCOSE_METER,
    system_id="0011223344556677",
    serial_number="GM20260001",
    model_number="GM-1",
    manufacturer="Anjia Sim",
)
CUFF = DeviceIdentity(
    "C0:11:22:33:44:02",
    DeviceKind.BLOOD_PRESSURE_MONITOR,
    serial_number="BP20260002",
    model_number="BP-2",
    manufacturer="Anjia Sim",
)


def glucose_readings() -> tuple[GlucoseReading, GlucoseReading]:
    normal = GlucoseReading(
        METER,
        41,
        datetime(2026, 3, 1, 15, 2, 10),
        T0 - timedelta(minutes=27, seconds=48),  # 15:02:10 +08:00, device 2 s slow
        T0,
        6.4,
        0.0064,
        "mol/L",
        sample_type=1,
        sample_location=1,
        context=GlucoseContext(meal=1, tester=1, health=5),
        clock_skew_s=-2.0,
    )
    hypo = GlucoseReading(
        METER,
        42,
        datetime(2026, 3, 1, 15, 29, 40),
        T0 - timedelta(seconds=18),
        T0,
        2.7,
        0.0027,
        "mol/L",
        sample_type=1,
        sample_location=1,
        clock_skew_s=-2.0,
    )
    return normal, hypo


def bp_readings() -> tuple[BloodPressureReading, BloodPressureReading]:
    dad = BloodPressureReading(
        CUFF,
        datetime(2026, 3, 1, 15, 10, 0),
        T0 - timedelta(minutes=20),
        T0,
        138.0,
        86.0,
        103.0,
        72.0,
        "mmHg",
        user_id=1,
        clock_skew_s=0.0,
    )
    guest = BloodPressureReading(
        CUFF,
        datetime(2026, 3, 1, 15, 14, 30),
        T0 - timedelta(minutes=15, seconds=30),  # device time taken as is
        T0,
        182.0,
        112.0,
        135.0,
        96.0,
        "mmHg",
        user_id=255,
        measurement_status=0x0004,
        flags=frozenset({ReadingFlag.IRREGULAR_PULSE, ReadingFlag.CLOCK_UNCORRECTED}),
    )
    return dad, guest


def golden_glucose() -> c.ReadingEnvelope:
    normal, hypo = glucose_readings()
    alert = c.LocalAlert(
        rule_id="glucose.level2_hypo",
        level="urgent",
        raised_at=T0,
        message_zh="血糖过低（<3.0 mmol/L）：请立即进食含糖食物，15 分钟后复测。",
        message_en="Glucose below 3.0 mmol/L: eat fast sugar now and re-test in 15 minutes.",
    )
    return c.ReadingEnvelope(
        schema_version=1,
        message_id="m-20260301T073000Z-0001",
        gateway_id=GW,
        sent_at=T0 + timedelta(seconds=1),
        readings=(
            c.from_reading(normal, "p-mum", attribution="enrolled"),
            c.from_reading(hypo, "p-mum", attribution="enrolled", urgent=True, local_alert=alert),
        ),
    )


def golden_bp() -> c.ReadingEnvelope:
    dad, guest = bp_readings()
    return c.ReadingEnvelope(
        schema_version=1,
        message_id="m-20260301T073000Z-0002",
        gateway_id=GW,
        sent_at=T0 + timedelta(seconds=2),
        readings=(
            c.from_reading(dad, "p-dad", attribution="slot"),
            c.from_reading(guest, None, attribution="unmapped_slot"),
        ),
    )


def golden_ack() -> c.AckMessage:
    env = golden_glucose()
    bp = golden_bp()
    return c.AckMessage(
        schema_version=1,
        gateway_id=GW,
        message_id=env.message_id,
        acked_at=T0 + timedelta(seconds=1, milliseconds=250),
        accepted=(env.readings[1].reading_id,),
        duplicates=(env.readings[0].reading_id,),
        rejected=(
            c.Rejection(
                reading_id=bp.readings[1].reading_id,
                reason="unsupported_kind",
                detail="example of a refusal: the cloud keeps nothing of this reading",
            ),
        ),
    )


def golden_config() -> c.ConfigMessage:
    return c.ConfigMessage(
        schema_version=1,
        gateway_id=GW,
        version=7,
        issued_at=datetime(2026, 2, 28, 9, 0, tzinfo=UTC),
        devices=(
            c.DeviceConfig(
                kind="glucose_meter",
                system_id="0011223344556677",
                person_ref="p-mum",
                label="妈妈的血糖仪 Mum's meter",
            ),
            c.DeviceConfig(
                kind="blood_pressure_monitor",
                serial_number="BP20260002",
                user_slots=(
                    c.UserSlot(user_id=1, person_ref="p-dad"),
                    c.UserSlot(user_id=2, person_ref="p-mum"),
                ),
                label="客厅血压计 Living-room cuff",
            ),
        ),
        persons=(
            c.PersonConfig(person_ref="p-mum", glucose_urgent_low_mmol_l=3.0),
            c.PersonConfig(
                person_ref="p-dad", systolic_urgent_mmhg=180.0, diastolic_urgent_mmhg=110.0
            ),
        ),
    )


def golden_status() -> c.StatusMessage:
    return c.StatusMessage(
        schema_version=1,
        gateway_id=GW,
        state="online",
        sent_at=T0 + timedelta(seconds=5),
        software_version="0.1.0",
        config_version=7,
        outbox=c.OutboxStatus(
            pending=12,
            in_flight=2,
            urgent_pending=0,
            capacity=100000,
            oldest_pending_at=T0 - timedelta(minutes=3),
        ),
        devices=(
            c.DeviceDiagnostics(
                device_key=METER.key,
                kind="glucose_meter",
                label="妈妈的血糖仪 Mum's meter",
                last_seen=T0,
                last_sync=T0,
                last_sync_ok=True,
                battery_pct=80,
                clock_skew_s=-2.0,
                rssi_dbm=-61,
                last_sequence_number=42,
                readings_synced=2,
            ),
            c.DeviceDiagnostics(
                device_key=CUFF.key,
                kind="blood_pressure_monitor",
                last_seen=T0 - timedelta(hours=2),
                last_sync=T0 - timedelta(hours=26),
                last_sync_ok=False,
                failure_stage="connect",
                failure_reason="out_of_connection_slots",
                consecutive_failures=3,
                battery_pct=35,
            ),
        ),
    )


def golden_event() -> c.EventMessage:
    hypo = golden_glucose().readings[1]
    return c.EventMessage(
        schema_version=1,
        gateway_id=GW,
        event_id="e-20260301T073000Z-0001",
        occurred_at=T0,
        type=c.EventType.URGENT_READING.value,
        severity="critical",
        device_key=hypo.device.key,
        person_ref=hypo.person_ref,
        reading_id=hypo.reading_id,
        rule_id="glucose.level2_hypo",
        message_zh="血糖过低（<3.0 mmol/L）：请立即进食含糖食物，15 分钟后复测。",
        message_en="Glucose below 3.0 mmol/L: eat fast sugar now and re-test in 15 minutes.",
        detail={"glucose_mmol_l": 2.7, "threshold_mmol_l": 3.0, "offline": False},
    )


GOLDEN: dict[str, tuple[Callable[[], c.Message], Callable[[bytes], c.Message]]] = {
    "reading_v1_glucose.json": (golden_glucose, c.decode_envelope),
    "reading_v1_bp.json": (golden_bp, c.decode_envelope),
    "ack_v1.json": (golden_ack, c.decode_ack),
    "config_v1.json": (golden_config, c.decode_config),
    "status_v1.json": (golden_status, c.decode_status),
    "event_v1.json": (golden_event, c.decode_event),
}


def pretty(message: c.Message) -> bytes:
    return orjson.dumps(orjson.loads(c.encode(message)), option=orjson.OPT_INDENT_2) + b"\n"


if os.environ.get("ANJIA_REGEN_WIRE") == "1":  # pragma: no cover - deliberate regeneration only
    WIRE.mkdir(parents=True, exist_ok=True)
    for _name, (_build, _) in GOLDEN.items():
        (WIRE / _name).write_bytes(pretty(_build()))


# --- golden files ------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_golden_file_decodes_to_the_message_the_gateway_builds(name: str) -> None:
    build, decoder = GOLDEN[name]
    data = (WIRE / name).read_bytes()
    decoded = decoder(data)
    assert decoded == build()
    # re-encoding gives the same JSON document, and the compact form decodes to the same message
    assert orjson.loads(c.encode(decoded)) == orjson.loads(data)
    assert decoder(c.encode(decoded)) == decoded


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_golden_file_decodes_by_topic(name: str) -> None:
    build, _ = GOLDEN[name]
    message = build()
    gateway_id, decoded = c.decode(c.topic(GW, c.channel_of(message)), (WIRE / name).read_bytes())
    assert (gateway_id, decoded) == (GW, message)


def test_golden_readings_carry_identity_attribution_and_local_alert() -> None:
    env = c.decode_envelope((WIRE / "reading_v1_glucose.json").read_bytes())
    normal, hypo = env.readings
    assert normal.reading_id == c.reading_id_for(glucose_readings()[0].identity)
    assert normal.reading_id != hypo.reading_id
    assert normal.context == c.GlucoseContextMessage(meal=1, tester=1, health=5)
    assert hypo.urgent
    assert hypo.local_alert is not None
    assert not normal.urgent
    assert hypo.measured_at == T0 - timedelta(seconds=18)
    assert hypo.device_time == datetime(2026, 3, 1, 15, 29, 40)  # naive, as the meter said
    bp = c.decode_envelope((WIRE / "reading_v1_bp.json").read_bytes())
    assert bp.readings[0].person_ref == "p-dad"
    assert not bp.readings[0].unassigned
    assert bp.readings[1].unassigned
    assert bp.readings[1].user_id == 255
    assert bp.readings[1].flags == ("clock_uncorrected", "irregular_pulse")
    assert c.known_kind(bp.readings[0]) is DeviceKind.BLOOD_PRESSURE_MONITOR


def test_encode_envelope_by_concatenation_equals_the_struct_encoding() -> None:
    env = golden_glucose()
    payloads = [c.encode_reading(r) for r in env.readings]
    assert c.encode_envelope(env.message_id, GW, env.sent_at, payloads) == c.encode(env)
    sent_at_cst = env.sent_at.astimezone(
        datetime(2026, 1, 1, tzinfo=UTC).astimezone().tzinfo or UTC
    )
    assert c.encode_envelope(env.message_id, GW, sent_at_cst, payloads) == c.encode(env)


def test_encode_envelope_refuses_bad_ids_and_sizes() -> None:
    payload = c.encode_reading(golden_glucose().readings[0])
    with pytest.raises(c.ContractError) as err:
        c.encode_envelope("m/1", GW, T0, [payload])
    assert err.value.fault is c.ContractFault.BAD_ID
    with pytest.raises(c.ContractError):
        c.encode_envelope("m-1", GW, T0, [])
    with pytest.raises(c.ContractError):
        c.encode_envelope("m-1", GW, T0, [payload] * (c.MAX_READINGS_PER_ENVELOPE + 1))


# --- versions and evolution --------------------------------------------------------------------
def golden_dict(name: str) -> dict[str, object]:
    data: dict[str, object] = orjson.loads((WIRE / name).read_bytes())
    return data


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_unknown_fields_are_tolerated_at_every_level(name: str) -> None:
    build, decoder = GOLDEN[name]
    doc = golden_dict(name)
    doc["added_in_v1_9"] = {"nested": [1, {"deeper": [None, True, "x"]}]}
    for key, value in doc.items():
        if key == "detail":  # a free-form map, not a struct
            continue
        items = value if isinstance(value, list) else [value]
        for item in items:
            if isinstance(item, dict):
                item["future_field"] = [1, 2, {"k": "v"}]
    assert decoder(orjson.dumps(doc)) == build()


@pytest.mark.parametrize("version", [0, 2, 99, -1, "1", 1.0, None, [1]])
def test_unsupported_schema_versions_are_rejected_with_a_clear_reason(version: object) -> None:
    doc = golden_dict("reading_v1_glucose.json")
    doc["schema_version"] = version
    with pytest.raises(c.ContractError) as err:
        c.decode_envelope(orjson.dumps(doc))
    expected = (
        c.ContractFault.MISSING_VERSION if version is None else c.ContractFault.UNSUPPORTED_VERSION
    )
    assert err.value.fault is expected
    if version is not None:
        assert err.value.schema_version == version


def test_a_future_version_with_another_shape_is_reported_as_unsupported_not_invalid() -> None:
    v2 = {"schema_version": 2, "batch": {"items": []}, "gateway_id": GW}
    for decoder in (
        c.decode_envelope,
        c.decode_ack,
        c.decode_config,
        c.decode_status,
        c.decode_event,
    ):
        with pytest.raises(c.ContractError) as err:
            decoder(orjson.dumps(v2))
        assert err.value.fault is c.ContractFault.UNSUPPORTED_VERSION
        assert err.value.schema_version == 2


def test_missing_version_is_its_own_fault() -> None:
    doc = golden_dict("ack_v1.json")
    del doc["schema_version"]
    with pytest.raises(c.ContractError) as err:
        c.decode_ack(orjson.dumps(doc))
    assert err.value.fault is c.ContractFault.MISSING_VERSION


def test_old_message_without_a_field_added_later_decodes_to_its_default() -> None:
    doc = golden_dict("reading_v1_glucose.json")
    readings = doc["readings"]
    assert isinstance(readings, list)
    for reading in readings:
        reading.pop("urgent", None)
        reading.pop("local_alert", None)
        reading.pop("attribution", None)
    env = c.decode_envelope(orjson.dumps(doc))
    assert all(
        not r.urgent and r.local_alert is None and r.attribution is None for r in env.readings
    )


# --- hostile payloads --------------------------------------------------------------------------
def mutate_reading(**changes: object) -> bytes:
    doc = golden_dict("reading_v1_glucose.json")
    readings = doc["readings"]
    assert isinstance(readings, list)
    readings[0].update(changes)
    return orjson.dumps(doc)


@pytest.mark.parametrize(
    ("payload", "fault"),
    [
        (b"", c.ContractFault.MALFORMED),
        (b"not json", c.ContractFault.MALFORMED),
        (b'{"schema_version":1', c.ContractFault.MALFORMED),
        (b"\xff\xfe{}", c.ContractFault.MALFORMED),
        (b"[]", c.ContractFault.INVALID),
        (b"null", c.ContractFault.INVALID),
        (b"1", c.ContractFault.INVALID),
        (b"[" * 100_000 + b"]" * 100_000, c.ContractFault.INVALID),  # refused at the first "["
        (
            b'{"schema_version":1,"x":' + b"[" * 50_000 + b"]" * 50_000 + b"}",
            c.ContractFault.TOO_DEEP,
        ),
        (b" " * (c.MAX_BYTES[c.Channel.READINGS] + 1), c.ContractFault.TOO_LARGE),
        (
            mutate_reading(sequence_number=7).replace(
                b'"sequence_number":7', b'"sequence_number":' + b"9" * 400
            ),
            c.ContractFault.INVALID,
        ),
        (mutate_reading(glucose_mmol_l="5.6"), c.ContractFault.INVALID),
        (mutate_reading(glucose_mmol_l=1e300), c.ContractFault.INVALID),
        (mutate_reading(sequence_number=-1), c.ContractFault.INVALID),
        (mutate_reading(sequence_number=True), c.ContractFault.INVALID),
        (mutate_reading(sequence_number=4.0), c.ContractFault.INVALID),
        (mutate_reading(user_id=256), c.ContractFault.INVALID),
        (mutate_reading(measured_at="2026-03-01T07:29:38"), c.ContractFault.INVALID),  # naive
        (mutate_reading(device_time="2026-03-01T15:29:40+08:00"), c.ContractFault.INVALID),
        (mutate_reading(received_at="yesterday"), c.ContractFault.INVALID),
        (mutate_reading(reading_id=""), c.ContractFault.INVALID),
        (mutate_reading(reading_id="x" * 10_000), c.ContractFault.INVALID),
        (mutate_reading(flags=["a"] * 1000), c.ContractFault.INVALID),
        (mutate_reading(flags="implausible"), c.ContractFault.INVALID),
        (mutate_reading(device=None), c.ContractFault.INVALID),
        (mutate_reading(context={"meal": {"a": {"b": 1}}}), c.ContractFault.INVALID),
    ],
    ids=lambda v: v.value if isinstance(v, c.ContractFault) else None,
)
def test_hostile_envelopes_raise_contract_error(payload: bytes, fault: c.ContractFault) -> None:
    with pytest.raises(c.ContractError) as err:
        c.decode_envelope(payload)
    assert err.value.fault is fault


def test_nan_and_infinity_literals_are_not_json() -> None:
    for literal in (b"NaN", b"Infinity", b"-Infinity"):
        data = orjson.dumps(orjson.loads(mutate_reading(glucose_mmol_l=1.0))).replace(
            b'"glucose_mmol_l":1.0', b'"glucose_mmol_l":' + literal
        )
        with pytest.raises(c.ContractError) as err:
            c.decode_envelope(data)
        assert err.value.fault is c.ContractFault.MALFORMED


def test_size_limits_per_channel_are_checked_before_parsing() -> None:
    big_event = orjson.dumps({**golden_dict("event_v1.json"), "pad": "x" * 40_000})
    with pytest.raises(c.ContractError) as err:
        c.decode_event(big_event)
    assert err.value.fault is c.ContractFault.TOO_LARGE


def test_envelope_reading_count_is_bounded() -> None:
    doc = golden_dict("reading_v1_glucose.json")
    readings = doc["readings"]
    assert isinstance(readings, list)
    doc["readings"] = readings[:1] * (c.MAX_READINGS_PER_ENVELOPE + 1)
    with pytest.raises(c.ContractError) as err:
        c.decode_envelope(orjson.dumps(doc))
    assert err.value.fault is c.ContractFault.INVALID
    doc["readings"] = []
    with pytest.raises(c.ContractError):
        c.decode_envelope(orjson.dumps(doc))


def test_payload_gateway_id_must_match_the_topic() -> None:
    data = (WIRE / "reading_v1_glucose.json").read_bytes()
    assert c.decode_envelope(data, gateway_id=GW).gateway_id == GW
    with pytest.raises(c.ContractError) as err:
        c.decode(c.topic("gw-other", c.Channel.READINGS), data)
    assert err.value.fault is c.ContractFault.GATEWAY_MISMATCH


@pytest.mark.parametrize("bad", ["gw/1", "gw+", "#", "gw 1", "", "x" * 65, "网关", "$SYS", "-gw"])
def test_ids_with_wildcards_or_separators_are_refused_in_payloads(bad: str) -> None:
    doc = golden_dict("status_v1.json")
    doc["gateway_id"] = bad
    with pytest.raises(c.ContractError) as err:
        c.decode_status(orjson.dumps(doc))
    assert err.value.fault is c.ContractFault.INVALID


def test_config_device_without_any_identifier_is_invalid() -> None:
    doc = golden_dict("config_v1.json")
    devices = doc["devices"]
    assert isinstance(devices, list)
    devices[0] = {"kind": "glucose_meter", "person_ref": "p-x"}
    with pytest.raises(c.ContractError) as err:
        c.decode_config(orjson.dumps(doc))
    assert err.value.fault is c.ContractFault.INVALID


def test_not_bytes_is_refused() -> None:
    with pytest.raises(c.ContractError) as err:
        c.decode_ack((WIRE / "ack_v1.json").read_text())  # type: ignore[arg-type]
    assert err.value.fault is c.ContractFault.NOT_BYTES


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600) | st.text(max_size=300).map(str.encode))
def test_arbitrary_bytes_never_escape_as_another_exception(data: bytes) -> None:
    for decoder in (
        c.decode_envelope,
        c.decode_ack,
        c.decode_config,
        c.decode_status,
        c.decode_event,
    ):
        try:
            decoder(data)
        except c.ContractError:
            pass


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(sorted(GOLDEN)), st.data())
def test_fuzzed_golden_fields_decode_or_raise_contract_error(
    name: str, data: st.DataObject
) -> None:
    doc = golden_dict(name)
    key = data.draw(st.sampled_from(sorted(doc)))
    doc[key] = data.draw(json_values)
    try:
        GOLDEN[name][1](orjson.dumps(doc))
    except c.ContractError:
        pass


# --- topics ------------------------------------------------------------------------------------
@pytest.mark.parametrize("channel", list(c.Channel))
def test_topics_are_gateway_scoped_and_parse_back(channel: c.Channel) -> None:
    name = c.topic(GW, channel)
    assert name == f"anjia/v1/gw/{GW}/{channel.value}"
    assert c.parse_topic(name) == (GW, channel)


@pytest.mark.parametrize("bad", ["gw/1", "gw+", "#", "gw 1", "", "x" * 65, "网关", "$SYS", "a\x00"])
def test_topic_builder_refuses_unsafe_ids(bad: str) -> None:
    with pytest.raises(c.ContractError) as err:
        c.topic(bad, c.Channel.READINGS)
    assert err.value.fault is c.ContractFault.BAD_ID


@pytest.mark.parametrize(
    "bad",
    [
        "anjia/v1/gw/gw-1/up/readings/extra",
        "anjia/v1/gw/gw-1/up",
        "anjia/v2/gw/gw-1/up/readings",
        "anjia/v1/gw/+/up/readings",
        "anjia/v1/gw/#/up/readings",
        "anjia/v1/gw/gw-1/up/acks",
        "anjia/v1/gw/gw-1/down/readings",
        "anjia/v1/gw//up/readings",
        "",
    ],
)
def test_parse_topic_rejects_foreign_or_wildcard_topics(bad: str) -> None:
    with pytest.raises(c.ContractError) as err:
        c.parse_topic(bad)
    assert err.value.fault is c.ContractFault.BAD_TOPIC


def test_cloud_filters_cover_every_gateway_and_can_be_shared() -> None:
    assert c.cloud_filter(c.Channel.READINGS) == "anjia/v1/gw/+/up/readings"
    assert c.cloud_filter(c.Channel.STATUS, "ingest") == "$share/ingest/anjia/v1/gw/+/up/status"
    with pytest.raises(c.ContractError):
        c.cloud_filter(c.Channel.READINGS, "a/b")


# --- from_reading ------------------------------------------------------------------------------
def test_reading_id_is_stable_and_tracks_identity() -> None:
    normal, hypo = glucose_readings()
    assert c.from_reading(normal, "p").reading_id == c.from_reading(normal, None).reading_id
    assert c.from_reading(normal, "p").reading_id != c.from_reading(hypo, "p").reading_id
    rid = c.reading_id_for(("sysid:0011223344556677", "glucose_meter", "41", "2026-03-01T15:02:10"))
    assert rid == c.from_reading(normal, "p").reading_id
    assert len(rid) == 32
    assert int(rid, 16) >= 0


def test_bp_reading_without_sequence_number_keys_on_time_and_values() -> None:
    dad, _ = bp_readings()
    resent = c.from_reading(dad, "p-dad")
    assert resent.reading_id == c.from_reading(dad, "p-dad").reading_id
    other = BloodPressureReading(
        CUFF, dad.device_time, dad.measured_at, T0, 139.0, 86.0, 103.0, 72.0, "mmHg", user_id=1
    )
    assert c.from_reading(other, "p-dad").reading_id != resent.reading_id


@pytest.mark.parametrize("field", ["glucose_mmol_l", "original_value", "clock_skew_s"])
@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_from_reading_refuses_non_finite_values(field: str, bad: float) -> None:
    normal, _ = glucose_readings()
    values = {f: getattr(normal, f) for f in normal.__slots__}
    values[field] = bad
    with pytest.raises(c.ContractError) as err:
        c.from_reading(GlucoseReading(**values), "p")
    assert err.value.fault is c.ContractFault.NOT_FINITE
    assert err.value.detail == field


def test_from_reading_refuses_naive_gateway_times_and_aware_device_times() -> None:
    normal, _ = glucose_readings()
    values = {f: getattr(normal, f) for f in normal.__slots__}
    with pytest.raises(c.ContractError):
        c.from_reading(GlucoseReading(**{**values, "received_at": datetime(2026, 3, 1)}), "p")
    with pytest.raises(c.ContractError):
        c.from_reading(GlucoseReading(**{**values, "device_time": T0}), "p")


def test_encode_reading_refuses_what_the_cloud_would_refuse() -> None:
    message = c.from_reading(glucose_readings()[0], "p" * 200)  # person_ref too long
    with pytest.raises(c.ContractError) as err:
        c.encode_reading(message)
    assert err.value.fault is c.ContractFault.INVALID


finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)
maybe = st.none() | finite
times = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31))
aware = times.map(lambda t: t.replace(tzinfo=UTC))
flags = st.frozensets(st.sampled_from(list(ReadingFlag)), max_size=5)
identities = st.builds(
    DeviceIdentity,
    address=st.just("C0:00:00:00:00:09"),
    kind=st.just(DeviceKind.GLUCOSE_METER),
    system_id=st.none() | st.text("0123456789abcdef", min_size=16, max_size=16),
    serial_number=st.none() | st.text(min_size=1, max_size=20),
)
glucose_strategy = st.builds(
    GlucoseReading,
    device=identities,
    sequence_number=st.integers(0, 65535),
    device_time=st.none() | times,
    measured_at=st.none() | aware,
    received_at=aware,
    glucose_mmol_l=maybe,
    original_value=maybe,
    original_unit=st.sampled_from(["mol/L", "kg/L"]),
    sample_type=st.none() | st.integers(0, 15),
    sensor_status=st.integers(0, 0xFFFF),
    context=st.none()
    | st.builds(GlucoseContext, meal=st.none() | st.integers(1, 5), hba1c_pct=maybe),
    clock_skew_s=maybe,
    flags=flags,
)
bp_strategy = st.builds(
    BloodPressureReading,
    device=identities.map(
        lambda d: DeviceIdentity(d.address, DeviceKind.BLOOD_PRESSURE_MONITOR, d.system_id)
    ),
    device_time=st.none() | times,
    measured_at=st.none() | aware,
    received_at=aware,
    systolic_mmhg=maybe,
    diastolic_mmhg=maybe,
    mean_arterial_mmhg=maybe,
    pulse_bpm=maybe,
    original_unit=st.sampled_from(["mmHg", "kPa"]),
    user_id=st.none() | st.integers(0, 255),
    sequence_number=st.none() | st.integers(0, 65535),
    flags=flags,
)


@settings(max_examples=300, deadline=None)
@given(glucose_strategy | bp_strategy, st.none() | st.text("abcdefgh-", min_size=1, max_size=20))
def test_round_trip_reading_through_the_wire(
    reading: GlucoseReading | BloodPressureReading, person_ref: str | None
) -> None:
    message = c.from_reading(reading, person_ref)
    data = c.encode_reading(message)
    decoded = c.decode_reading(data)
    assert decoded == message
    assert decoded.reading_id == c.reading_id_for(reading.identity)
    if isinstance(reading, GlucoseReading):
        assert decoded.glucose_mmol_l == reading.glucose_mmol_l
        assert decoded.status_bits == reading.sensor_status
    else:
        assert decoded.systolic_mmhg == reading.systolic_mmhg
        assert decoded.user_id == reading.user_id
    assert set(decoded.flags) == {f.value for f in reading.flags}
    envelope = c.encode_envelope("m-1", GW, T0, [data])
    assert c.decode_envelope(envelope).readings == (message,)


def test_msgspec_rejects_what_our_limits_assume() -> None:
    """Canary: the limits above rely on msgspec refusing NaN literals and bounding depth."""
    with pytest.raises(msgspec.DecodeError):
        msgspec.json.decode(b"NaN")
    with pytest.raises(RecursionError):
        msgspec.json.decode(b"[" * 100_000 + b"]" * 100_000)
