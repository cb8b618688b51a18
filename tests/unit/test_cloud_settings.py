"""The cloud's settings: environment nesting, random dev secrets, example secrets and the
development keys refused in production."""

from __future__ import annotations

import base64
import os

import pytest
from pydantic import ValidationError

from cloud.settings import DEV_KEYRING_B64, AuthSettings, CloudSettings, CryptoSettings


def _key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


def _production(**overrides: object) -> CloudSettings:
    values: dict[str, object] = {
        "mode": "production",
        "auth": AuthSettings(jwt_secret="x" * 40),  # type: ignore[arg-type]
        "crypto": CryptoSettings(
            keys={"k1": _key()},  # type: ignore[dict-item]
            current_key_id="k1",
            blind_index_key=_key(),  # type: ignore[arg-type]
        ),
    }
    values.update(overrides)
    return CloudSettings(**values)  # type: ignore[arg-type]


def test_defaults_are_dev_sqlite_with_short_tokens() -> None:
    settings = CloudSettings()
    assert settings.mode == "dev"
    assert settings.db.url == "sqlite:///./var/anjia.db"
    assert settings.auth.access_token_minutes == 15
    assert settings.crypto.uses_dev_keys


def test_dev_jwt_secret_is_random_per_process() -> None:
    a, b = CloudSettings(), CloudSettings()
    assert a.auth.jwt_secret.get_secret_value() != b.auth.jwt_secret.get_secret_value()
    assert len(a.auth.jwt_secret.get_secret_value()) >= 32


def test_environment_nesting(monkeypatch: pytest.MonkeyPatch) -> None:
    key = _key()
    monkeypatch.setenv("ANJIA_CLOUD__DB__URL", "postgresql+psycopg://u@h/db")
    monkeypatch.setenv("ANJIA_CLOUD__CRYPTO__KEYS", f'{{"k2026": "{key}"}}')
    monkeypatch.setenv("ANJIA_CLOUD__CRYPTO__CURRENT_KEY_ID", "k2026")
    monkeypatch.setenv("ANJIA_CLOUD__AUTH__ACCESS_TOKEN_MINUTES", "5")
    settings = CloudSettings()
    assert settings.db.url == "postgresql+psycopg://u@h/db"
    assert not settings.db.is_sqlite
    assert settings.crypto.keyring() == {"k2026": base64.b64decode(key)}
    assert settings.auth.access_token_minutes == 5


def test_a_complete_production_config_is_accepted() -> None:
    assert _production().mode == "production"


@pytest.mark.parametrize(
    ("overrides", "problem"),
    [
        ({"auth": AuthSettings()}, "auth.jwt_secret must be set"),
        ({"auth": AuthSettings(jwt_secret="changethis")}, "example value"),  # type: ignore[arg-type]
        ({"auth": AuthSettings(jwt_secret="short")}, "example value or shorter"),  # type: ignore[arg-type]
        ({"crypto": CryptoSettings()}, "crypto.keys must be set"),
        (
            {
                "crypto": CryptoSettings(
                    keys=DEV_KEYRING_B64,  # type: ignore[arg-type]
                    current_key_id="dev1",
                    blind_index_key=_key(),  # type: ignore[arg-type]
                )
            },
            "development keys are refused",
        ),
    ],
)
def test_production_refuses(overrides: dict[str, object], problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        _production(**overrides)


@pytest.mark.parametrize(
    "crypto",
    [
        {"keys": {"k1": "not base64!"}, "current_key_id": "k1"},
        {"keys": {"k1": base64.b64encode(b"16 bytes only!!!").decode()}, "current_key_id": "k1"},
        {"keys": {"K1 bad": base64.b64encode(os.urandom(32)).decode()}, "current_key_id": "K1 bad"},
        {"keys": {"k1": base64.b64encode(os.urandom(32)).decode()}, "current_key_id": "k2"},
        {"keys": {}, "current_key_id": "k1"},
    ],
)
def test_bad_keyrings(crypto: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        CryptoSettings(**crypto)  # type: ignore[arg-type]


def test_only_supported_databases() -> None:
    with pytest.raises(ValidationError):
        CloudSettings(db={"url": "mysql://x"})  # type: ignore[arg-type]
