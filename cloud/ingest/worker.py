"""The ingest worker: a paho-mqtt subscriber on a shared subscription and one writer thread.

Flow (docs/ingest.md): paho's network thread only wraps each message in an :class:`Inbound` and
appends it to a bounded :class:`~cloud.ingest.inbox.Inbox`. The writer thread takes batches
(``batch_size`` messages or ``batch_interval_ms`` after the first), stores each batch in one
transaction
(:class:`~cloud.ingest.store.BatchStore`), and only after the commit publishes the gateways'
acks, sends the MQTT PUBACKs and calls the alert hook.

Backpressure: PUBACKs are manual (paho's ``manual_ack``) and sent after the commit, and the
worker connects with MQTT 5 ``Receive Maximum`` = ``receive_maximum``, so the broker never has
more than that many unacknowledged messages in flight to this worker: a slow or unavailable
database stops the flow at the broker (which queues for the session, or hands the messages to
the other workers of the share group) instead of growing memory or dropping. The inbox holds
twice that window; should a broker ignore Receive Maximum (MQTT 3.1.1, amqtt), a full inbox
blocks paho's thread and TCP pushes back.

Reconnects: PUBACKs go back only on the connection that delivered the message (message ids are
per connection); anything unacknowledged is redelivered by the broker from the persistent
session (``clean_start=False``, ``session_expiry_s``) and stored idempotently.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions
from sqlalchemy.orm import Session, sessionmaker

from cloud.ingest.hook import AlertHook, NoopHook
from cloud.ingest.inbox import Inbox
from cloud.ingest.store import BatchOutcome, BatchStore, Inbound, StoreUnavailableError
from cloud.mqtt_client import make_cloud_client
from cloud.runtime import system_clock
from cloud.settings import IngestMqttSettings
from gateway.contract import Channel, cloud_filter, encode

__all__ = ["IngestStats", "IngestWorker", "subscription_filters"]

_LOGGER = logging.getLogger(__name__)

_CHANNELS = (Channel.READINGS, Channel.STATUS, Channel.EVENTS)
_ACK_INFLIGHT = 200  # our own QoS 1 ack publishes awaiting the broker's PUBACK


def _payload_size(item: Inbound) -> int:
    return len(item.payload)


def subscription_filters(cfg: IngestMqttSettings) -> list[str]:
    """``$share/<group>/anjia/v1/gw/+/up/...`` with MQTT 5; plain filters with MQTT 3.1.1
    (amqtt, the one-process demo, accepts ``$share`` and then delivers nothing)."""
    group = cfg.shared_group if cfg.protocol == "mqtt5" else None
    return [cloud_filter(channel, group) for channel in _CHANNELS]


@dataclass
class IngestStats:
    """Counters of one worker (written by its threads; read them for tests and logs)."""

    connects: int = 0
    received: int = 0
    messages: int = 0
    batches: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    dead_letters: int = 0
    statuses: int = 0
    events: int = 0
    acks_published: int = 0
    pubacks: int = 0
    db_retries: int = 0
    hook_failures: int = 0


class IngestWorker:
    """One ingest worker. ``start()`` connects in the background; ``stop()`` stops taking new
    messages, commits and acks what it holds, and disconnects."""

    def __init__(
        self,
        cfg: IngestMqttSettings,
        session_factory: sessionmaker[Session],
        *,
        clock: Callable[[], datetime] = system_clock,
        hook: AlertHook | None = None,
        mirror: bool = False,
        index: int = 0,
        client_id: str | None = None,
        on_batch: Callable[[BatchOutcome], None] | None = None,
    ) -> None:
        self.cfg = cfg
        self.stats = IngestStats()
        self.client_id = client_id or f"{cfg.client_id_prefix}-{socket.gethostname()}-{index}"
        self._store = BatchStore(session_factory, clock, mirror=mirror)
        self._hook: AlertHook = hook or NoopHook()
        self._on_batch = on_batch
        self._inbox: Inbox[Inbound] = Inbox(maxsize=2 * cfg.receive_maximum, weigh=_payload_size)
        self._generation = 0
        self._accepting = True
        self._subscribed = threading.Event()
        self._stopping = threading.Event()
        self._abort = threading.Event()
        self._writer = threading.Thread(target=self._write_loop, name="ingest-writer", daemon=True)
        self._client = self._make_client()

    # --- MQTT ---------------------------------------------------------------------------------
    def _make_client(self) -> mqtt.Client:
        client = make_cloud_client(self.cfg, self.client_id, manual_ack=True, logger=__name__)
        client.max_inflight_messages_set(_ACK_INFLIGHT)
        client.max_queued_messages_set(0)
        client.on_connect = self._on_connect
        client.on_subscribe = self._on_subscribe
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        return client

    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: mqtt.ConnectFlags,
        reason_code: mqtt.ReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason_code.is_failure:
            _LOGGER.error("%s: broker refused the connection: %s", self.client_id, reason_code)
            return
        self._generation += 1
        self.stats.connects += 1
        _LOGGER.info(
            "%s: connected (session %s)",
            self.client_id,
            "resumed" if flags.session_present else "new",
        )
        filters = subscription_filters(self.cfg)
        if self.cfg.protocol == "mqtt5":
            client.subscribe([(f, SubscribeOptions(qos=1)) for f in filters])
        else:
            client.subscribe([(f, 1) for f in filters])

    def _on_subscribe(
        self,
        client: mqtt.Client,
        userdata: object,
        mid: int,
        reason_codes: list[mqtt.ReasonCode],
        properties: Properties | None,
    ) -> None:
        refused = [str(rc) for rc in reason_codes if rc.is_failure]
        if refused:
            _LOGGER.error("%s: subscription refused: %s", self.client_id, ", ".join(refused))
            return
        self._subscribed.set()

    def _on_disconnect(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: mqtt.DisconnectFlags,
        reason_code: mqtt.ReasonCode,
        properties: Properties | None,
    ) -> None:
        self._subscribed.clear()
        if not self._stopping.is_set():
            _LOGGER.warning("%s: disconnected (%s); reconnecting", self.client_id, reason_code)

    def _on_message(self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        if not self._accepting:
            return  # stopping: left unacknowledged, the broker delivers it again
        try:
            topic = message.topic
        except UnicodeDecodeError:
            topic = "<topic not UTF-8>"
        self.stats.received += 1
        # Blocks only if a broker ignores Receive Maximum: then TCP pushes back.
        self._inbox.put(
            Inbound(
                topic,
                bytes(message.payload),  # the same object when paho gives bytes
                time.time(),
                message.mid if message.qos else 0,
                self._generation,
            )
        )

    # --- lifecycle ----------------------------------------------------------------------------
    def start(self) -> None:
        cfg = self.cfg
        properties = None
        if cfg.protocol == "mqtt5":
            properties = Properties(PacketTypes.CONNECT)
            properties.SessionExpiryInterval = cfg.session_expiry_s
            properties.ReceiveMaximum = cfg.receive_maximum
        self._writer.start()
        self._client.connect_async(
            cfg.host,
            cfg.port,
            keepalive=cfg.keepalive_s,
            clean_start=False if cfg.protocol == "mqtt5" else mqtt.MQTT_CLEAN_START_FIRST_ONLY,
            properties=properties,
        )
        self._client.loop_start()

    def wait_ready(self, timeout_s: float = 10.0) -> bool:
        """True once subscribed (for tests, benches and readiness probes)."""
        return self._subscribed.wait(timeout_s)

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop taking messages, store and ack what is queued, disconnect. Whatever cannot be
        stored within ``timeout_s`` is left unacknowledged (the broker redelivers it)."""
        self._accepting = False
        self._stopping.set()
        self._writer.join(timeout_s)
        if self._writer.is_alive():
            _LOGGER.warning(
                "%s: writer still busy after %.1f s; leaving", self.client_id, timeout_s
            )
            self._abort.set()
            self._writer.join(5.0)
        self._client.disconnect()
        self._client.loop_stop()

    @property
    def queued(self) -> int:
        return len(self._inbox)

    # --- the writer thread --------------------------------------------------------------------
    def _next_batch(self) -> list[Inbound]:
        cfg = self.cfg
        return self._inbox.take(
            cfg.batch_size,
            0.1,
            cfg.batch_interval_ms / 1000.0,
            self._stopping.is_set,
            max_weight=cfg.batch_max_bytes,
        )

    def _write_loop(self) -> None:
        while not self._abort.is_set():
            batch = self._next_batch()
            if not batch:
                if self._stopping.is_set():
                    return
                continue
            outcome = self._store_with_retry(batch)
            if outcome is None:
                return  # aborted while the database was unavailable: nothing acked
            self._after_commit(batch, outcome)

    def _store_with_retry(self, batch: list[Inbound]) -> BatchOutcome | None:
        attempt = 0
        while True:
            try:
                return self._store.process(batch)
            except StoreUnavailableError as exc:
                attempt += 1
                self.stats.db_retries += 1
                delay = min(self.cfg.db_retry_max_s, 0.05 * 2 ** min(attempt, 16))
                _LOGGER.warning(
                    "%s: database unavailable (%s); batch of %d kept, retry %d in %.2f s",
                    self.client_id,
                    exc.cause,
                    len(batch),
                    attempt,
                    delay,
                )
                if self._abort.wait(delay):
                    return None

    def _after_commit(self, batch: list[Inbound], outcome: BatchOutcome) -> None:
        stats = self.stats
        client = self._client
        for ack_topic, ack in outcome.acks:
            client.publish(ack_topic, encode(ack), qos=1)
        stats.acks_published += len(outcome.acks)
        generation = self._generation
        for item in batch:
            if item.mid and item.generation == generation:
                client.ack(item.mid, 1)
                stats.pubacks += 1
        stats.batches += 1
        stats.messages += len(batch)
        stats.accepted += outcome.accepted
        stats.duplicates += outcome.duplicates
        stats.rejected += outcome.rejected
        stats.dead_letters += outcome.dead_letters
        stats.statuses += outcome.statuses
        stats.events += outcome.events
        if outcome.stored:
            try:
                self._hook.on_committed(outcome.stored)
            except Exception:  # a hook bug must not stop ingest (see hook.py)
                stats.hook_failures += 1
                _LOGGER.exception(
                    "%s: alert hook failed on %d readings", self.client_id, len(outcome.stored)
                )
        if self._on_batch is not None:
            self._on_batch(outcome)
