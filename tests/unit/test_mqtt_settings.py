"""The MQTT settings section (gateway/mqtt_settings.py, docs/mqtt.md "The publisher")."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from gateway.mqtt_settings import PAHO_INFLIGHT_CEILING, MqttSettings


def test_defaults_start_a_development_gateway_against_a_local_broker() -> None:
    settings = MqttSettings()
    assert (settings.host, settings.effective_port, settings.protocol) == (
        "127.0.0.1",
        1883,
        "mqtt5",
    )
    assert MqttSettings(tls=True).effective_port == 8883
    assert MqttSettings(tls=True, port=9999).effective_port == 9999


def test_the_in_flight_window_stays_far_below_pahos_ceiling() -> None:
    with pytest.raises(ValidationError):
        MqttSettings(inflight_messages=PAHO_INFLIGHT_CEILING)
    assert MqttSettings(inflight_messages=1000).inflight_messages < PAHO_INFLIGHT_CEILING // 10


@pytest.mark.parametrize(
    "bad",
    [
        {"cert_file": Path("c.pem"), "tls": True},  # a certificate without its key
        {"ca_file": Path("ca.pem")},  # TLS files without tls
        {"password": "secret"},  # a password without a username
        {"reconnect_min_s": 30, "reconnect_max_s": 5},
        {"batch_max_readings": 501},  # more than an envelope may carry
        {"uplink_queue_s": 0},  # no bulk could ever leave
        {"protocol": "mqtt31"},
        {"port": 0},
        {"unknown": 1},
    ],
)
def test_inconsistent_settings_fail_at_start(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        MqttSettings(**bad)


def test_the_password_never_shows_in_a_repr() -> None:
    settings = MqttSettings(username="gw-1", password="s3cret-value")
    assert "s3cret-value" not in repr(settings)
    assert settings.password is not None
    assert settings.password.get_secret_value() == "s3cret-value"
