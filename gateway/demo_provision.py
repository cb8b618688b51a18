"""The demo household, provisioned through the cloud's REST API as a clinic would do it.

An operator creates the community clinic and its family doctor, the household with two persons,
signs the household with the doctor, enrolls the home gateway (its MQTT credentials are shown
once) and maps the devices: the glucose meter belongs to 李梅 (mum), the cuff's user 1 is 张伟
(dad) and user 2 is 李梅. The names are made up. IO (HTTP), thin.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from firmware_sim.device_base import DeviceInformation
    from gateway.demo_cloud import DemoCloud

__all__ = ["DemoAccounts", "provision_household"]

GATEWAY_UID = "gw-demo-home"
CLINIC_NAME = "幸福里社区卫生服务中心"
DOCTOR_NAME = "王医生"
MUM = "李梅"
DAD = "张伟"


@dataclass(frozen=True, slots=True)
class DemoAccounts:
    household_id: str
    persons: dict[str, str]  # name -> person id
    doctor_username: str
    doctor_password: str
    gateway_uid: str
    mqtt_username: str
    mqtt_password: str


async def provision_household(
    cloud: DemoCloud,
    meter: DeviceInformation,
    cuff: DeviceInformation,
    *,
    meter_address: str | None = None,
    cuff_address: str | None = None,
) -> DemoAccounts:
    """Provision the demo household; devices are registered by serial and model number (as on
    the box) and, when given, their Bluetooth address (so the gateway can connect at once)."""
    user, password = await cloud.create_operator()
    op = await cloud.login(user, password)

    async def post(path: str, body: dict[str, object]) -> dict[str, str]:
        result: dict[str, str] = await cloud.call("POST", path, token=op, json_body=body)
        return result

    clinic = await post("/clinics", {"code": "c-xingfuli", "name": CLINIC_NAME})
    doctor_password = secrets.token_urlsafe(12)
    doctor = await post(
        f"/clinics/{clinic['id']}/doctors",
        {
            "name": DOCTOR_NAME,
            "title": "全科医生",
            "username": "dr.wang",
            "password": doctor_password,
        },
    )
    household = await post(f"/clinics/{clinic['id']}/households", {"code": "HH-0001"})
    hid = household["id"]
    persons = {}
    for name, year, sex in ((MUM, 1968, "female"), (DAD, 1965, "male")):
        person = await post(
            f"/households/{hid}/persons", {"name": name, "birth_year": year, "sex": sex}
        )
        persons[name] = person["id"]
    await post(
        f"/households/{hid}/contracts",
        {"doctor_id": doctor["id"], "starts_on": date.today().isoformat()},  # noqa: DTZ011 - a calendar day
    )
    credentials = await cloud.call(
        "POST",
        f"/households/{hid}/gateways",
        token=op,
        json_body={"label": "客厅网关 living room", "uid": GATEWAY_UID},
    )
    await post(
        f"/households/{hid}/devices",
        {
            "kind": "glucose_meter",
            "serial_number": meter.serial,
            "model_number": meter.model,
            "address": meter_address,
            "label": "妈妈的血糖仪",
            "owner_person_id": persons[MUM],
        },
    )
    cuff_row = await post(
        f"/households/{hid}/devices",
        {
            "kind": "blood_pressure_monitor",
            "serial_number": cuff.serial,
            "model_number": cuff.model,
            "address": cuff_address,
            "label": "家用血压计",
        },
    )
    for slot, name in ((1, DAD), (2, MUM)):
        await cloud.call(
            "PUT",
            f"/devices/{cuff_row['id']}/slots/{slot}",
            token=op,
            json_body={"person_id": persons[name]},
        )
    return DemoAccounts(
        household_id=hid,
        persons=persons,
        doctor_username="dr.wang",
        doctor_password=doctor_password,
        gateway_uid=credentials["gateway"]["uid"],
        mqtt_username=credentials["mqtt_username"],
        mqtt_password=credentials["mqtt_password"],
    )
