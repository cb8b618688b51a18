"""`anjia cloud migrate|create-operator|rotate-keys` against a real SQLite file, settings from
the environment as in production, and a refused example secret."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from cloud.db.migrate import head_revision
from cloud.main import create_app, load_settings
from gateway.cli import main


@pytest.fixture
def env_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("ANJIA_CLOUD__DB__URL", url)
    monkeypatch.setenv("ANJIA_CLOUD__AUTH__ARGON2_TIME_COST", "1")
    monkeypatch.setenv("ANJIA_CLOUD__AUTH__ARGON2_MEMORY_KIB", "64")
    monkeypatch.setenv("ANJIA_CLOUD__AUTH__ARGON2_PARALLELISM", "1")
    return url


def test_migrate_then_create_operator_who_can_log_in(
    env_db: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert main(["cloud", "migrate"]) == 0
    assert f"database at revision {head_revision()}" in capsys.readouterr().out
    monkeypatch.setattr("sys.stdin", io.StringIO("a long operator password\n"))
    assert main(["cloud", "create-operator", "root", "--password-stdin"]) == 0
    out = capsys.readouterr().out
    assert "operator root created" in out
    assert "password" not in out
    assert main(["cloud", "create-operator", "ops2"]) == 0
    generated = re.search(r"password \(shown once\): (\S+)", capsys.readouterr().out)
    assert generated is not None
    assert main(["cloud", "create-operator", "root", "--password-stdin"]) == 1  # taken
    with TestClient(create_app(load_settings())) as client:
        for username, password in (
            ("root", "a long operator password"),
            ("ops2", generated.group(1)),
        ):
            r = client.post("/auth/token", data={"username": username, "password": password})
            assert r.status_code == 200
            assert r.json()["role"] == "operator"


def test_rotate_keys_with_nothing_to_do(env_db: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cloud", "migrate"]) == 0
    assert main(["cloud", "rotate-keys"]) == 0
    assert "re-encrypted 0 persons under key dev1" in capsys.readouterr().out


def test_production_refuses_example_secrets_without_echoing_them(
    env_db: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANJIA_CLOUD__MODE", "production")
    monkeypatch.setenv("ANJIA_CLOUD__AUTH__JWT_SECRET", "changethis")
    assert main(["cloud", "migrate"]) == 2
    err = capsys.readouterr().err
    assert "jwt_secret" in err
    assert "crypto.keys must be set" in err
    assert "changethis" not in err


def test_bad_key_material_is_named_not_shown(
    env_db: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANJIA_CLOUD__CRYPTO__KEYS", '{"k1": "c2hvcnQ="}')  # 5 bytes
    monkeypatch.setenv("ANJIA_CLOUD__CRYPTO__CURRENT_KEY_ID", "k1")
    assert main(["cloud", "migrate"]) == 2
    err = capsys.readouterr().err
    assert "must decode to 32 bytes" in err
    assert "c2hvcnQ=" not in err
