"""The cloud's one settings object, read from ``ANJIA_CLOUD__*`` environment variables.

Nesting uses ``__``: ``ANJIA_CLOUD__DB__URL=postgresql+psycopg://...``,
``ANJIA_CLOUD__AUTH__JWT_SECRET=...``, ``ANJIA_CLOUD__CRYPTO__KEYS='{"k2026": "<base64>"}'``.
The object is built once, by :func:`cloud.main.create_app` or the CLI, and passed down; each
component takes only its section. Nothing here runs at import time.

Secrets and modes: in ``dev`` and ``demo`` mode a missing JWT secret is replaced by a random one
for this process, and the encryption keys fall back to a built-in *development* keyring (fixed, so
a dev database stays readable across restarts, and public, so never use it for real data). In
``production`` every secret must be set explicitly, and the example values and the development
keys are refused: the process does not start.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import secrets
from pathlib import Path
from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = [
    "DEV_BLIND_INDEX_KEY_B64",
    "DEV_KEYRING_B64",
    "AuthSettings",
    "CloudSettings",
    "CryptoSettings",
    "DatabaseSettings",
    "HttpSettings",
    "IngestMqttSettings",
    "Mode",
    "TsdbSettings",
]

Mode = Literal["dev", "demo", "production"]

_KEY_ID_PATTERN: Final = r"^[a-z0-9][a-z0-9_-]{0,15}$"
_KEY_BYTES: Final = 32
_MIN_JWT_SECRET_CHARS: Final = 32

# Values that appear in examples and docs; refused outside dev mode.
_EXAMPLE_SECRETS: Final = frozenset(
    {"changethis", "changeme", "secret", "dev", "development", "example", "password", "anjia"}
)


def _dev_key(label: str) -> str:
    """A fixed, public key for development only (derived from a label, never random)."""
    return base64.b64encode(hashlib.sha256(f"anjia-dev-only:{label}".encode()).digest()).decode()


DEV_KEYRING_B64: Final = {"dev1": _dev_key("pii-key-1")}
"""The development keyring: public, fixed, refused in production."""

DEV_BLIND_INDEX_KEY_B64: Final = _dev_key("blind-index")


def _decode_key(name: str, value: str) -> bytes:
    try:
        raw = base64.b64decode(value.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as exc:
        raise ValueError(f"{name}: not valid base64") from exc
    if len(raw) != _KEY_BYTES:
        raise ValueError(f"{name}: must decode to {_KEY_BYTES} bytes, got {len(raw)}")
    return raw


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DatabaseSettings(_Section):
    url: str = Field(
        default="sqlite:///./var/anjia.db",
        description="SQLAlchemy URL: sqlite:///path (WAL) or postgresql+psycopg://user:pw@host/db",
    )
    echo: bool = False
    migrate_on_start: bool = Field(
        default=True,
        description="run `alembic upgrade head` when the app starts; turn off when several "
        "processes share one PostgreSQL and migrate with `anjia cloud migrate` instead",
    )
    pool_size: int = Field(default=5, ge=1, le=100)
    sqlite_busy_timeout_ms: int = Field(default=5000, ge=0, le=600_000)
    sqlite_wal_autocheckpoint_pages: int = Field(
        default=10_000,
        ge=0,
        le=1_000_000,
        description="WAL pages (4 KiB) between automatic checkpoints (SQLite's default 1000): "
        "an index page rewritten by many ingest commits is copied to the database once per "
        "checkpoint (bench/README.md 'make bench-ingest'); the WAL file grows to about this size",
    )

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        if not value.startswith(("sqlite://", "postgresql")):
            raise ValueError("only sqlite:// and postgresql+psycopg:// URLs are supported")
        return value

    @property
    def is_sqlite(self) -> bool:
        return self.url.startswith("sqlite")


class AuthSettings(_Section):
    jwt_secret: SecretStr = Field(
        default_factory=lambda: SecretStr(secrets.token_urlsafe(48)),
        description="HS256 signing secret (>= 32 characters); random per process in dev/demo",
    )
    access_token_minutes: int = Field(default=15, ge=1, le=60)
    issuer: str = "anjia-cloud"
    audience: str = "anjia-api"
    # argon2id parameters for user passwords (argon2-cffi's defaults, RFC 9106 second choice)
    argon2_time_cost: int = Field(default=3, ge=1, le=20)
    argon2_memory_kib: int = Field(default=65536, ge=8, le=4_194_304)
    argon2_parallelism: int = Field(default=4, ge=1, le=16)
    gateway_pbkdf2_iterations: int = Field(
        default=1000,
        ge=1,
        le=1_000_000,
        description="PBKDF2-SHA512 rounds of gateway MQTT password hashes (Mosquitto $7$ format); "
        "the passwords are 256-bit random, so rounds only slow each broker connect",
    )


class CryptoSettings(_Section):
    keys: dict[str, SecretStr] = Field(
        default_factory=lambda: {k: SecretStr(v) for k, v in DEV_KEYRING_B64.items()},
        description="AES-256-GCM keyring for personal identifiers: key id -> base64 of 32 bytes",
    )
    current_key_id: str = Field(default="dev1", description="the key new ciphertexts use")
    blind_index_key: SecretStr = Field(
        default_factory=lambda: SecretStr(DEV_BLIND_INDEX_KEY_B64),
        description="HMAC-SHA256 key of the ID-number blind index (base64 of 32 bytes)",
    )

    @field_validator("keys")
    @classmethod
    def _check_keys(cls, value: dict[str, SecretStr]) -> dict[str, SecretStr]:
        if not value:
            raise ValueError("at least one key is needed")
        for key_id, key in value.items():
            if not re.match(_KEY_ID_PATTERN, key_id):
                raise ValueError(f"key id {key_id!r} must match {_KEY_ID_PATTERN}")
            _decode_key(f"key {key_id!r}", key.get_secret_value())
        return value

    @field_validator("blind_index_key")
    @classmethod
    def _check_blind_key(cls, value: SecretStr) -> SecretStr:
        _decode_key("blind_index_key", value.get_secret_value())
        return value

    @model_validator(mode="after")
    def _check_current(self) -> CryptoSettings:
        if self.current_key_id not in self.keys:
            raise ValueError(f"current_key_id {self.current_key_id!r} is not in keys")
        return self

    def keyring(self) -> dict[str, bytes]:
        """Key id -> raw 32-byte key."""
        return {k: _decode_key(k, v.get_secret_value()) for k, v in self.keys.items()}

    def blind_key(self) -> bytes:
        return _decode_key("blind_index_key", self.blind_index_key.get_secret_value())

    @property
    def uses_dev_keys(self) -> bool:
        dev = set(DEV_KEYRING_B64.values()) | {DEV_BLIND_INDEX_KEY_B64}
        used = {v.get_secret_value() for v in self.keys.values()}
        used.add(self.blind_index_key.get_secret_value())
        return bool(used & dev)


class IngestMqttSettings(_Section):
    """Where the ingest workers subscribe (used by ``cloud.mqtt_ingest``; off by default)."""

    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = Field(default=1883, ge=1, le=65535)
    username: str | None = None
    password: SecretStr | None = None
    tls: bool = False
    ca_file: Path | None = None
    client_id_prefix: str = "anjia-ingest"
    shared_group: str = Field(default="anjia-ingest", pattern=r"^[A-Za-z0-9_-]{1,64}$")
    topic_prefix: str = "anjia/v1"
    batch_size: int = Field(
        default=1000,
        ge=1,
        le=10_000,
        description="messages per ingest transaction at most; keep it about half of "
        "receive_maximum so the next batch arrives while one commits",
    )
    batch_max_bytes: int = Field(
        default=4 * 1024 * 1024,
        ge=1024,
        le=256 * 1024 * 1024,
        description="payload bytes per ingest transaction at most (the message that crosses "
        "it is the batch's last): bounds a transaction of batched envelopes (~55 KB per 100 "
        "readings) where batch_size, a message count, would not",
    )
    batch_interval_ms: int = Field(default=50, ge=1, le=10_000)
    # --- ingest workers (cloud.ingest, docs/ingest.md) ---
    protocol: Literal["mqtt5", "mqtt311"] = Field(
        default="mqtt5", description="mqtt311 only for amqtt (the demo; no shared subscriptions)"
    )
    receive_maximum: int = Field(
        default=2000,
        ge=1,
        le=65535,
        description="messages the broker may have in flight to one worker before its PUBACKs "
        "(sent only after the batch commits): the backpressure window, also the queue bound",
    )
    keepalive_s: int = Field(default=30, ge=5, le=3600)
    session_expiry_s: int = Field(
        default=3600,
        ge=0,
        le=7 * 86400,
        description="a restarted worker resumes its broker session (unacked messages come back)",
    )
    workers: int = Field(default=1, ge=1, le=64, description="`anjia cloud ingest` processes")
    db_retry_max_s: float = Field(
        default=30.0, gt=0, le=600, description="longest wait between retries of a failed commit"
    )


class TsdbSettings(_Section):
    """The time-series mirror (``cloud.timeseries``): InfluxDB v2 write API, off by default.

    When enabled, the ingest queues every stored reading in ``tsdb_pending`` and the mirror
    (``anjia cloud ingest`` or ``anjia cloud tsdb-mirror``) writes them in batches of
    ``batch_size``. VictoriaMetrics accepts the same API (org and bucket are then ignored;
    leave ``token`` unset unless a proxy in front wants one)."""

    enabled: bool = False
    url: str = "http://127.0.0.1:8086"
    org: str = "anjia"
    bucket: str = "anjia"
    token: SecretStr | None = None
    batch_size: int = Field(default=5000, ge=1, le=100_000, description="points per write")
    interval_ms: int = Field(default=1000, ge=10, le=600_000, description="poll when idle")
    timeout_ms: int = Field(default=10_000, ge=100, le=600_000)
    retry_min_s: float = Field(default=1.0, gt=0, le=600, description="first wait after a failure")
    retry_max_s: float = Field(default=60.0, gt=0, le=3600, description="longest wait (doubling)")

    @model_validator(mode="after")
    def _check_retry(self) -> TsdbSettings:
        if self.retry_max_s < self.retry_min_s:
            raise ValueError("retry_max_s must be >= retry_min_s")
        return self


class HttpSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)


class CloudSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="ANJIA_CLOUD__",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    mode: Mode = "dev"
    db: DatabaseSettings = Field(default_factory=DatabaseSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    crypto: CryptoSettings = Field(default_factory=CryptoSettings)
    mqtt: IngestMqttSettings = Field(default_factory=IngestMqttSettings)
    http: HttpSettings = Field(default_factory=HttpSettings)
    tsdb: TsdbSettings = Field(default_factory=TsdbSettings)

    @model_validator(mode="after")
    def _refuse_example_secrets(self) -> CloudSettings:
        if self.mode != "production":
            return self
        problems: list[str] = []
        secret = self.auth.jwt_secret.get_secret_value()
        if "jwt_secret" not in self.auth.model_fields_set:
            problems.append("auth.jwt_secret must be set in production")
        elif secret.lower() in _EXAMPLE_SECRETS or len(secret) < _MIN_JWT_SECRET_CHARS:
            problems.append(
                f"auth.jwt_secret is an example value or shorter than {_MIN_JWT_SECRET_CHARS}"
            )
        if "keys" not in self.crypto.model_fields_set:
            problems.append("crypto.keys must be set in production")
        if "blind_index_key" not in self.crypto.model_fields_set:
            problems.append("crypto.blind_index_key must be set in production")
        if self.crypto.uses_dev_keys:
            problems.append("crypto: the development keys are refused in production")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def dev_mode(self) -> bool:
        return self.mode != "production"

    @property
    def sqlite_path(self) -> Path | None:
        """The database file for a file-backed SQLite URL, else None."""
        prefix = "sqlite:///"
        if not self.db.url.startswith(prefix):
            return None
        path = self.db.url[len(prefix) :].split("?", 1)[0]
        if not path or path == ":memory:":
            return None
        return Path(path)
