"""Shared fixtures. Settings are built in code; services are started by fixtures on free ports."""

from __future__ import annotations

import pytest

# Real MQTT brokers for any test: the `mosquitto` and `amqtt_broker` fixtures (docs/mqtt.md);
# a real VictoriaMetrics: the `victoria_metrics` fixture (the time-series mirror).
pytest_plugins = ("tests.brokers", "tests.victoria")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--hardware",
        action="store_true",
        default=False,
        help="run tests that need a real Bluetooth adapter (BlueZ)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--hardware"):
        return
    skip = pytest.mark.skip(reason="needs a real Bluetooth adapter: run with --hardware")
    for item in items:
        if "hardware" in item.keywords:
            item.add_marker(skip)
