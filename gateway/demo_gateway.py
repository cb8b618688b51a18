"""The demo household's gateway: the real daemon (:func:`gateway.app.run_gateway`) in this process,
on the demo's simulated air, publishing to the embedded broker with the credentials the cloud
issued. It starts with no devices of its own: the enrollment arrives from the cloud on the
retained config topic, exactly as for a gateway in a real home. IO, thin.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import SecretStr

if TYPE_CHECKING:
    from device_drivers.bumble_air import BumbleAir
    from edge.urgent import LocalAlert
    from gateway.demo_provision import DemoAccounts
    from gateway.settings import GatewaySettings

__all__ = ["DemoGateway", "demo_gateway_settings"]

SYNC_INTERVAL_MIN = 1.0


def demo_gateway_settings(
    accounts: DemoAccounts, broker_port: int, directory: Path, timezone: str
) -> GatewaySettings:
    from gateway.mqtt_settings import MqttSettings
    from gateway.settings import BleSettings, GatewaySettings, OutboxSettings

    return GatewaySettings(
        gateway_id=accounts.gateway_uid,
        timezone=timezone,
        ble=BleSettings(
            link="bleak",  # replaced by the shared simulated air passed to run_gateway
            scan_duration_s=2.0,
            sync_interval_min=SYNC_INTERVAL_MIN,
            connect_timeout_s=10.0,
            connect_attempts=2,
            cuff_idle_s=2.0,  # the simulated cuff sends its whole memory at once
        ),
        mqtt=MqttSettings(
            port=broker_port,
            protocol="mqtt311",
            username=accounts.mqtt_username,
            password=SecretStr(accounts.mqtt_password),
            batch_max_readings=50,
        ),
        outbox=OutboxSettings(path=directory / "gateway-outbox.db"),
        status_interval_s=2.0,
    )


@dataclass(slots=True)
class DemoGateway:
    settings: GatewaySettings
    air: BumbleAir
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _task: asyncio.Task[None] | None = None
    _alerts: list[LocalAlert] = field(default_factory=list)

    def start(self) -> DemoGateway:
        from gateway.app import run_gateway

        self._task = asyncio.create_task(
            run_gateway(self.settings, air=self.air, stop=self._stop, on_alert=self._alert),
            name="demo-gateway",
        )
        return self

    def _alert(self, alert: LocalAlert) -> None:
        self._alerts.append(alert)

    def take_alerts(self) -> list[LocalAlert]:
        """The local urgent alerts raised since the last call (the gateway raises them at home,
        online or not)."""
        taken, self._alerts = self._alerts, []
        return taken

    def check(self) -> None:
        """Raise what stopped the gateway, if it stopped on its own."""
        if self._task is not None and self._task.done():
            self._task.result()
            raise RuntimeError("the gateway stopped")

    async def stop(self, timeout_s: float = 15.0) -> None:
        if self._task is None:
            return
        self._stop.set()
        try:
            async with asyncio.timeout(timeout_s):
                await self._task
        except TimeoutError:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._task = None
