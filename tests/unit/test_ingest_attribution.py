"""The cloud attributes readings by the gateway's rules: for the same enrollment, the cloud's
``attribute`` and the gateway's ``Enrollment.attribute`` agree on every case."""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime

import pytest

from cloud.ingest.attribution import GatewayInfo, KnownDevice, attribute
from device_drivers.model import BloodPressureReading, DeviceIdentity, DeviceKind, GlucoseReading
from gateway import contract as c
from gateway.enrollment import EnrolledDevice, Enrollment

T = datetime(2026, 3, 1, 1, 0, tzinfo=UTC)
MUM, DAD, GUEST = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()

ENROLLED = [
    (DeviceKind.GLUCOSE_METER, "AABBCCDDEEFF0011", None, None, MUM, {}),
    (DeviceKind.GLUCOSE_METER, None, "SN-7", None, None, {}),
    (DeviceKind.GLUCOSE_METER, None, None, "C0:00:00:00:00:03", DAD, {}),
    (DeviceKind.BLOOD_PRESSURE_MONITOR, None, "BP-1", None, None, {1: DAD, 2: MUM}),
    (DeviceKind.BLOOD_PRESSURE_MONITOR, None, None, "C0:00:00:00:00:05", MUM, {}),
]

SEEN = [
    DeviceIdentity("C0:00:00:00:00:01", DeviceKind.GLUCOSE_METER, system_id="aabbccddeeff0011"),
    DeviceIdentity("C0:00:00:00:00:02", DeviceKind.GLUCOSE_METER, serial_number="SN-7"),
    DeviceIdentity("c0:00:00:00:00:03", DeviceKind.GLUCOSE_METER),
    DeviceIdentity("C0:00:00:00:00:03", DeviceKind.GLUCOSE_METER, system_id="0000000000000001"),
    DeviceIdentity("C0:00:00:00:00:04", DeviceKind.BLOOD_PRESSURE_MONITOR, serial_number="BP-1"),
    DeviceIdentity("C0:00:00:00:00:05", DeviceKind.BLOOD_PRESSURE_MONITOR),
    DeviceIdentity("C0:00:00:00:00:05", DeviceKind.GLUCOSE_METER),  # right address, wrong kind
    DeviceIdentity("C0:00:00:00:00:99", DeviceKind.GLUCOSE_METER),
]


def reading(device: DeviceIdentity, user_id: int | None) -> GlucoseReading | BloodPressureReading:
    if device.kind is DeviceKind.GLUCOSE_METER:
        return GlucoseReading(device, 1, None, T, T, 5.0, 0.005, "mol/L")
    return BloodPressureReading(device, None, T, T, 120, 80, 93, 60, "mmHg", user_id=user_id)


@pytest.mark.parametrize(("device", "user_id"), list(itertools.product(SEEN, [None, 1, 2, 255])))
def test_the_cloud_and_the_gateway_agree(device: DeviceIdentity, user_id: int | None) -> None:
    ids = [uuid.uuid4() for _ in ENROLLED]
    gateway = GatewayInfo(
        id=uuid.uuid4(),
        uid="gw-1",
        household_id=uuid.uuid4(),
        config_version=1,
        revoked=False,
        devices=tuple(
            KnownDevice(dev_id, kind.value, sysid, serial, address, owner, slots)
            for dev_id, (kind, sysid, serial, address, owner, slots) in zip(
                ids, ENROLLED, strict=True
            )
        ),
    )
    enrollment = Enrollment.of(
        EnrolledDevice(
            kind,
            sysid,
            serial,
            address,
            None if owner is None else str(owner),
            {k: str(v) for k, v in slots.items()},
        )
        for kind, sysid, serial, address, owner, slots in ENROLLED
    )
    domain = reading(device, user_id)
    ours = attribute(gateway, c.from_reading(domain, None))
    theirs = enrollment.attribute(domain)
    assert ours.reason == theirs.reason
    assert (None if ours.person_id is None else str(ours.person_id)) == theirs.person_ref
    assert (ours.device_id is None) == (ours.reason == "unknown_device")
