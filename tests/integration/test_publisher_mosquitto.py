"""The gateway publisher against real brokers (docs/mqtt.md): Mosquitto spawned per test on a free
loopback port, and amqtt embedded. The cloud is played by :class:`StandInCloud` (a paho subscriber
that stores readings deduplicated on reading_id and acks them) until the cloud exists.
"""

from __future__ import annotations

import asyncio
import os
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from device_drivers.model import DeviceIdentity, DeviceKind, GlucoseReading
from gateway import contract as c
from gateway.mqtt import MqttPublisher
from gateway.mqtt_settings import MqttSettings
from gateway.outbox import SqliteOutbox, rows_on_disk
from tests.brokers import Amqtt, Mosquitto, Pki, TlsFiles, make_test_pki
from tests.integration.cloud_standin import StandInCloud
from tests.integration.slow_link import SlowLink

pytestmark = pytest.mark.broker

GW = "gw-it-0001"
T0 = datetime(2026, 3, 1, 7, 30, tzinfo=UTC)
CHILD = Path(__file__).with_name("publisher_child.py")


def readings(start: int, count: int, device: int = 1) -> list[c.ReadingMessage]:
    identity = DeviceIdentity(
        f"C0:00:00:00:01:{device:02X}", DeviceKind.GLUCOSE_METER, system_id=f"{device:016x}"
    )
    return [
        c.from_reading(
            GlucoseReading(
                identity,
                seq,
                datetime(2026, 3, 1, 8, 0) + timedelta(seconds=seq),
                T0 + timedelta(seconds=seq),
                T0 + timedelta(seconds=seq),
                6.0,
                0.006,
                "mol/L",
            ),
            "p-1",
        )
        for seq in range(start, start + count)
    ]


def ids(messages: list[c.ReadingMessage]) -> set[str]:
    return {m.reading_id for m in messages}


def fast(**overrides: object) -> MqttSettings:
    base: dict[str, object] = {
        "reconnect_min_s": 1,
        "reconnect_max_s": 1,
        "ack_timeout_s": 2.0,
        "keepalive_s": 5,
    }
    return MqttSettings(**{**base, **overrides})


@pytest.fixture
def cloud(mosquitto: Mosquitto) -> Iterator[StandInCloud]:
    standin = StandInCloud("127.0.0.1", mosquitto.port).start()
    yield standin
    standin.stop()


@pytest.fixture
def outbox(tmp_path: Path) -> Iterator[SqliteOutbox]:
    box = SqliteOutbox(tmp_path / "outbox.db")
    yield box
    box.close()


def publish_retained_config(port: int, config: c.ConfigMessage) -> None:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=MQTTProtocolVersion.MQTTv5)
    client.connect("127.0.0.1", port)
    client.loop_start()
    client.publish(
        c.topic(GW, c.Channel.CONFIG), c.encode(config), qos=1, retain=True
    ).wait_for_publish(5)
    client.disconnect()
    client.loop_stop()


async def test_normal_flow_delivers_everything_once_and_empties_the_outbox(
    mosquitto: Mosquitto, cloud: StandInCloud, outbox: SqliteOutbox
) -> None:
    config = c.ConfigMessage(
        schema_version=1,
        gateway_id=GW,
        version=3,
        issued_at=T0,
        devices=(
            c.DeviceConfig(kind="glucose_meter", system_id="0000000000000001", person_ref="p-1"),
        ),
    )
    publish_retained_config(mosquitto.port, config)
    configs: list[c.ConfigMessage] = []
    first = readings(0, 500)
    outbox.add(first)
    publisher = MqttPublisher(
        fast(port=mosquitto.port, batch_max_readings=50), outbox, GW, on_config=configs.append
    )
    await publisher.start()
    try:
        assert await publisher.wait_connected(10)
        later = readings(500, 30)

        def sync_from_another_thread() -> None:  # like a supervisor in a worker thread
            outbox.add(later)
            publisher.notify()

        await asyncio.to_thread(sync_from_another_thread)
        assert await publisher.wait_idle(15)
        assert await until(cloud, lambda s: len(s.stored) == 530, 5)
        assert set(cloud.stored) == ids(first) | ids(later)
        assert cloud.duplicate_deliveries == 0
        assert cloud.envelopes >= 530 // 50
        assert publisher.stats.readings_acked == 530
        assert configs == [config]  # the retained config reached the gateway
        assert await until(cloud, lambda s: any(m.state == "online" for m in s.statuses), 5)
        assert not cloud.bad
    finally:
        await publisher.stop()
    assert await until(cloud, lambda s: s.statuses[-1].state == "offline", 5)


