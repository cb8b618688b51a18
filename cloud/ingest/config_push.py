"""Pushes each gateway's enrollment to it as a retained message on its config topic.

The gateway subscribes to ``anjia/v1/gw/<uid>/down/config`` (docs/mqtt.md): a retained
:class:`~gateway.contract.ConfigMessage` reaches it at once when it connects, also after months
offline. The pusher polls the gateways table and publishes the config of every active gateway
whose ``config_version`` it has not published yet (provisioning bumps the version whenever a
household's devices, owners or cuff user slots change). A version counts as published only after
the broker's PUBACK, so a broker outage just delays it. Several ingest processes may each run a
pusher: the retained message is the same, so repeats are harmless. IO (paho thread + one poller
thread).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime

import paho.mqtt.client as mqtt
from sqlalchemy.orm import Session, sessionmaker

from cloud.db.repositories import GatewayRepository
from cloud.mqtt_client import make_cloud_client
from cloud.runtime import system_clock
from cloud.services.devices import gateway_config_message
from cloud.settings import IngestMqttSettings
from gateway.contract import Channel, encode, topic

__all__ = ["ConfigPusher"]

_LOGGER = logging.getLogger(__name__)

PUBACK_TIMEOUT_S = 5.0


class ConfigPusher:
    def __init__(
        self,
        cfg: IngestMqttSettings,
        session_factory: sessionmaker[Session],
        *,
        clock: Callable[[], datetime] = system_clock,
        interval_s: float = 2.0,
        client_id: str | None = None,
    ) -> None:
        self._cfg = cfg
        self._factory = session_factory
        self._clock = clock
        self._interval_s = interval_s
        self._published: dict[str, int] = {}
        self._stop = threading.Event()
        self._connected = threading.Event()
        self._client = make_cloud_client(
            cfg, client_id or f"{cfg.client_id_prefix}-config", logger=__name__
        )
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._thread = threading.Thread(target=self._loop, name="config-push", daemon=True)

    @property
    def published(self) -> dict[str, int]:
        """Gateway uid -> the config version the broker has acknowledged."""
        return dict(self._published)

    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: object,
        rc: mqtt.ReasonCode,
        props: object = None,
    ) -> None:
        if rc.is_failure:
            _LOGGER.error("config pusher: broker refused the connection: %s", rc)
            return
        self._connected.set()

    def _on_disconnect(self, *_args: object) -> None:
        self._connected.clear()

    def start(self) -> None:
        self._client.connect_async(self._cfg.host, self._cfg.port, keepalive=self._cfg.keepalive_s)
        self._client.loop_start()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10.0)
        self._client.disconnect()
        self._client.loop_stop()

    def _loop(self) -> None:
        while not self._stop.is_set():
            if self._connected.is_set():
                try:
                    self.push_changed()
                except Exception:  # a database hiccup: log it and try again next round
                    _LOGGER.exception("config pusher: round failed")
            self._stop.wait(self._interval_s)

    def push_changed(self) -> int:
        """Publish every config the broker has not acknowledged yet; returns how many went out."""
        with self._factory() as session:
            pending = [
                gateway_config_message(session, gateway, self._clock())
                for gateway in GatewayRepository(session).active()
                if self._published.get(gateway.uid) != gateway.config_version
            ]
        sent = 0
        for message in pending:
            info = self._client.publish(
                topic(message.gateway_id, Channel.CONFIG), encode(message), qos=1, retain=True
            )
            try:
                info.wait_for_publish(PUBACK_TIMEOUT_S)
            except (RuntimeError, ValueError):
                return sent  # not connected or queue refused: next round
            if not info.is_published():
                return sent
            self._published[message.gateway_id] = message.version
            sent += 1
            _LOGGER.info("config v%d pushed to gateway %s", message.version, message.gateway_id)
        return sent
