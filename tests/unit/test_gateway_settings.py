from __future__ import annotations

from pathlib import Path

import pytest

from device_drivers.model import DeviceKind
from gateway.settings import SettingsError, load_gateway_settings

GOOD = """
gateway_id = "gw-home-01"
timezone = "Asia/Shanghai"

[ble]
link = "bumble:tcp-client:127.0.0.1:9000"
max_concurrent_connections = 2

[mqtt]
host = "broker.local"
username = "gw-home-01"
password = "s3cret"

[[devices]]
kind = "blood_pressure_monitor"
system_id = "0102030405060708"
slots = { 1 = "p-dad", 2 = "p-mum" }

[[devices]]
kind = "glucose_meter"
serial_number = "SN42"
person = "p-mum"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "gateway.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_file_is_read_and_enrollment_built(tmp_path: Path) -> None:
    settings = load_gateway_settings(write(tmp_path, GOOD))
    assert settings.gateway_id == "gw-home-01"
    assert settings.ble.link.startswith("bumble:")
    assert settings.mqtt.password is not None
    assert settings.mqtt.password.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(settings)
    enrollment = settings.enrollment()
    assert [d.kind for d in enrollment.devices] == [
        DeviceKind.BLOOD_PRESSURE_MONITOR,
        DeviceKind.GLUCOSE_METER,
    ]
    assert enrollment.devices[0].user_slots == {1: "p-dad", 2: "p-mum"}


def test_environment_overrides_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANJIA_GATEWAY__MQTT__HOST", "10.0.0.5")
    monkeypatch.setenv("ANJIA_GATEWAY__BLE__CONNECT_ATTEMPTS", "5")
    settings = load_gateway_settings(write(tmp_path, GOOD))
    assert settings.mqtt.host == "10.0.0.5"
    assert settings.ble.connect_attempts == 5
    assert settings.mqtt.username == "gw-home-01"  # the rest of the section stays


def test_broken_toml_names_the_line(tmp_path: Path) -> None:
    with pytest.raises(SettingsError) as info:
        load_gateway_settings(write(tmp_path, 'gateway_id = "x"\n[ble\n'))
    assert info.value.problems[0][0] == "toml"
    assert "line 2" in info.value.problems[0][1]


@pytest.mark.parametrize(
    ("text", "location"),
    [
        ('gateway_id = "gw/evil#"', "gateway_id"),
        ('gateway_id = "gw"\ntimezone = "Mars/Olympus"', "timezone"),
        ('gateway_id = "gw"\n[ble]\nlink = "carrier-pigeon"', "ble.link"),
        (
            'gateway_id = "gw"\n[ble]\nmax_concurrent_connections = 0',
            "ble.max_concurrent_connections",
        ),
        ('gateway_id = "gw"\n[ble]\nconect_timeout_s = 3', "ble.conect_timeout_s"),
        ('gateway_id = "gw"\n[[devices]]\nkind = "glucose_meter"', "devices"),
        ('gateway_id = "gw"\n[[devices]]\nkind = "thermometer"\naddress = "x"', "devices.0.kind"),
        ('gateway_id = "gw"\n[mqtt]\npassword = "p"', "mqtt"),
    ],
)
def test_invalid_settings_report_where(tmp_path: Path, text: str, location: str) -> None:
    with pytest.raises(SettingsError) as info:
        load_gateway_settings(write(tmp_path, text))
    locations = [loc for loc, _ in info.value.problems]
    assert location in locations, info.value.problems
    assert "invalid gateway settings" in str(info.value)


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="not found"):
        load_gateway_settings(tmp_path / "nope.toml")