async def test_rejections_bad_messages_status_and_events(
    mosquitto: Mosquitto, outbox: SqliteOutbox
) -> None:
    """The cloud refuses one reading; garbage arrives on the down topics; the gateway keeps
    going, sets the refused reading aside, and reports status and events."""
    refused = readings(0, 1)[0].reading_id
    cloud = StandInCloud(
        "127.0.0.1",
        mosquitto.port,
        reject=lambda r: "unsupported_kind" if r.reading_id == refused else None,
    ).start()
    diagnostics = (c.DeviceDiagnostics(device_key="sysid:1", kind="glucose_meter", battery_pct=55),)
    outbox.add(readings(0, 20))
    publisher = MqttPublisher(
        fast(port=mosquitto.port), outbox, GW, diagnostics=lambda: diagnostics, software_version="t"
    )
    await publisher.start()
    try:
        assert await publisher.wait_connected(10)
        for channel in (c.Channel.ACKS, c.Channel.CONFIG):
            cloud.client.publish(c.topic(GW, channel), b'{"schema_version": 1, "oops"', qos=1)
        assert await publisher.wait_idle(15), publisher.stats
        assert len(cloud.stored) == 19
        assert outbox.rejected_readings()[0].reading_id == refused
        assert outbox.stats().rejected == 1
        assert publisher.stats.readings_rejected == 1
        assert await until(cloud, lambda s: s.statuses and s.statuses[-1].devices == diagnostics, 5)
        assert cloud.statuses[-1].software_version == "t"
        await asyncio.sleep(0.2)
        assert publisher.stats.bad_messages == 2
        event = c.EventMessage(
            schema_version=1,
            gateway_id=GW,
            event_id="e-1",
            occurred_at=T0,
            type="urgent_reading",
            severity="critical",
        )
        await publisher.publish_event(event)
        assert await until(cloud, lambda s: s.events == [event], 5)
        await publisher.publish_status()
        assert await until(
            cloud,
            lambda s: s.statuses[-1].outbox is not None and s.statuses[-1].outbox.rejected == 1,
            5,
        )
    finally:
        await publisher.stop()
        cloud.stop()


async def test_an_urgent_reading_goes_out_at_once_even_when_the_bulk_window_is_full(
    mosquitto: Mosquitto, outbox: SqliteOutbox
) -> None:
    cloud = StandInCloud("127.0.0.1", mosquitto.port, acking=False).start()
    outbox.add(readings(0, 2_000))
    settings = fast(
        port=mosquitto.port, batch_max_readings=20, max_unacked_readings=100, ack_timeout_s=60
    )
    publisher = MqttPublisher(settings, outbox, GW)
    await publisher.start()
    try:
        assert await until(cloud, lambda s: len(s.stored) >= 100, 10)
        await asyncio.sleep(0.3)
        assert len(cloud.stored) == 100  # the bulk waits for acks that do not come
        urgent_id, latency = await send_urgent(publisher, outbox, cloud, 5)
        assert latency < 1.0
        assert cloud.stored[urgent_id].urgent
        assert publisher.stats.urgent_messages == 1
    finally:
        await publisher.stop()
        cloud.stop()


