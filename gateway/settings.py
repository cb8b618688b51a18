"""The gateway's one settings object: a TOML file plus ``ANJIA_GATEWAY__*`` environment variables.

Environment variables win over the file (``ANJIA_GATEWAY__MQTT__HOST=broker.example``). Validation
happens once at start; every problem is reported with where it came from, in one
:class:`SettingsError`, and the daemon refuses to start rather than run half-configured.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from device_drivers.model import DeviceKind
from gateway.enrollment import EnrolledDevice, Enrollment
from gateway.mqtt_settings import MqttSettings

__all__ = [
    "BleSettings",
    "DeviceSettings",
    "GatewaySettings",
    "OutboxSettings",
    "SettingsError",
    "load_gateway_settings",
]

_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"


class SettingsError(Exception):
    """The settings could not be loaded. ``problems`` lists ``(location, message)`` pairs."""

    def __init__(self, source: str, problems: list[tuple[str, str]]) -> None:
        self.source = source
        self.problems = problems
        lines = "\n".join(f"  {loc}: {msg}" for loc, msg in problems)
        super().__init__(f"invalid gateway settings ({source}):\n{lines}")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BleSettings(_Section):
    link: str = Field(
        default="bleak",
        description="'bleak' for the OS adapter (BlueZ), or 'bumble:<transport moniker>', "
        "e.g. 'bumble:usb:0' or 'bumble:tcp-client:127.0.0.1:9000' (a simulator)",
    )
    scan_duration_s: float = Field(default=10.0, gt=0, le=300)
    sync_interval_min: float = Field(default=60.0, gt=0, le=24 * 60)
    max_concurrent_connections: int = Field(default=2, ge=1, le=7)
    connect_timeout_s: float = Field(default=20.0, ge=1, le=120)
    connect_attempts: int = Field(default=3, ge=1, le=10)
    transfer_timeout_s: float = Field(default=30.0, gt=0, le=300)
    pair: bool = True
    backoff_max_s: float = Field(default=900.0, gt=0)
    sync_timeout_s: float = Field(
        default=300.0,
        ge=5,
        le=3600,
        description="hard limit on one session (connect + transfer): a device that never "
        "answers cannot hold a connection slot longer",
    )
    cuff_idle_s: float = Field(
        default=10.0, gt=0, le=120, description="a cuff quiet this long has sent everything"
    )
    min_sync_gap_s: float = Field(
        default=30.0,
        ge=0,
        le=3600,
        description="after a good sync, advertisements of that device are ignored this long "
        "(devices keep advertising while they wait)",
    )

    @field_validator("link")
    @classmethod
    def _check_link(cls, value: str) -> str:
        if value == "bleak" or (value.startswith("bumble:") and len(value) > len("bumble:")):
            return value
        raise ValueError("must be 'bleak' or 'bumble:<transport moniker>'")

    @model_validator(mode="after")
    def _check_timeouts(self) -> Self:
        if self.sync_timeout_s <= self.connect_timeout_s * self.connect_attempts:
            raise ValueError("sync_timeout_s must exceed connect_timeout_s * connect_attempts")
        return self


class OutboxSettings(_Section):
    path: Path = Path("var/gateway-outbox.db")
    capacity: int = Field(default=500_000, ge=100)
    event_capacity: int = Field(default=1000, ge=10)
    """Events waiting for the broker (gateway/event_queue.py); the oldest non-critical go first."""


class DeviceSettings(_Section):
    kind: Literal["glucose_meter", "blood_pressure_monitor"]
    system_id: str | None = None
    serial_number: str | None = None
    address: str | None = None
    person: str | None = Field(default=None, pattern=_ID_PATTERN)
    slots: dict[int, Annotated[str, Field(pattern=_ID_PATTERN)]] = Field(default_factory=dict)
    label: str = ""

    def to_enrolled(self) -> EnrolledDevice:
        return EnrolledDevice(
            kind=DeviceKind(self.kind),
            system_id=self.system_id,
            serial_number=self.serial_number,
            address=self.address,
            person_ref=self.person,
            user_slots=dict(self.slots),
            label=self.label,
        )

    @field_validator("slots")
    @classmethod
    def _check_slots(cls, value: dict[int, str]) -> dict[int, str]:
        bad = [k for k in value if not 0 <= k <= 255]
        if bad:
            raise ValueError(f"cuff user ids are 0..255, got {bad}")
        return value


class GatewaySettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="ANJIA_GATEWAY__",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    gateway_id: str = Field(pattern=_ID_PATTERN)
    timezone: str = "Asia/Shanghai"
    ble: BleSettings = BleSettings()
    mqtt: MqttSettings = MqttSettings()
    outbox: OutboxSettings = OutboxSettings()
    devices: list[DeviceSettings] = Field(default_factory=list)
    status_interval_s: float = Field(
        default=60.0, ge=1, le=3600, description="retained status (diagnostics) at least this often"
    )

    @field_validator("timezone")
    @classmethod
    def _check_tz(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @field_validator("devices")
    @classmethod
    def _check_devices(cls, value: list[DeviceSettings]) -> list[DeviceSettings]:
        for i, dev in enumerate(value):
            if not (dev.system_id or dev.serial_number or dev.address):
                raise ValueError(f"device {i}: needs system_id, serial_number or address")
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Environment first (wins), then the values read from the TOML file (passed as init).
        return env_settings, init_settings

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def enrollment(self) -> Enrollment:
        return Enrollment.of((d.to_enrolled() for d in self.devices), version=0)


def load_gateway_settings(path: Path | None = None, **overrides: Any) -> GatewaySettings:
    """Read the TOML file (if any), apply the environment, validate. Raises SettingsError."""
    data: dict[str, Any] = {}
    source = "environment"
    if path is not None:
        source = str(path)
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise SettingsError(source, [("file", "not found")]) from exc
        except (OSError, UnicodeDecodeError) as exc:
            raise SettingsError(source, [("file", f"unreadable: {exc}")]) from exc
        except tomllib.TOMLDecodeError as exc:
            raise SettingsError(source, [("toml", str(exc))]) from exc
    data.update(overrides)
    try:
        return GatewaySettings(**data)
    except ValidationError as exc:
        problems = [
            (".".join(str(p) for p in err["loc"]) or "settings", err["msg"]) for err in exc.errors()
        ]
        raise SettingsError(source, problems) from exc
