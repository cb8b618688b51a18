"""A stand-in for the cloud's ingest side, until the cloud exists: a small paho subscriber.

It subscribes to every gateway's ``up/readings`` (and status and events), decodes each envelope
with :mod:`gateway.contract`, stores readings deduplicated on ``reading_id`` (as the cloud's
idempotent insert will) and answers with an :class:`~gateway.contract.AckMessage` on the
gateway's ``down/acks``: ``accepted`` for new readings, ``duplicates`` for replays. Knobs let a
test drop acks (a lost cloud ack) or stop acking altogether.
"""

from __future__ import annotations

import ssl
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from gateway import contract as c


@dataclass
class StandInCloud:
    host: str
    port: int
    protocol: MQTTProtocolVersion = MQTTProtocolVersion.MQTTv5
    tls: ssl.SSLContext | None = None
    username: str | None = None
    password: str | None = None
    drop_acks: int = 0  # the first N acks are not sent (lost on the way)
    acking: bool = True
    reject: Callable[[c.ReadingMessage], str | None] | None = None  # reason, or None to store
    stored: dict[str, c.ReadingMessage] = field(default_factory=dict)
    deliveries: Counter[str] = field(default_factory=Counter)  # reading_id -> times received
    statuses: list[c.StatusMessage] = field(default_factory=list)
    events: list[c.EventMessage] = field(default_factory=list)
    envelopes: int = 0
    acks_sent: int = 0
    acks_dropped: int = 0
    bad: list[c.ContractError] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._subscribed = threading.Event()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"standin-cloud-{id(self)}",
            protocol=self.protocol,
        )
        if self.tls is not None:
            self.client.tls_set_context(self.tls)
        if self.username is not None:
            self.client.username_pw_set(self.username, self.password)
        self.client.reconnect_delay_set(1, 1)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message

    def start(self, timeout_s: float = 10.0) -> StandInCloud:
        self.client.connect_async(self.host, self.port, keepalive=30)
        self.client.loop_start()
        if not self._subscribed.wait(timeout_s):
            self.stop()
            raise TimeoutError("the stand-in cloud could not subscribe")
        return self

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def _on_connect(
        self, client: mqtt.Client, userdata: object, flags: object, rc: object, props: object
    ) -> None:
        client.subscribe(
            [
                (c.cloud_filter(c.Channel.READINGS), 1),
                (c.cloud_filter(c.Channel.STATUS), 1),
                (c.cloud_filter(c.Channel.EVENTS), 1),
            ]
        )

    def _on_subscribe(
        self, client: mqtt.Client, userdata: object, mid: int, rcs: object, props: object
    ) -> None:
        self._subscribed.set()

    def _on_message(self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        try:
            gateway_id, decoded = c.decode(message.topic, message.payload)
        except c.ContractError as exc:
            with self._lock:
                self.bad.append(exc)
            return
        if isinstance(decoded, c.StatusMessage):
            with self._changed:
                self.statuses.append(decoded)
                self._changed.notify_all()
            return
        if isinstance(decoded, c.EventMessage):
            with self._changed:
                self.events.append(decoded)
                self._changed.notify_all()
            return
        assert isinstance(decoded, c.ReadingEnvelope)
        accepted, duplicates, rejected = [], [], []
        with self._changed:
            self.envelopes += 1
            for reading in decoded.readings:
                self.deliveries[reading.reading_id] += 1
                reason = self.reject(reading) if self.reject else None
                if reason is not None:
                    rejected.append(c.Rejection(reading_id=reading.reading_id, reason=reason))
                elif reading.reading_id in self.stored:
                    duplicates.append(reading.reading_id)
                else:
                    self.stored[reading.reading_id] = reading
                    accepted.append(reading.reading_id)
            send = self.acking
            if send and self.acks_dropped < self.drop_acks:
                self.acks_dropped += 1
                send = False
            self._changed.notify_all()
        if not send:
            return
        ack = c.AckMessage(
            schema_version=c.SCHEMA_VERSION,
            gateway_id=gateway_id,
            message_id=decoded.message_id,
            acked_at=datetime.now(UTC),
            accepted=tuple(accepted),
            duplicates=tuple(duplicates),
            rejected=tuple(rejected),
        )
        client.publish(c.topic(gateway_id, c.Channel.ACKS), c.encode(ack), qos=1)
        with self._lock:
            self.acks_sent += 1

    def wait_for(self, predicate: Callable[[StandInCloud], bool], timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while not predicate(self):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._changed.wait(min(remaining, 0.2))
        return True

    @property
    def duplicate_deliveries(self) -> int:
        with self._lock:
            return sum(n - 1 for n in self.deliveries.values())