@pytest.mark.parametrize("uplink_queue_s", [0.5, 60.0], ids=["paced", "unpaced-control"])
async def test_on_a_slow_uplink_an_urgent_reading_waits_for_the_pacers_queue_not_the_backlog(
    mosquitto: Mosquitto, outbox: SqliteOutbox, uplink_queue_s: float
) -> None:
    """2,000 bulk readings (~1.1 MB, ~4.3 s of a 2 Mbit/s uplink), then an urgent one. Paced
    (0.5 s of link ahead of it) it overtakes the backlog in about that; the control, a pacer
    that lets a minute of link out, shows the emulated link really queues: it waits for most
    of the backlog. The link stays full either way."""
    link_rate = 250_000  # bytes/s
    outbox.add(readings(0, 2_000))
    cloud = StandInCloud("127.0.0.1", mosquitto.port).start()
    with SlowLink(mosquitto.port, link_rate) as link:
        settings = fast(port=link.port, ack_timeout_s=60, uplink_queue_s=uplink_queue_s)
        publisher = MqttPublisher(settings, outbox, GW)
        started = time.monotonic()
        await publisher.start()
        try:
            # the pacer has measured the link by then (the control has let the backlog out)
            assert await until(cloud, lambda s: len(s.stored) >= 300, 10)
            _, latency = await send_urgent(publisher, outbox, cloud, 30)
            bulk_before_it = len(cloud.stored) - 1
            assert await publisher.wait_idle(30), publisher.stats
            elapsed = time.monotonic() - started
        finally:
            await publisher.stop()
            cloud.stop()
        upstream = link.upstream_bytes
    assert len(cloud.stored) == 2_001
    assert upstream / elapsed > 0.7 * link_rate  # the link was kept busy
    if uplink_queue_s < 1:
        assert latency < 1.2, latency
        assert bulk_before_it < 1_000  # it overtook the backlog
    else:
        assert latency > 2.0, latency
        assert bulk_before_it > 1_500


@pytest.mark.parametrize("receive_max", [10, 0], ids=["receive-maximum-10", "none-control"])
async def test_the_brokers_receive_maximum_bounds_the_unacknowledged_publishes(
    tmp_path: Path, outbox: SqliteOutbox, receive_max: int
) -> None:
    """MQTT 5: a client must not have more unacknowledged QoS 1 PUBLISHes than the Receive
    Maximum of the broker's CONNACK (HiveMQ disconnects one that does). PUBACKs come back 0.2 s
    late through the emulated link, so the publisher fills whatever window it allows itself;
    the link counts the PUBLISHes not yet PUBACKed. The control (no Receive Maximum) shows the
    window is otherwise the 64 of inflight_messages. An urgent reading still goes out at once."""
    broker = Mosquitto(tmp_path / "mosquitto", max_inflight=receive_max)
    broker.start()
    cloud = StandInCloud("127.0.0.1", broker.port).start()
    outbox.add(readings(0, 1_000))
    with SlowLink(broker.port, downstream_delay_s=0.2) as link:
        publisher = MqttPublisher(fast(port=link.port, batch_max_readings=10), outbox, GW)
        await publisher.start()
        try:
            assert await until(cloud, lambda s: len(s.stored) >= 100, 10)
            _, latency = await send_urgent(publisher, outbox, cloud, 5)
            assert await publisher.wait_idle(30), publisher.stats
        finally:
            await publisher.stop()
            cloud.stop()
            broker.stop()
    assert len(cloud.stored) == 1_001
    assert cloud.duplicate_deliveries == 0
    assert latency < 1.0  # a round trip of 0.2 s, not the backlog
    if receive_max:
        assert publisher.stats.receive_maximum == receive_max
        assert 0 < link.peak_unacked_publishes <= receive_max
    else:
        assert publisher.stats.receive_maximum is None
        assert link.peak_unacked_publishes > 32


