"""The cloud's ConfigMessage translated to the enrollment and thresholds the gateway runs on."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from device_drivers.model import DeviceKind
from gateway import contract as c
from gateway.config_sync import ConfigRejectedError, config_to_settings

NOW = datetime(2026, 3, 1, tzinfo=UTC)


def message(
    devices: tuple[c.DeviceConfig, ...], persons: tuple[c.PersonConfig, ...] = ()
) -> c.ConfigMessage:
    return c.ConfigMessage(
        schema_version=1,
        gateway_id="gw-1",
        version=7,
        issued_at=NOW,
        devices=devices,
        persons=persons,
    )


def test_devices_slots_and_thresholds_are_translated() -> None:
    config = config_to_settings(
        message(
            (
                c.DeviceConfig(kind="glucose_meter", system_id="AA", person_ref="p-1"),
                c.DeviceConfig(
                    kind="blood_pressure_monitor",
                    address="F0:00:00:00:00:02",
                    user_slots=(c.UserSlot(user_id=1, person_ref="p-2"),),
                    label="cuff",
                ),
            ),
            (c.PersonConfig(person_ref="p-2", systolic_urgent_mmhg=170.0),),
        )
    )
    assert config.version == 7
    meter, cuff = config.enrollment.devices
    assert (meter.kind, meter.person_ref) == (DeviceKind.GLUCOSE_METER, "p-1")
    assert dict(cuff.user_slots) == {1: "p-2"}
    assert config.thresholds.for_person("p-2").systolic_crisis_mmhg == 170.0
    assert config.thresholds.for_person("p-1").systolic_crisis_mmhg == 180.0  # the default


@pytest.mark.parametrize(
    ("devices", "persons", "reason"),
    [
        ((c.DeviceConfig(kind="thermometer", address="A"),), (), "unknown kind"),
        (
            (
                c.DeviceConfig(
                    kind="blood_pressure_monitor",
                    address="A",
                    user_slots=(
                        c.UserSlot(user_id=1, person_ref="p-1"),
                        c.UserSlot(user_id=1, person_ref="p-2"),
                    ),
                ),
            ),
            (),
            "mapped twice",
        ),
        (
            (
                c.DeviceConfig(
                    kind="glucose_meter",
                    address="A",
                    user_slots=(c.UserSlot(user_id=1, person_ref="p-1"),),
                ),
            ),
            (),
            "user slots on a glucose_meter",
        ),
        ((), (c.PersonConfig(person_ref="p", glucose_urgent_low_mmol_l=0.1),), "hypo_level2"),
        ((), (c.PersonConfig(person_ref="p"), c.PersonConfig(person_ref="p")), "twice"),
    ],
)
def test_an_unusable_config_is_rejected_with_its_reason(
    devices: tuple[c.DeviceConfig, ...], persons: tuple[c.PersonConfig, ...], reason: str
) -> None:
    with pytest.raises(ConfigRejectedError, match=reason) as caught:
        config_to_settings(message(devices, persons))
    assert caught.value.version == 7
