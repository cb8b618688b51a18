"""The demo's window on the broker: what the household's gateway says on its status and events
topics, decoded with the MQTT contract, as any subscriber allowed to read them would see it.

A paho client (MQTT 3.1.1, the embedded amqtt broker) on its own network thread; decoded messages
are kept in order for the demo to print. Messages that fail the contract are counted, not shown.
IO, thin.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from gateway.contract import Channel, ContractError, decode, topic
from gateway.contract_messages import EventMessage, StatusMessage

__all__ = ["BrokerWatch"]


@dataclass(slots=True)
class BrokerWatch:
    """Subscribes to ``gateway_id``'s status and events on 127.0.0.1:``port``."""

    port: int
    gateway_id: str
    events: list[EventMessage] = field(default_factory=list)
    statuses: list[StatusMessage] = field(default_factory=list)
    undecodable: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _client: mqtt.Client | None = None

    def start(self) -> BrokerWatch:
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"demo-watch-{self.gateway_id}",
            protocol=MQTTProtocolVersion.MQTTv311,
        )
        client.on_connect = self._on_connect
        client.on_message = self._on_message
        client.connect("127.0.0.1", self.port)
        client.loop_start()
        self._client = client
        return self

    def stop(self) -> None:
        if self._client is not None:
            self._client.disconnect()
            self._client.loop_stop()
            self._client = None

    def take_events(self) -> list[EventMessage]:
        """The events received since the last call, oldest first."""
        with self._lock:
            taken, self.events = self.events, []
        return taken

    def latest_status(self) -> StatusMessage | None:
        with self._lock:
            return self.statuses[-1] if self.statuses else None

    def _on_connect(self, client: mqtt.Client, *_: object) -> None:
        client.subscribe(
            [
                (topic(self.gateway_id, Channel.STATUS), 1),
                (topic(self.gateway_id, Channel.EVENTS), 1),
            ]
        )

    def _on_message(self, _client: mqtt.Client, _userdata: object, msg: mqtt.MQTTMessage) -> None:
        try:
            _, message = decode(msg.topic, msg.payload)
        except ContractError:
            with self._lock:
                self.undecodable += 1
            return
        with self._lock:
            if isinstance(message, EventMessage):
                self.events.append(message)
            elif isinstance(message, StatusMessage):
                self.statuses.append(message)