async def test_broker_down_for_a_while_then_back_loses_nothing(
    mosquitto: Mosquitto, outbox: SqliteOutbox
) -> None:
    cloud = StandInCloud("127.0.0.1", mosquitto.port).start()
    outbox.add(readings(0, 300))
    publisher = MqttPublisher(fast(port=mosquitto.port, batch_max_readings=10), outbox, GW)
    await publisher.start()
    try:
        assert await until(cloud, lambda s: len(s.stored) >= 50, 10)
        mosquitto.stop()
        await asyncio.sleep(0.5)
        assert not publisher.connected
        during = readings(300, 200)  # the meters keep syncing while the broker is away
        result = await asyncio.to_thread(outbox.add, during)
        assert len(result.added) == 200
        publisher.notify()
        await asyncio.sleep(1.0)
        mosquitto.start()  # same port
        assert await publisher.wait_connected(10)
        assert await publisher.wait_idle(20), publisher.stats
        assert await until(cloud, lambda s: len(s.stored) == 500, 5)
        assert set(cloud.stored) == ids(readings(0, 500))
        assert publisher.stats.disconnects >= 1
        assert mosquitto.starts == 2
    finally:
        await publisher.stop()
        cloud.stop()


async def test_a_broker_not_there_at_start_is_retried_with_backoff_until_it_is(
    tmp_path: Path, outbox: SqliteOutbox
) -> None:
    broker = Mosquitto(tmp_path / "late")  # a free port, nothing listening yet
    outbox.add(readings(0, 40))
    publisher = MqttPublisher(fast(port=broker.port, batch_max_readings=10), outbox, GW)
    await publisher.start()
    try:
        await asyncio.sleep(2.5)  # attempts at 0, 1 and 2 s (reconnect_min_s = max = 1)
        assert not publisher.connected
        assert 2 <= publisher.stats.connect_failures <= 4
        broker.start()
        cloud = StandInCloud("127.0.0.1", broker.port).start()
        try:
            assert await publisher.wait_connected(10)
            assert await publisher.wait_idle(20), publisher.stats
            assert set(cloud.stored) == ids(readings(0, 40))
        finally:
            cloud.stop()
    finally:
        await publisher.stop()
        broker.stop()


async def test_an_idle_connection_is_kept_alive_past_the_brokers_timeout(
    mosquitto: Mosquitto, outbox: SqliteOutbox
) -> None:
    # Mosquitto drops a client silent for 1.5 keepalives: paho's PINGREQs must go out from the
    # loop (loop_misc every tick) for the connection to outlive that
    publisher = MqttPublisher(fast(port=mosquitto.port, keepalive_s=5), outbox, GW)
    await publisher.start()
    try:
        assert await publisher.wait_connected(10)
        await asyncio.sleep(13)  # Mosquitto checks every few seconds: 7.5 s late by up to ~5
        assert publisher.connected
        assert (publisher.stats.connects, publisher.stats.disconnects) == (1, 0)
    finally:
        await publisher.stop()


async def test_stop_returns_promptly_when_the_broker_never_answered(
    tmp_path: Path, outbox: SqliteOutbox
) -> None:
    broker = Mosquitto(tmp_path / "never")  # never started
    publisher = MqttPublisher(fast(port=broker.port), outbox, GW)
    await publisher.start()
    await asyncio.sleep(0.3)
    started = time.monotonic()
    await publisher.stop(timeout_s=2)
    assert time.monotonic() - started < 3
    assert not publisher.connected


async def test_a_lost_cloud_ack_is_replayed_without_a_duplicate_downstream(
    mosquitto: Mosquitto, outbox: SqliteOutbox
) -> None:
    cloud = StandInCloud("127.0.0.1", mosquitto.port, drop_acks=2).start()
    outbox.add(readings(0, 100))
    publisher = MqttPublisher(fast(port=mosquitto.port, batch_max_readings=25), outbox, GW)
    await publisher.start()
    try:
        assert await publisher.wait_idle(15), publisher.stats
        assert cloud.acks_dropped == 2
        assert cloud.duplicate_deliveries >= 25  # the unacked envelopes came again
        assert publisher.stats.readings_requeued >= 25
        # after dedupe on reading_id: every reading exactly once
        assert set(cloud.stored) == ids(readings(0, 100))
        assert len(cloud.stored) == 100
    finally:
        await publisher.stop()
        cloud.stop()


async def until(
    cloud: StandInCloud, predicate: Callable[[StandInCloud], bool], timeout_s: float
) -> bool:
    """Wait for the stand-in cloud without blocking the event loop the publisher runs on."""
    return await asyncio.to_thread(cloud.wait_for, predicate, timeout_s)


