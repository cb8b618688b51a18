"""Small paho clients for the ingest tests: a gateway stand-in that publishes envelopes and
collects the cloud's acks, and a waiting helper."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from gateway import contract as c


def wait_until(predicate: Callable[[], bool], timeout_s: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


@dataclass
class GatewayStandIn:
    """Publishes envelopes as ``gateway_id`` and collects the acks on its down topic."""

    port: int
    gateway_id: str
    username: str | None = None
    password: str | None = None
    protocol: MQTTProtocolVersion = MQTTProtocolVersion.MQTTv5
    acks: list[c.AckMessage] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"standin-{self.gateway_id}-{id(self)}",
            protocol=self.protocol,
        )
        if self.username is not None:
            self.client.username_pw_set(self.username, self.password)
        self.client.max_inflight_messages_set(200)
        self.client.max_queued_messages_set(0)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda *args: self._subscribed.set()
        self.client.on_message = self._on_message

    def start(self) -> GatewayStandIn:
        self.client.connect("127.0.0.1", self.port, keepalive=30)
        self.client.loop_start()
        assert self._subscribed.wait(10), "the gateway stand-in could not subscribe"
        return self

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def _on_connect(self, client: mqtt.Client, *args: object) -> None:
        client.subscribe(c.topic(self.gateway_id, c.Channel.ACKS), qos=1)

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        ack = c.decode_ack(msg.payload, gateway_id=self.gateway_id)
        with self._lock:
            self.acks.append(ack)

    def publish(
        self, payload: bytes, channel: c.Channel = c.Channel.READINGS, *, wait: bool = True
    ) -> mqtt.MQTTMessageInfo:
        info = self.client.publish(c.topic(self.gateway_id, channel), payload, qos=1)
        if wait:
            info.wait_for_publish(10)
        return info

    def settled(self) -> set[str]:
        """Reading ids acked as accepted or duplicate."""
        with self._lock:
            return {r for ack in self.acks for r in (*ack.accepted, *ack.duplicates)}

    def envelope_errors(self) -> list[str]:
        with self._lock:
            return [ack.envelope_error for ack in self.acks if ack.envelope_error]
