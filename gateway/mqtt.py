"""The MQTT publisher: drains the outbox to the broker and applies the cloud's acks (docs/mqtt.md).

paho-mqtt 2.x (callback API version 2) runs on the asyncio loop itself, through paho's
external-loop hooks: the socket is watched with ``add_reader``/``add_writer``, ``loop_misc``
runs every second (keepalive), and the connection task (re)connects with backoff. Only the
blocking TCP/TLS connect runs in a worker thread. No network thread: a replay's PUBACKs and acks
cost no thread hand-off and no GIL contention with a third thread (measured, bench-gateway).
Every callback is queued and run from the loop in order (:meth:`MqttPublisher._call`), so all
state lives on the loop. Outbox calls run on one worker thread, in order, so an fsync or a read
of the outbox never blocks the loop (SQLite runs without the GIL).

The publish loop:

* urgent readings first, each in its own envelope, published as soon as they are in the outbox
  (:meth:`MqttPublisher.notify`); they never wait for a batch or for the bulk window;
* then batches of up to ``batch_max_readings`` readings, with at most ``inflight_messages``
  envelopes awaiting their PUBACK and at most ``max_unacked_readings`` readings awaiting the
  cloud's ack (paho's own limit is set a little above, far below its 65,535 message-id ceiling),
  and no more bulk bytes awaiting their PUBACK than the uplink delivers in ``uplink_queue_s``
  (:mod:`gateway.uplink`: on a slow uplink an urgent envelope queues behind about that much);
* acks on ``down/acks`` remove readings from the outbox (the rows are deleted in bulk, see
  :mod:`gateway.outbox`); rejections move them aside;
* unacknowledged readings are sent again: at start (for a new process every reading on disk is
  pending), after a reconnect whose broker session was lost (PUBACKed readings whose ack may be
  lost; paho itself resends what was not PUBACKed), and when ``ack_timeout_s`` passes without an
  ack.

The session is persistent (``clean_start=False`` with ``session_expiry_s``) so acks sent while the
gateway was offline wait at the broker. The status topic is retained, with a last will "offline".
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import logging
import ssl
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, TypeVar

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from gateway.contract import (
    SCHEMA_VERSION,
    AckMessage,
    Channel,
    ConfigMessage,
    ContractError,
    DeviceDiagnostics,
    EventMessage,
    OutboxStatus,
    StatusMessage,
    decode_ack,
    decode_config,
    encode,
    encode_envelope_body,
    topic,
)
from gateway.event_queue import EventQueue
from gateway.mqtt_settings import MqttSettings
from gateway.outbox import Batch, OutboxStats, RejectedReading, SqliteOutbox
from gateway.uplink import SendMark, UplinkPacer

__all__ = ["MqttPublisher", "PublishError", "PublisherStats", "new_event_id"]

_LOGGER = logging.getLogger(__name__)
_PAHO_LOGGER = logging.getLogger(f"{__name__}.paho")

URGENT_EXTRA_INFLIGHT: Final = 16
"""paho's in-flight limit is the bulk window plus this, so an urgent message is never queued.
A broker's lower MQTT 5 Receive Maximum caps both (a quarter of it kept beside the bulk)."""
TICK_S: Final = 1.0
_ENVELOPE_BYTES_GUESS: Final = 64 * 1024
"""A bulk envelope's size before one was sent (100 readings are ~54 KB), and the bulk bytes the
uplink pacer lets out before it has measured the link."""
MAX_BATCHES_PER_TRIP: Final = 16
"""Envelopes taken from the outbox in one trip to its thread (when the windows allow): fewer
thread hand-offs, and a longer stretch of SQLite work (without the GIL) beside paho's sends.
16 replayed ~10 % faster than 4 (medians of 5 runs, twice); a trip of 16 envelopes reads for
~2-3 ms, which an urgent reading may wait (it is taken first by the next trip)."""

_T = TypeVar("_T")


class PublishError(Exception):
    """paho refused a publish (``rc`` is the paho error code)."""

    def __init__(self, topic_name: str, rc: int, reason: str) -> None:
        self.topic = topic_name
        self.rc = rc
        self.reason = reason
        super().__init__(f"publish to {topic_name} failed: {reason} (rc={rc})")