async def send_urgent(
    publisher: MqttPublisher, outbox: SqliteOutbox, cloud: StandInCloud, timeout_s: float
) -> tuple[str, float]:
    """Add an urgent reading and notify, as a sync does; its id and the seconds until the cloud
    stored it."""
    urgent = readings(9_000, 1)
    sent = time.monotonic()
    await asyncio.to_thread(outbox.add, urgent, urgent=True)
    publisher.notify(urgent=True)
    assert await until(cloud, lambda s: urgent[0].reading_id in s.stored, timeout_s)
    return urgent[0].reading_id, time.monotonic() - sent


def outbox_depth(path: Path) -> int:
    """Readings still in the file (acked ones leave it with their segment, gateway/outbox.py)."""
    return rows_on_disk(path)


def start_child(path: Path, port: int, batch: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, str(CHILD), str(path), "127.0.0.1", str(port), GW, str(batch)],
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])},
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    proc.stdout.close()  # the child prints nothing else
    assert line == b"started"
    return proc


@pytest.mark.slow
def test_gateway_killed_with_sigkill_mid_publish_and_restarted_loses_nothing(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    path = tmp_path / "gateway-outbox.db"
    total = readings(0, 6_000)
    with SqliteOutbox(path) as box:
        box.add(total)
    cloud = StandInCloud("127.0.0.1", mosquitto.port).start()
    child = start_child(path, mosquitto.port, batch=5)
    try:
        assert cloud.wait_for(lambda s: len(s.stored) >= 1_000, 20)
        child.send_signal(signal.SIGKILL)
        child.wait(5)
        delivered_before = len(cloud.stored)
        assert delivered_before < len(total), "the kill came too late to test anything"
        # the broker publishes the last will: the gateway is offline
        assert cloud.wait_for(lambda s: bool(s.statuses) and s.statuses[-1].state == "offline", 5)
        # nothing left the outbox without the cloud's ack; acked readings leave the file only
        # with their whole segment (20,000): killed before that, they are all still there
        assert outbox_depth(path) == len(total)
        child = start_child(path, mosquitto.port, batch=50)
        assert cloud.wait_for(lambda s: len(s.stored) == len(total), 30)
        # so the new process sent them again and the cloud acked them as duplicates (except those
        # whose acks, sent before the kill, waited at the broker for the session: applied first)
        assert sum(n - 1 for n in cloud.deliveries.values()) > 0
        deadline = time.monotonic() + 10
        while outbox_depth(path) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert outbox_depth(path) == 0
        assert set(cloud.stored) == ids(total)
        assert not cloud.bad
    finally:
        child.kill()
        child.wait(5)
        cloud.stop()


async def test_amqtt_as_the_broker_for_the_demo_path(
    amqtt_broker: Amqtt, outbox: SqliteOutbox
) -> None:
    cloud = StandInCloud("127.0.0.1", amqtt_broker.port, protocol=MQTTProtocolVersion.MQTTv311)
    await asyncio.to_thread(cloud.start)
    outbox.add(readings(0, 120))
    publisher = MqttPublisher(
        fast(port=amqtt_broker.port, protocol="mqtt311", batch_max_readings=20), outbox, GW
    )
    await publisher.start()
    try:
        assert await publisher.wait_idle(20), publisher.stats
        assert set(cloud.stored) == ids(readings(0, 120))
    finally:
        await publisher.stop()
        await asyncio.to_thread(cloud.stop)


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return make_test_pki(tmp_path / "pki")


@pytest.fixture
def tls_mosquitto(tmp_path: Path, pki: Pki) -> Iterator[Mosquitto]:
    broker = Mosquitto(
        tmp_path / "mosquitto-tls",
        tls=TlsFiles(pki.ca_file, pki.server_cert, pki.server_key, require_client_cert=True),
    )
    broker.start()
    yield broker
    broker.stop()


def client_tls(pki: Pki) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki.ca_file))
    context.load_cert_chain(str(pki.client_cert), str(pki.client_key))
    return context


