"""Helpers for the gateway daemon tests: settings built in code, the daemon as a task, waits."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from device_drivers.bumble_air import BumbleAir
from edge.urgent import LocalAlert
from gateway.app import Gateway, run_gateway
from gateway.mqtt_settings import MqttSettings
from gateway.settings import BleSettings, DeviceSettings, GatewaySettings, OutboxSettings
from tests.integration.cloud_standin import StandInCloud

GW = "gw-daemon-0001"


def process_config_toml(
    tmp_path: Path,
    gateway_id: str,
    sim_port: int,
    mqtt_port: int,
    devices: str,
    *,
    ble_extra: str = "",
    mqtt_extra: str = "",
) -> Path:
    """A gateway.toml for ``anjia gateway run`` as a child process: the simulator on a bumble TCP
    transport, quick timeouts and reconnects, the outbox in ``tmp_path``; ``devices`` is the
    ``[[devices]]`` tables."""
    path = tmp_path / "gateway.toml"
    path.write_text(
        f"""
gateway_id = "{gateway_id}"
status_interval_s = 1

[ble]
link = "bumble:tcp-client:127.0.0.1:{sim_port}"
connect_timeout_s = 5
connect_attempts = 2
sync_timeout_s = 30
cuff_idle_s = 1
min_sync_gap_s = 600
{ble_extra}
[mqtt]
port = {mqtt_port}
reconnect_min_s = 1
reconnect_max_s = 1
ack_timeout_s = 2
keepalive_s = 5
{mqtt_extra}
[outbox]
path = "{tmp_path / "outbox.db"}"

{devices}""",
        encoding="utf-8",
    )
    return path


def gateway_settings(
    tmp_path: Path,
    port: int,
    devices: list[DeviceSettings],
    *,
    mqtt: dict[str, Any] | None = None,
    **ble: Any,
) -> GatewaySettings:
    ble_values: dict[str, Any] = {
        "connect_timeout_s": 3.0,
        "connect_attempts": 1,
        "sync_timeout_s": 20.0,
        "cuff_idle_s": 1.0,
        "min_sync_gap_s": 3.0,
        "backoff_max_s": 5.0,
    }
    mqtt_values: dict[str, Any] = {
        "port": port,
        "reconnect_min_s": 1,
        "reconnect_max_s": 1,
        "ack_timeout_s": 2.0,
        "keepalive_s": 5,
    }
    return GatewaySettings(
        gateway_id=GW,
        ble=BleSettings(**{**ble_values, **ble}),
        mqtt=MqttSettings(**{**mqtt_values, **(mqtt or {})}),
        outbox=OutboxSettings(path=tmp_path / "gateway" / "outbox.db"),
        devices=devices,
        status_interval_s=1.0,
    )


@dataclass
class RunningGateway:
    gateway: Gateway
    stop: asyncio.Event
    task: asyncio.Task[None]
    alerts: list[LocalAlert] = field(default_factory=list)


@contextlib.asynccontextmanager
async def running_gateway(
    settings: GatewaySettings, air: BumbleAir | None
) -> AsyncIterator[RunningGateway]:
    stop = asyncio.Event()
    started: list[Gateway] = []
    alerts: list[LocalAlert] = []
    task = asyncio.create_task(
        run_gateway(settings, air=air, stop=stop, on_alert=alerts.append, on_start=started.append)
    )
    async with asyncio.timeout(15):
        while not started:
            if task.done():
                task.result()  # raises what stopped it
            await asyncio.sleep(0.02)
    running = RunningGateway(started[0], stop, task, alerts)
    try:
        yield running
    finally:
        stop.set()
        async with asyncio.timeout(30):
            await task


async def until(
    cloud: StandInCloud, predicate: Callable[[StandInCloud], bool], timeout_s: float
) -> bool:
    return await asyncio.to_thread(cloud.wait_for, predicate, timeout_s)


async def eventually(predicate: Callable[[], bool], timeout_s: float) -> bool:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while loop.time() < deadline:
        if predicate():
            return True
        await asyncio.sleep(0.05)
    return predicate()