@dataclass(slots=True)
class PublisherStats:
    connects: int = 0
    disconnects: int = 0
    connect_failures: int = 0
    messages_published: int = 0
    readings_published: int = 0
    urgent_messages: int = 0
    pubacks: int = 0
    puback_failures: int = 0
    acks_received: int = 0
    readings_acked: int = 0
    readings_rejected: int = 0
    readings_requeued: int = 0
    bad_messages: int = 0
    events_pubacked: int = 0
    receive_maximum: int | None = None  # the broker's (MQTT 5 CONNACK), None if it set none


@dataclass(slots=True)
class _InFlight:
    message_id: str
    readings: int
    urgent: bool
    mark: SendMark | None = None  # bulk: what the uplink pacer noted when it left


class MqttPublisher:
    """Publishes the outbox of gateway ``gateway_id`` through one paho client."""

    def __init__(
        self,
        settings: MqttSettings,
        outbox: SqliteOutbox,
        gateway_id: str,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        on_config: Callable[[ConfigMessage], None] | None = None,
        diagnostics: Callable[[], Sequence[DeviceDiagnostics]] | None = None,
        config_version: Callable[[], int | None] | None = None,
        software_version: str = "",
        on_bad_message: Callable[[Channel, ContractError], None] | None = None,
        events: EventQueue | None = None,
    ) -> None:
        self.settings = settings
        self.events = events
        self.outbox = outbox
        self.gateway_id = gateway_id
        self.stats = PublisherStats()
        self._clock = clock
        self._on_config = on_config
        self._on_bad_message = on_bad_message
        self._diagnostics = diagnostics
        self._config_version = config_version
        self._software_version = software_version
        self._topics = {channel: topic(gateway_id, channel) for channel in Channel}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0
        self._fd: int | None = None  # the broker socket's, while the loop watches it
        self._socket_closed = asyncio.Event()
        self._writer_on = False  # the loop watches the socket for writability
        self._flush_scheduled = False
        self._puback_waiters: dict[int, asyncio.Event] = {}  # mid -> set on its PUBACK
        self._net_task: asyncio.Task[None] | None = None
        self._connecting: asyncio.Future[MQTTErrorCode] | None = None
        self._posted: collections.deque[tuple[Callable[..., None], tuple[Any, ...]]] = (
            collections.deque()
        )
        self._drain_scheduled = False
        self._db = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="anjia-outbox")
        self._client = self._make_client()
        self._connected = asyncio.Event()
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._first_connect = True
        self._requeue_pending = True  # at start: whatever a previous process left in flight
        self._requeue_published_only = False
        self._inflight: dict[int, _InFlight] = {}
        self._bulk_inflight = 0
        self._bulk_window = settings.inflight_messages  # less if the broker takes fewer
        self._pacer = UplinkPacer(settings.uplink_queue_s, floor_bytes=_ENVELOPE_BYTES_GUESS)
        self._envelope_bytes = _ENVELOPE_BYTES_GUESS  # the last bulk envelope's size
        self._unacked = 0
        self._ack_ids: list[str] = []
        self._rejections: list[RejectedReading] = []
        self._pubacked: list[str] = []
        self._last_ack_monotonic = time.monotonic()
        self._last_timeout_check = time.monotonic()
        self._events_dirty = True  # at start: whatever a previous process left queued
        self._events_sent: set[str] = set()  # published by this process (paho resends them)
        self._event_mids: dict[int, str] = {}
        self._events_pubacked: list[str] = []

    # --- paho setup -------------------------------------------------------------------------
    def _make_client(self) -> mqtt.Client:
        cfg = self.settings
        v5 = cfg.protocol == "mqtt5"
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=cfg.client_id or f"anjia-gw-{self.gateway_id}",
            protocol=MQTTProtocolVersion.MQTTv5 if v5 else MQTTProtocolVersion.MQTTv311,
            clean_session=None if v5 else cfg.session_expiry_s == 0,
        )
        client.enable_logger(_PAHO_LOGGER)
        client.max_inflight_messages_set(cfg.inflight_messages + URGENT_EXTRA_INFLIGHT)
        if cfg.username is not None:
            password = cfg.password.get_secret_value() if cfg.password else None
            client.username_pw_set(cfg.username, password)
        if cfg.tls:
            client.tls_set_context(self._tls_context())
        will = self._status_payload("offline", devices=False)  # sent_at: when registered
        client.will_set(self._topics[Channel.STATUS], will, qos=1, retain=True)
        client.on_connect = self._paho_connect
        client.on_socket_open = self._paho_socket_open
        client.on_socket_close = self._paho_socket_close
        client.on_socket_register_write = self._paho_register_write
        client.on_socket_unregister_write = self._paho_unregister_write
        client.on_disconnect = self._paho_disconnect
        client.on_publish = self._paho_publish
        client.on_message = self._paho_message
        return client

    def _tls_context(self) -> ssl.SSLContext:
        cfg = self.settings
        context = ssl.create_default_context(
            ssl.Purpose.SERVER_AUTH, cafile=str(cfg.ca_file) if cfg.ca_file else None
        )
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        if cfg.cert_file is not None and cfg.key_file is not None:
            context.load_cert_chain(str(cfg.cert_file), str(cfg.key_file))
        return context  # check_hostname and CERT_REQUIRED are the defaults

    def _status_payload(
        self, state: str, stats: OutboxStats | None = None, *, devices: bool = True
    ) -> bytes:
        outbox = None
        if stats is not None:
            oldest = stats.oldest_pending_added_at
            outbox = OutboxStatus(
                pending=stats.pending,
                in_flight=stats.in_flight,
                urgent_pending=stats.urgent_pending,
                capacity=stats.capacity,
                rejected=stats.rejected,
                refused=stats.refused_total,
                oldest_pending_at=None if oldest is None else datetime.fromtimestamp(oldest, UTC),
            )
        return encode(
            StatusMessage(
                schema_version=SCHEMA_VERSION,
                gateway_id=self.gateway_id,
                state="online" if state == "online" else "offline",
                sent_at=self._clock(),
                software_version=self._software_version,
                config_version=self._config_version() if self._config_version else None,
                outbox=outbox,
                devices=tuple(self._diagnostics()) if devices and self._diagnostics else (),
            )
        )

    # --- paho callbacks (on the loop, from paho's reads): queued, run in order ------------
    def _call(self, fn: Callable[..., None], *args: Any) -> None:
        """Run ``fn(*args)`` soon on the loop, in the order of the calls, outside paho's own
        processing (a handler may publish). paho calls back from the loop's thread (its reads);
        the queue is drained once per loop pass, whatever arrived meanwhile."""
        self._posted.append((fn, args))
        if self._drain_scheduled:
            return
        loop = self._loop
        if loop is not None and not loop.is_closed():
            self._drain_scheduled = True
            with contextlib.suppress(RuntimeError):  # the loop closed under us
                if threading.get_ident() == self._loop_thread:
                    loop.call_soon(self._drain_posted)
                else:
                    loop.call_soon_threadsafe(self._drain_posted)

    def _drain_posted(self) -> None:
        self._drain_scheduled = False  # first: a call arriving from now on schedules again
        posted = self._posted
        while posted:
            fn, args = posted.popleft()
            try:
                fn(*args)
            except Exception:  # one failing handler must not hold back the others
                _LOGGER.exception("%s: handling a broker callback failed", self.gateway_id)

    def _paho_connect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.ConnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason_code.is_failure:
            self._call(self._on_connect_refused, str(reason_code))
            return
        # MQTT 5: the broker may take fewer unacknowledged QoS 1 publishes than we would send
        # (HiveMQ disconnects a client that sends more). paho's public setter refuses while
        # connected; its limit is only read when a publish or a PUBACK decides whether a queued
        # message goes out, and paho calls us before it resends, so it is set here (paho 2.2.0,
        # pinned; tested through test_the_brokers_receive_maximum_bounds_...).
        receive_max = getattr(properties, "ReceiveMaximum", None) if properties else None
        client._max_inflight_messages = self._paho_inflight_limit(receive_max)
        client.subscribe([(self._topics[Channel.ACKS], 1), (self._topics[Channel.CONFIG], 1)])
        self._call(self._on_connected, flags.session_present, receive_max)

    def _paho_disconnect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.DisconnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        self._call(self._on_disconnected, str(reason_code))

    def _paho_publish(
        self,
        client: mqtt.Client,
        userdata: Any,
        mid: int,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        self._call(self._on_puback, mid, reason_code.is_failure, str(reason_code))

    def _paho_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        self._call(self._on_message, message.topic, message.payload)

    # --- loop-side handlers -----------------------------------------------------------------
    def _paho_inflight_limit(self, receive_max: int | None) -> int:
        wanted = self.settings.inflight_messages + URGENT_EXTRA_INFLIGHT
        return wanted if receive_max is None else max(1, min(wanted, receive_max))

    def _on_connected(self, session_present: bool, receive_max: int | None = None) -> None:
        self.stats.connects += 1
        self.stats.receive_maximum = receive_max
        window = self.settings.inflight_messages
        if receive_max is not None:  # a quarter of it (16 at most) kept for urgent and status
            window = max(1, min(window, receive_max - min(URGENT_EXTRA_INFLIGHT, receive_max // 4)))
        self._bulk_window = window
        if not self._first_connect and not session_present:
            # The broker lost our session: acks sent meanwhile are gone. paho resends what was
            # not PUBACKed; what was PUBACKed must be sent again to be acked.
            self._requeue_pending = True
            self._requeue_published_only = True
        self._first_connect = False
        _LOGGER.info(
            "%s: connected to %s:%d (session %s, %d bulk envelopes in flight at most)",
            self.gateway_id,
            self.settings.host,
            self.settings.effective_port,
            "resumed" if session_present else "new",
            window,
        )
        self._connected.set()
        self._wake.set()
        self._schedule(self.publish_status())

    def _on_connect_refused(self, reason: str) -> None:
        self.stats.connect_failures += 1
        _LOGGER.warning("%s: cannot connect to the broker: %s", self.gateway_id, reason)

    def _on_disconnected(self, reason: str) -> None:
        if self._connected.is_set():
            self.stats.disconnects += 1
            level = logging.INFO if self._stopping else logging.WARNING  # our own stop: no fault
            _LOGGER.log(level, "%s: disconnected from the broker: %s", self.gateway_id, reason)
        self._connected.clear()

    def _on_puback(self, mid: int, failed: bool, reason: str) -> None:
        waiter = self._puback_waiters.pop(mid, None)
        if waiter is not None:
            waiter.set()
        event_id = self._event_mids.pop(mid, None)
        if event_id is not None:
            if failed:  # kept in the queue: sent again by the next process
                _LOGGER.warning(
                    "%s: broker refused event %s: %s", self.gateway_id, event_id, reason
                )
            else:
                self._events_pubacked.append(event_id)
                self._wake.set()
            return
        entry = self._inflight.pop(mid, None)
        if entry is None:
            return  # status, event, or a message of a previous connection
        if not entry.urgent:
            self._bulk_inflight -= 1
        if entry.mark is not None:
            self._pacer.pubacked(time.monotonic(), entry.mark)
        if failed:
            # e.g. not authorized or quota exceeded: leave it in flight; the ack timeout resends
            self.stats.puback_failures += 1
            _LOGGER.warning("%s: broker refused %s: %s", self.gateway_id, entry.message_id, reason)
        else:
            self.stats.pubacks += 1
            self._pubacked.append(entry.message_id)
        self._wake.set()

    def _on_message(self, topic_name: str, payload: bytes) -> None:
        try:
            if topic_name == self._topics[Channel.ACKS]:
                self._on_ack(decode_ack(payload, gateway_id=self.gateway_id))
            elif topic_name == self._topics[Channel.CONFIG]:
                config = decode_config(payload, gateway_id=self.gateway_id)
                if self._on_config is not None:
                    self._on_config(config)
        except ContractError as exc:
            self.stats.bad_messages += 1
            _LOGGER.warning(
                "%s: ignored a bad message on %s (%d bytes): %s",
                self.gateway_id,
                topic_name,
                len(payload),
                exc.fault.value,
            )
            if self._on_bad_message is not None:
                on_config_topic = topic_name == self._topics[Channel.CONFIG]
                self._on_bad_message(Channel.CONFIG if on_config_topic else Channel.ACKS, exc)

    def _on_ack(self, ack: AckMessage) -> None:
        self.stats.acks_received += 1
        self._last_ack_monotonic = time.monotonic()
        self._ack_ids.extend(ack.accepted)
        self._ack_ids.extend(ack.duplicates)
        self._rejections.extend(
            RejectedReading(r.reading_id, r.reason, r.detail, r.retryable) for r in ack.rejected
        )
        if ack.envelope_error:
            _LOGGER.warning(
                "%s: the cloud could not read %s (%s); its readings will be sent again",
                self.gateway_id,
                ack.message_id,
                ack.envelope_error,
            )
        self._wake.set()

    # --- the socket on the loop (paho's external-loop hooks) --------------------------------
    def _on_loop(self, fn: Callable[..., None], *args: Any) -> None:
        """``fn(*args)`` now if on the loop's thread, else soon on the loop (a connect runs in
        a worker thread)."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        if threading.get_ident() == self._loop_thread:
            fn(*args)
        else:
            with contextlib.suppress(RuntimeError):  # the loop closed under us
                loop.call_soon_threadsafe(fn, *args)

    def _paho_socket_open(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        self._on_loop(self._watch, sock)

    def _paho_socket_close(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        self._on_loop(self._unwatch, sock)  # paho closes the socket right after this

    def _paho_register_write(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        self._on_loop(self._watch_writable, sock)

    def _paho_unregister_write(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        self._on_loop(self._unwatch_writable, sock)

    def _watch(self, sock: Any) -> None:
        loop = self._loop
        current = self._client.socket()
        if loop is None or current is None or sock is not current or current.fileno() < 0:
            return  # closed (or replaced) before the loop got to it
        self._unwatch_fd()
        self._fd = current.fileno()
        self._socket_closed.clear()
        loop.add_reader(self._fd, self._readable)
        if self._client.want_write():
            self._watch_writable(sock)

    def _unwatch(self, sock: Any) -> None:
        if self._fd is not None and sock.fileno() in (self._fd, -1):
            self._unwatch_fd()

    def _unwatch_fd(self) -> None:
        loop, fd = self._loop, self._fd
        self._fd = None
        self._writer_on = False
        self._socket_closed.set()
        if loop is not None and fd is not None:
            loop.remove_reader(fd)
            loop.remove_writer(fd)

    def _watch_writable(self, sock: Any) -> None:
        """paho has bytes to send: write them from the loop soon, all that queued up in this
        pass at once; watch for writability only if the socket cannot take them (a writer
        toggled per publish cost two epoll_ctl calls each, measured)."""
        if self._loop is None or self._fd is None or sock.fileno() != self._fd:
            return
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        if self._loop is None or self._fd is None:
            return
        self._client.loop_write()
        if self._client.want_write() and not self._writer_on and self._fd is not None:
            self._loop.add_writer(self._fd, self._writable)
            self._writer_on = True

    def _unwatch_writable(self, sock: Any) -> None:
        if self._loop is not None and self._fd is not None and self._writer_on:
            self._loop.remove_writer(self._fd)
            self._writer_on = False

    def _readable(self) -> None:
        client = self._client
        client.loop_read()
        sock = client.socket()
        # TLS: records already decrypted wait inside the SSL object, not in the socket
        while sock is not None and isinstance(sock, ssl.SSLSocket) and sock.pending():
            client.loop_read()
            sock = client.socket()

    def _writable(self) -> None:
        self._client.loop_write()

    async def _keep_connected(self) -> None:
        """Connect, run paho's keepalive every tick, reconnect after a loss with backoff
        (``reconnect_min_s`` doubling to ``reconnect_max_s``, reset once connected)."""
        cfg = self.settings
        delay = cfg.reconnect_min_s
        first = True
        while not self._stopping:
            if self._client.socket() is None:
                if not first:
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, cfg.reconnect_max_s)
                first = False
                self._connecting = asyncio.ensure_future(asyncio.to_thread(self._client.reconnect))
                try:
                    await asyncio.shield(self._connecting)
                except Exception as exc:  # noqa: BLE001 (refused, unreachable, TLS, DNS...: retried)
                    self._on_connect_refused(f"connection failed: {type(exc).__name__}: {exc}")
                    continue
                finally:
                    if self._connecting.done():
                        self._connecting = None
            elif self._connected.is_set():
                delay = cfg.reconnect_min_s
            await asyncio.sleep(TICK_S)
            if self._client.socket() is not None:
                self._client.loop_misc()

    # --- public API -------------------------------------------------------------------------
    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    async def start(self) -> None:
        """Connect in the background (retried with backoff) and start the publish loop."""
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._drain_scheduled = False
        cfg = self.settings
        properties = None
        if cfg.protocol == "mqtt5":
            properties = Properties(PacketTypes.CONNECT)
            properties.SessionExpiryInterval = cfg.session_expiry_s
        self._client.connect_async(
            cfg.host,
            cfg.effective_port,
            keepalive=cfg.keepalive_s,
            clean_start=cfg.session_expiry_s == 0,
            properties=properties,
        )
        self._net_task = asyncio.create_task(
            self._keep_connected(), name=f"mqtt-connection-{self.gateway_id}"
        )
        self._net_task.add_done_callback(_log_task_failure)
        self._task = asyncio.create_task(self._run(), name=f"mqtt-publisher-{self.gateway_id}")

    async def stop(self, *, timeout_s: float = 5.0) -> None:
        """Publish ``offline`` (retained), disconnect, stop the tasks and the outbox thread.
        The outbox stays open."""
        self._stopping = True
        self._wake.set()
        for task in (self._task, self._net_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        deadline = time.monotonic() + timeout_s
        if self._connecting is not None:  # a connect in its thread: let it end, then close
            with contextlib.suppress(OSError, ValueError, TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._connecting), timeout_s)
        if self._connected.is_set():
            with contextlib.suppress(PublishError, RuntimeError, ValueError, TimeoutError):
                info = await self._publish_status_info("offline")
                pubacked = self._puback_waiters[info.mid] = asyncio.Event()
                await asyncio.wait_for(pubacked.wait(), max(0.0, deadline - time.monotonic()))
        self._client.disable_logger()  # paho logs a spurious ERROR while disconnecting
        self._client.disconnect()  # the DISCONNECT goes out when the socket is writable
        if self._client.socket() is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._socket_closed.wait(), max(0.01, deadline - time.monotonic())
                )
        if self._client.socket() is not None:
            _LOGGER.warning("%s: the broker connection did not close in time", self.gateway_id)
        self._unwatch_fd()
        self._db.shutdown(wait=True)
        self._loop = None

    def notify(self, *, urgent: bool = False) -> None:
        """New readings are in the outbox (``urgent``: at least one urgent). Any thread."""
        loop = self._loop
        if loop is None:
            return
        try:
            on_loop = asyncio.get_running_loop() is loop
        except RuntimeError:
            on_loop = False
        if on_loop:
            self._wake.set()
        else:
            self._call(self._wake.set)

    async def wait_connected(self, timeout_s: float) -> bool:
        try:
            await asyncio.wait_for(self._connected.wait(), timeout_s)
        except TimeoutError:
            return False
        return True

    async def wait_idle(self, timeout_s: float) -> bool:
        """True once the outbox is empty (everything acked), False on timeout. For tests and
        orderly shutdowns."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if await self._in_db(self.outbox.depth) == 0:
                return True
            self._idle.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._idle.wait(), min(0.2, deadline - time.monotonic()))
        return False

    async def publish_status(self) -> None:
        """Publish the retained ``online`` status with outbox stats and device diagnostics."""
        with contextlib.suppress(PublishError):
            await self._publish_status_info("online")

    async def _publish_status_info(self, state: str) -> mqtt.MQTTMessageInfo:
        stats = await self._in_db(self.outbox.stats)
        payload = self._status_payload(state, stats)
        return self._publish(self._topics[Channel.STATUS], payload, retain=True)

    async def publish_event(self, event: EventMessage) -> None:
        """Publish an event (QoS 1). With an :class:`EventQueue` it is stored first and
        published when connected, deleted on its PUBACK (a restart while offline keeps it);
        without one paho queues it in memory while offline."""
        if self.events is None:
            self._publish(self._topics[Channel.EVENTS], encode(event))
            return
        await self._in_db(self.events.add, event)
        self._events_dirty = True
        self._wake.set()

    async def _flush_events(self) -> bool:
        """Delete PUBACKed events, publish the queued ones not yet sent. True if it did work."""
        queue = self.events
        if queue is None:
            return False
        worked = False
        if self._events_pubacked:
            done, self._events_pubacked = self._events_pubacked, []
            await self._in_db(queue.remove, done)
            self.stats.events_pubacked += len(done)
            worked = True
        if self._events_dirty:
            self._events_dirty = False
            for event in await self._in_db(queue.pending, set(self._events_sent)):
                try:
                    info = self._publish(self._topics[Channel.EVENTS], event.payload)
                except PublishError:
                    _LOGGER.warning(
                        "%s: could not publish event %s", self.gateway_id, event.event_id
                    )
                    self._events_dirty = True
                    break
                self._event_mids[info.mid] = event.event_id
                self._events_sent.add(event.event_id)
                worked = True
        return worked

    # --- the publish loop -------------------------------------------------------------------
    def _schedule(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        task.add_done_callback(_log_task_failure)

    async def _in_db(self, fn: Callable[..., _T], *args: Any) -> _T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._db, fn, *args)

    def _publish(
        self, topic_name: str, payload: bytes, *, retain: bool = False
    ) -> mqtt.MQTTMessageInfo:
        info = self._client.publish(topic_name, payload, qos=1, retain=retain)
        if info.rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN):
            raise PublishError(topic_name, int(info.rc), mqtt.error_string(info.rc))
        return info  # NO_CONN: paho keeps QoS 1 messages and sends them after reconnecting

    async def _run(self) -> None:
        trip: asyncio.Future[tuple[int, int, list[Batch]]] | None = None
        while not self._stopping:
            self._wake.clear()
            await self._connected.wait()
            worked = await self._flush_events()
            if trip is None:
                worked = await self._requeue_if_due() or worked
                trip = self._start_trip()
            removed, rejected, batches = await trip
            trip = None
            if removed or rejected:
                self.stats.readings_acked += removed
                self.stats.readings_rejected += rejected
                self._unacked = max(0, self._unacked - removed - rejected)
                worked = True
            if batches:
                if not self._requeue_due():
                    # the next trip to the outbox thread reads while these go out (SQLite runs
                    # without the GIL): the envelopes about to be sent count as in flight
                    trip = self._start_trip(
                        sum(not batch.urgent for batch in batches),
                        sum(len(batch.reading_ids) for batch in batches),
                    )
                for batch in batches:
                    self._send(batch)
                continue
            if not worked and not (
                self._ack_ids or self._rejections or self._pubacked or self._events_pubacked
            ):
                self._idle.set()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), TICK_S)

    def _start_trip(
        self, sending_bulk: int = 0, sending_readings: int = 0
    ) -> asyncio.Future[tuple[int, int, list[Batch]]]:
        """One trip to the outbox thread with the acks so far, for as many envelopes as the
        windows allow now (``sending_*``: envelopes taken and not yet published)."""
        acks, self._ack_ids = self._ack_ids, []
        rejections, self._rejections = self._rejections, []
        pubacked, self._pubacked = self._pubacked, []
        cfg = self.settings
        unacked = self._unacked + sending_readings
        bulk = max(
            0,
            min(
                self._bulk_window - self._bulk_inflight - sending_bulk,
                self._pacer.envelopes(time.monotonic(), self._envelope_bytes) - sending_bulk,
                -(-(cfg.max_unacked_readings - unacked) // cfg.batch_max_readings),
                MAX_BATCHES_PER_TRIP,
            ),
        )
        loop = asyncio.get_running_loop()
        return loop.run_in_executor(self._db, self._cycle, acks, rejections, pubacked, bulk)

    def _requeue_due(self) -> bool:
        return self._requeue_pending or time.monotonic() - self._last_timeout_check >= TICK_S

    def _cycle(
        self,
        acks: list[str],
        rejections: list[RejectedReading],
        pubacked: list[str],
        bulk: int,
    ) -> tuple[int, int, list[Batch]]:
        """One trip to the outbox thread: apply PUBACKs and acks, then take the next batches:
        urgent readings always (one per envelope, first), up to ``bulk`` bulk envelopes."""
        if pubacked:
            self.outbox.mark_published(pubacked)
        removed = self.outbox.ack(acks) if acks else 0
        rejected = self.outbox.reject(rejections) if rejections else 0
        batches: list[Batch] = []
        while len(batches) < MAX_BATCHES_PER_TRIP:
            if bulk > 0:
                batch = self.outbox.next_batch(self.settings.batch_max_readings, max_urgent=1)
            else:
                batch = self.outbox.next_batch(1, urgent_only=True)
            if batch is None:
                break
            batches.append(batch)
            if not batch.urgent:
                bulk -= 1
        return removed, rejected, batches

    def _tick_outbox(self, cutoff: float) -> int:
        """Once a tick on the outbox thread: delete acked rows that waited long enough, requeue
        what was sent before ``cutoff`` and is still unacknowledged (how many)."""
        self.outbox.flush_due()
        return self.outbox.requeue_unacked(cutoff)

    async def _requeue_if_due(self) -> bool:
        """Resend what is unacknowledged: after (re)connecting as needed, and on ack timeout."""
        worked = False
        if self._requeue_pending:
            self._requeue_pending = False
            published_only, self._requeue_published_only = self._requeue_published_only, False
            count = await self._in_db(
                lambda: self.outbox.requeue_unacked(published_only=published_only)
            )
            self.stats.readings_requeued += count
            self._unacked = 0 if not published_only else max(0, self._unacked - count)
            worked = True
        now = time.monotonic()
        if now - self._last_timeout_check >= TICK_S:
            self._last_timeout_check = now
            cutoff = time.time() - self.settings.ack_timeout_s
            count = await self._in_db(self._tick_outbox, cutoff)
            if count:
                self.stats.readings_requeued += count
                self._unacked = max(0, self._unacked - count)
                _LOGGER.warning(
                    "%s: no ack for %d readings after %.0f s: sending them again",
                    self.gateway_id,
                    count,
                    self.settings.ack_timeout_s,
                )
                worked = True
        return worked

    def _send(self, batch: Batch) -> None:
        n = len(batch.reading_ids)
        payload = encode_envelope_body(
            batch.message_id, self.gateway_id, self._clock(), batch.body, n
        )
        try:
            info = self._publish(self._topics[Channel.READINGS], payload)
        except PublishError:
            _LOGGER.exception("%s: could not publish %s", self.gateway_id, batch.message_id)
            self._requeue_pending = True  # hand the readings back (all in flight, resent)
            return
        entry = self._inflight[info.mid] = _InFlight(batch.message_id, n, batch.urgent)
        self._unacked += n
        self.stats.messages_published += 1
        self.stats.readings_published += n
        if batch.urgent:
            self.stats.urgent_messages += 1
        else:
            self._bulk_inflight += 1
            self._envelope_bytes = len(payload)
            entry.mark = self._pacer.sent(time.monotonic(), len(payload))
        if _LOGGER.isEnabledFor(logging.DEBUG):
            _LOGGER.debug(
                "%s: published %s (%d readings, %d bytes, urgent=%s)",
                self.gateway_id,
                batch.message_id,
                n,
                len(payload),
                batch.urgent,
            )


def _log_task_failure(task: asyncio.Future[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        _LOGGER.error("publisher task failed", exc_info=task.exception())


def new_event_id() -> str:
    return f"e-{uuid.uuid4().hex}"