async def test_tls_with_server_verification_and_a_client_certificate(
    tls_mosquitto: Mosquitto, pki: Pki, outbox: SqliteOutbox
) -> None:
    cloud = StandInCloud("127.0.0.1", tls_mosquitto.port, tls=client_tls(pki)).start()
    outbox.add(readings(0, 40))
    settings = fast(
        port=tls_mosquitto.port,
        tls=True,
        ca_file=pki.ca_file,
        cert_file=pki.client_cert,
        key_file=pki.client_key,
    )
    publisher = MqttPublisher(settings, outbox, GW)
    await publisher.start()
    try:
        assert await publisher.wait_idle(15), publisher.stats
        assert set(cloud.stored) == ids(readings(0, 40))
    finally:
        await publisher.stop()
        cloud.stop()


# paho 2.2 drops the socket of a failed TLS handshake without closing it (CPython closes it when
# it is collected, with a ResourceWarning); that is paho's, not ours.
@pytest.mark.filterwarnings(
    "ignore:Exception ignored in. <ssl.SSLSocket:pytest.PytestUnraisableExceptionWarning"
)
async def test_tls_with_the_wrong_ca_never_connects(
    tls_mosquitto: Mosquitto, pki: Pki, outbox: SqliteOutbox
) -> None:
    outbox.add(readings(0, 5))
    settings = fast(
        port=tls_mosquitto.port,
        tls=True,
        ca_file=pki.other_ca_file,
        cert_file=pki.client_cert,
        key_file=pki.client_key,
    )
    publisher = MqttPublisher(settings, outbox, GW)
    await publisher.start()
    try:
        assert not await publisher.wait_connected(2.5)
        assert publisher.stats.connect_failures >= 1
        assert publisher.stats.messages_published == 0
        assert outbox.depth() == 5
    finally:
        await publisher.stop()


ACL = """\
user cloud
topic readwrite anjia/v1/gw/#

pattern write anjia/v1/gw/%u/up/#
pattern read anjia/v1/gw/%u/down/#
"""


@pytest.fixture
def secured_mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    broker = Mosquitto(
        tmp_path / "mosquitto-acl",
        users={GW: "gw-secret", "gw-other": "other-secret", "cloud": "cloud-secret"},
        acl=ACL,
    )
    broker.start()
    yield broker
    broker.stop()


async def test_password_file_and_acl_confine_a_gateway_to_its_prefix(
    secured_mosquitto: Mosquitto, outbox: SqliteOutbox, tmp_path: Path
) -> None:
    port = secured_mosquitto.port
    cloud = StandInCloud("127.0.0.1", port, username="cloud", password="cloud-secret").start()
    outbox.add(readings(0, 30))
    good = MqttPublisher(fast(port=port, username=GW, password="gw-secret"), outbox, GW)
    await good.start()
    try:
        assert await good.wait_idle(15), good.stats
        assert set(cloud.stored) == ids(readings(0, 30))
    finally:
        await good.stop()
    # a wrong password is refused by the broker
    with SqliteOutbox(tmp_path / "other.db") as other_box:
        other_box.add(readings(100, 3))
        bad = MqttPublisher(fast(port=port, username=GW, password="wrong"), other_box, GW)
        await bad.start()
        try:
            assert not await bad.wait_connected(2)
            assert bad.stats.connect_failures >= 1
        finally:
            await bad.stop()
        # another gateway publishing into GW's prefix: the broker refuses it, the cloud sees nothing
        spoof_settings = fast(
            port=port, username="gw-other", password="other-secret", client_id="spoof"
        )
        spoof = MqttPublisher(spoof_settings, other_box, GW)
        await spoof.start()
        try:
            assert await spoof.wait_connected(5)
            await asyncio.sleep(1.0)
            assert spoof.stats.messages_published >= 1  # it tried
            assert not ids(readings(100, 3)) & set(cloud.stored)  # the broker kept it out
            assert spoof.stats.readings_acked == 0
            assert other_box.depth() == 3  # and nothing was lost on the gateway side
        finally:
            await spoof.stop()
    cloud.stop()
