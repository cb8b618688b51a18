"""The broker fixtures' policy (tests/brokers.py): a missing Mosquitto skips a developer's run
but fails CI, where `make test` must have installed it."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests import brokers


def test_missing_mosquitto_skips_locally_and_fails_under_ci(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(brokers, "MOSQUITTO_CANDIDATES", ("/nonexistent/bin/mosquitto",))
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI must run the broker tests"):
        brokers.find_mosquitto()
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match="mosquitto is not installed"):
        brokers.find_mosquitto()


def test_generated_config_never_limits_queues_by_count(tmp_path: Path) -> None:
    config = brokers.Mosquitto(tmp_path, binary="mosquitto").config().splitlines()
    assert "max_queued_messages 0" in config
    assert any(line.startswith("max_queued_bytes ") for line in config)
    assert "persistence false" in config
    assert any(line.startswith("listener ") and line.endswith(" 127.0.0.1") for line in config)
