"""The MQTT section of the gateway settings (``ANJIA_GATEWAY__MQTT__*``), docs/mqtt.md.

Embedded by :class:`gateway.settings.GatewaySettings` as ``mqtt``; the publisher
(:class:`gateway.mqtt.MqttPublisher`) takes only this section. Every field has a default so that a
development gateway starts against a local broker; production sets ``tls``, ``ca_file``,
``username`` and ``password``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

__all__ = ["MqttSettings"]

PAHO_INFLIGHT_CEILING = 65_535
"""paho hangs when more QoS 1 messages than this are unacknowledged (message ids wrap)."""


class MqttSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = Field(default="127.0.0.1", min_length=1)
    port: int | None = Field(
        default=None, ge=1, le=65535, description="default 8883 with TLS, else 1883"
    )
    protocol: Literal["mqtt5", "mqtt311"] = Field(
        default="mqtt5", description="mqtt311 for brokers without MQTT 5 (amqtt, the demo broker)"
    )
    tls: bool = False
    ca_file: Path | None = Field(
        default=None, description="CA bundle to verify the broker; None: the system's CAs"
    )
    cert_file: Path | None = Field(default=None, description="client certificate (mutual TLS)")
    key_file: Path | None = None
    username: str | None = Field(default=None, description="per gateway; the ACLs use it")
    password: SecretStr | None = None
    client_id: str | None = Field(default=None, description="default: anjia-gw-<gateway id>")
    keepalive_s: int = Field(default=60, ge=5, le=3600)
    session_expiry_s: int = Field(
        default=86_400,
        ge=0,
        le=30 * 86_400,
        description="broker keeps the session (acks sent while offline) this long; 0: clean",
    )
    reconnect_min_s: float = Field(default=1.0, gt=0, le=60)
    reconnect_max_s: float = Field(default=60.0, gt=0, le=3600)
    batch_max_readings: int = Field(
        default=100, ge=1, le=500, description="readings per envelope during a bulk sync"
    )
    inflight_messages: int = Field(
        default=64,
        ge=1,
        le=1000,  # far below PAHO_INFLIGHT_CEILING, with room for urgent messages beside it
        description="published envelopes awaiting their PUBACK",
    )
    max_unacked_readings: int = Field(
        default=20_000, ge=1, le=200_000, description="sent readings awaiting the cloud's ack"
    )
    uplink_queue_s: float = Field(
        default=1.0,
        gt=0,
        le=60,
        description="bulk data let out ahead of an urgent reading, in seconds of the uplink's "
        "measured rate (gateway/uplink.py)",
    )
    ack_timeout_s: float = Field(
        default=60.0, gt=0, le=3600, description="resend readings the cloud has not acked by then"
    )

    @property
    def effective_port(self) -> int:
        if self.port is not None:
            return self.port
        return 8883 if self.tls else 1883

    @model_validator(mode="after")
    def _check(self) -> Self:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together (mutual TLS)")
        if not self.tls and (self.ca_file or self.cert_file):
            raise ValueError("ca_file/cert_file/key_file need tls = true")
        if self.password is not None and self.username is None:
            raise ValueError("a password needs a username")
        if self.reconnect_min_s > self.reconnect_max_s:
            raise ValueError("reconnect_min_s must not exceed reconnect_max_s")
        return self
