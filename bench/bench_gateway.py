"""`make bench-gateway`: the gateway daemon's memory and CPU idle and during a 500-record sync,
the latency from a reading received from the meter to its PUBACK, and the outbox replay rate
beside a bare paho publisher (documented in bench/README.md).

1. Daemon (``anjia gateway run``, a real process): a simulated glucose meter with ``--records``
   records (``anjia sim run --transport tcp-server:...``, another process), Mosquitto (started
   here, tests/brokers.py configuration), and a cloud acker in its own process (the stand-in
   cloud of tests/integration/cloud_standin.py, which stores and acks). The daemon syncs the
   meter when it hears it (edge, outbox, publisher, acks). Its RSS (VmRSS/VmHWM) and CPU time
   (utime + stime) are sampled from /proc every 20 ms. The sync counts from the daemon's log line
   ``<address>: sync (...)`` to the moment the acker has stored every reading; the idle window
   (``--idle-seconds``) starts after that, once the outbox is empty.
2. Latency reading -> PUBACK, from the same run: each reading carries ``received_at``, the
   gateway's clock when the meter's notification arrived (stamped by the driver's inbox); the
   acker notes when each envelope arrives. Mosquitto forwards a QoS 1 PUBLISH to the subscriber
   and PUBACKs the publisher in the same pass, so the arrival is the PUBACK time to well under
   a millisecond, with no instrumentation inside the daemon. Urgent readings (sent at once, one
   per envelope) and bulk ones (batched) are reported apart.
3. Replay: ``--replay`` readings added to a fresh :class:`~gateway.outbox.SqliteOutbox`, then the
   real :class:`~gateway.mqtt.MqttPublisher` (default settings: envelopes of 100 readings, 64 in
   flight) drains it to Mosquitto while an acker process acks; timed until the outbox is empty
   (the cloud acked every reading), median of ``--replay-repeat`` runs. The acker does what the
   cloud's ingest worker does for an ack and no more: it decodes the reading ids and acks once per
   gateway per batch (cloud/ingest/records.py, the cloud's ``batch_interval_ms`` and
   ``batch_size`` defaults), so that the replay measures the gateway and not a Python stand-in's
   decoding. Beside it, a bare paho client (QoS 1, the same in-flight window) publishes the same
   envelopes to the same broker with the same acker subscribed. Also reported: one replay
   against the full stand-in cloud of the tests (decodes every reading, acks every envelope),
   and one with an unacked window as large as the backlog (the pace to the broker).

Prints a table and writes bench/results/gateway.json.

    .venv/bin/python bench/bench_gateway.py [--records 500] [--replay 100000] [--idle-seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import dataclasses
import multiprocessing as mp
import os
import platform
import pstats
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from importlib.metadata import version
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: the repository's packages and tests/
    sys.path.insert(0, str(ROOT))

import msgspec  # noqa: E402
import paho.mqtt.client as mqtt  # noqa: E402
from bench_common import (  # noqa: E402
    commit_of_tree,
    log,
    machine_info,
    percentile,
    uncommitted_sources,
    write_results,
)
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion  # noqa: E402

from device_drivers.model import DeviceIdentity, DeviceKind, GlucoseContext, GlucoseReading  # noqa: E402
from gateway import contract as c  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "gateway.json"
GW = "gw-bench-0001"
BARE_GW = "gw-bench-bare"  # the bare publisher's topics (its acks reach no gateway session)
METER_ADDRESS = "F0:5A:4A:00:00:01"
T0 = datetime(2026, 3, 1, 7, 30, tzinfo=UTC)
PAGE = os.sysconf("SC_PAGE_SIZE")
TICKS = os.sysconf("SC_CLK_TCK")
RSS_GOAL_MB = 120.0
REPLAY_GOAL_RATIO = 0.5
SMALL_ENVELOPE_BYTES = 2048  # an urgent reading travels alone: its envelope is small
MEASURED_PACKAGES = ("gateway", "edge", "device_drivers", "firmware_sim")


# --- the cloud acker (a child process) ---------------------------------------------------------
def acker_process(
    port: int, ready: Any, stop: Any, stored: Any, track: Any, results: Any, envelopes: Any
) -> None:
    """The stand-in cloud (stores, acks), noting when each envelope arrives and, per reading,
    the gateway's ``received_at`` and urgency."""
    from tests.integration.cloud_standin import StandInCloud

    cloud = StandInCloud("127.0.0.1", port)
    arrivals: list[tuple[float, float, bool]] = []  # (arrived, received_at, urgent)
    handle = cloud._on_message  # the stand-in's own handler: decode, store, ack

    def on_message(client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        arrived = time.time()
        handle(client, userdata, message)
        envelopes.value += 1
        mode = track.value  # 0: nothing, 1: every envelope, 2: one-reading envelopes only
        if mode == 2 and len(message.payload) > SMALL_ENVELOPE_BYTES:
            return
        if mode and message.topic.endswith("/up/readings"):
            try:
                envelope = c.decode_envelope(message.payload)
            except c.ContractError:
                return
            for reading in envelope.readings:
                received = reading.received_at
                arrivals.append(
                    (arrived, received.timestamp() if received else arrived, reading.urgent)
                )
            stored.value = len(cloud.stored)

    cloud.client.on_message = on_message
    cloud.start(30)
    ready.set()
    while not stop.wait(0.05):
        stored.value = len(cloud.stored)
    cloud.stop()
    results.put(
        {
            "stored": len(cloud.stored),
            "envelopes": cloud.envelopes,
            "acks_sent": cloud.acks_sent,
            "duplicate_deliveries": cloud.duplicate_deliveries,
            "arrivals": arrivals,
        }
    )


class _LeanReading(msgspec.Struct):
    reading_id: str
    urgent: bool = False
    received_at: str | None = None


class _LeanEnvelope(msgspec.Struct):
    message_id: str
    gateway_id: str
    readings: list[_LeanReading]


def lean_acker_process(
    port: int, ready: Any, stop: Any, stored: Any, track: Any, results: Any, envelopes: Any
) -> None:
    """A cloud stand-in that decodes only what an ack needs (message and reading ids), dedupes
    in a set and acks the way the cloud's ingest worker does (cloud/ingest/records.py): one ack
    per gateway per batch, a batch closing ``batch_interval_ms`` after its first envelope or at
    ``batch_size`` envelopes (the cloud's defaults), at most ``MAX_IDS_PER_ACK`` ids per list.
    The least any cloud must do, so that the replay measures the gateway and not the stand-in's
    full decoding (which alone caps at ~100,000 readings/s here)."""
    from cloud.ingest.records import MAX_IDS_PER_ACK
    from cloud.settings import IngestMqttSettings

    cloud = IngestMqttSettings()
    seen: set[str] = set()
    duplicates = 0
    arrivals: list[tuple[float, float, bool]] = []
    decoder = msgspec.json.Decoder(_LeanEnvelope)
    lock = threading.Lock()
    batch: dict[str, tuple[str, list[str], list[str]]] = {}  # gateway -> message, new, again
    batch_started: float | None = None
    batch_envelopes = 0

    def flush(client: mqtt.Client) -> None:
        nonlocal batch, batch_started, batch_envelopes
        with lock:
            closing, batch, batch_started, batch_envelopes = batch, {}, None, 0
        for gateway_id, (message_id, accepted, again) in closing.items():
            while accepted or again:
                ack = c.AckMessage(
                    schema_version=c.SCHEMA_VERSION,
                    gateway_id=gateway_id,
                    message_id=message_id,
                    acked_at=datetime.now(UTC),
                    accepted=tuple(accepted[:MAX_IDS_PER_ACK]),
                    duplicates=tuple(again[:MAX_IDS_PER_ACK]),
                )
                client.publish(c.topic(gateway_id, c.Channel.ACKS), c.encode(ack), qos=1)
                accepted, again = accepted[MAX_IDS_PER_ACK:], again[MAX_IDS_PER_ACK:]

    def on_message(client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        nonlocal duplicates, batch_started, batch_envelopes
        arrived = time.time()
        envelope = decoder.decode(message.payload)
        with lock:
            _, accepted, again = batch.get(envelope.gateway_id) or ("", [], [])
            for r in envelope.readings:
                (again if r.reading_id in seen else accepted).append(r.reading_id)
                if r.reading_id in seen:
                    duplicates += 1
                seen.add(r.reading_id)
            batch[envelope.gateway_id] = (envelope.message_id, accepted, again)
            batch_envelopes += 1
            if batch_started is None:
                batch_started = time.monotonic()
            full = batch_envelopes >= cloud.batch_size
        envelopes.value += 1
        if track.value:
            for r in envelope.readings:
                if r.urgent and r.received_at:
                    received = datetime.fromisoformat(r.received_at).timestamp()
                    arrivals.append((arrived, received, True))
        if full:
            flush(client)

    def on_connect(client: mqtt.Client, *_: object) -> None:
        client.subscribe([(c.cloud_filter(c.Channel.READINGS), 1)])

    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id="bench-lean-acker",
        protocol=MQTTProtocolVersion.MQTTv5,
    )
    client.on_message = on_message
    client.on_connect = on_connect
    client.on_subscribe = lambda *_: ready.set()
    client.connect("127.0.0.1", port)
    client.loop_start()
    interval = cloud.batch_interval_ms / 1000
    while not stop.wait(0.002):
        started = batch_started
        if started is not None and time.monotonic() - started >= interval:
            flush(client)
        stored.value = len(seen)
    client.disconnect()
    client.loop_stop()
    results.put(
        {
            "stored": len(seen),
            "envelopes": envelopes.value,
            "acks_sent": envelopes.value,
            "duplicate_deliveries": duplicates,
            "arrivals": arrivals,
        }
    )


@dataclass
class Acker:
    port: int
    lean: bool = False
    ctx: Any = field(default_factory=lambda: mp.get_context("spawn"))

    def __post_init__(self) -> None:
        self.ready, self.stop_event = self.ctx.Event(), self.ctx.Event()
        self.stored = self.ctx.Value("q", 0)
        self.envelopes = self.ctx.Value("q", 0)
        self.track = self.ctx.Value("i", 1)
        self.results = self.ctx.Queue()
        self.proc = self.ctx.Process(
            target=lean_acker_process if self.lean else acker_process,
            args=(
                self.port,
                self.ready,
                self.stop_event,
                self.stored,
                self.track,
                self.results,
                self.envelopes,
            ),
        )

    def start(self) -> Acker:
        self.proc.start()
        deadline = time.monotonic() + 60
        while not self.ready.wait(0.1):
            if not self.proc.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the cloud acker did not subscribe")
        return self

    def finish(self) -> dict[str, Any]:
        self.stop_event.set()
        out: dict[str, Any] = self.results.get(timeout=60)
        self.proc.join(30)
        return out


# --- /proc sampling ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Sample:
    at: float  # time.monotonic()
    rss_mb: float
    hwm_mb: float
    cpu_s: float


def sample(pid: int) -> Sample | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    after_name = stat.rsplit(")", 1)[1].split()
    utime, stime = int(after_name[11]), int(after_name[12])
    return Sample(
        time.monotonic(),
        int(fields["VmRSS"].split()[0]) / 1024,
        int(fields["VmHWM"].split()[0]) / 1024,
        (utime + stime) / TICKS,
    )


class Sampler(threading.Thread):
    """Samples a process every ``interval_s`` and notes when ``marker`` first shows in a log."""

    def __init__(self, pid: int, log_file: Path, marker: str, interval_s: float = 0.02) -> None:
        super().__init__(daemon=True)
        self.pid, self.log_file, self.marker, self.interval_s = pid, log_file, marker, interval_s
        self.samples: list[Sample] = []
        self.marked: Sample | None = None
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.is_set():
            got = sample(self.pid)
            if got is None:
                return
            self.samples.append(got)
            if self.marked is None and self.marker in self.log_file.read_text(errors="replace"):
                self.marked = got
            time.sleep(self.interval_s)

    def latest(self) -> Sample:
        return self.samples[-1]


# --- 1 + 2: the daemon syncing a simulated meter -----------------------------------------------
def gateway_config(path: Path, sim_port: int, mqtt_port: int, outbox: Path) -> Path:
    path.write_text(
        f"""gateway_id = "{GW}"

[ble]
link = "bumble:tcp-client:127.0.0.1:{sim_port}"
min_sync_gap_s = 3600

[mqtt]
port = {mqtt_port}

[outbox]
path = "{outbox}"

[[devices]]
kind = "glucose_meter"
address = "{METER_ADDRESS}"
person = "p-bench"
""",
        encoding="utf-8",
    )
    return path


def wait_for(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.02)


def run_daemon(workdir: Path, port: int, args: argparse.Namespace) -> dict[str, Any]:
    from tests.integration.gateway.processes import (
        await_simulator,
        spawn_simulator,
        start_gateway,
    )

    sim_out = workdir / "sim.out"
    sim, sim_port = spawn_simulator(
        [
            *("--device", "glucose", "--records", str(args.records)),
            *("--scenario", args.scenario, "--seed", "4"),
        ],
        sim_out,
    )
    acker: Acker | None = None
    daemon: subprocess.Popen[bytes] | None = None
    try:
        await_simulator(sim_out, sim_port, timeout_s=30)
        acker = Acker(port).start()
        config = gateway_config(workdir / "gateway.toml", sim_port, port, workdir / "outbox.db")
        daemon_log = workdir / "gateway.log"
        daemon = start_gateway(config, daemon_log)
        started = time.monotonic()
        sampler = Sampler(daemon.pid, daemon_log, f"{METER_ADDRESS}: sync (")
        sampler.start()
        stored = acker.stored
        wait_for(
            lambda: stored.value >= args.records or daemon.poll() is not None,
            120,
            f"{args.records} readings at the cloud",
        )
        if daemon.poll() is not None:
            raise RuntimeError(f"the daemon exited: {daemon_log.read_text()[-2000:]}")
        synced = sampler.latest()
        sync_start = sampler.marked
        if sync_start is None:
            raise RuntimeError("no sync line in the daemon's log")
        log(
            f"  synced {stored.value} readings, {synced.at - sync_start.at:.2f} s after the "
            f"sync began ({sync_start.at - started:.2f} s after the daemon started)"
        )
        from gateway.outbox import SqliteOutbox

        def outbox_empty() -> bool:
            with SqliteOutbox(workdir / "outbox.db") as outbox:
                return outbox.depth() == 0

        wait_for(outbox_empty, 30, "the outbox to empty")
        time.sleep(1.0)  # settle: the last acks, a status message
        idle_from = sampler.latest()
        log(f"  idle for {args.idle_seconds:.0f} s ...")
        time.sleep(args.idle_seconds)
        idle_to = sampler.latest()
        sampler.halt.set()
        sampler.join(2)
        daemon.send_signal(signal.SIGTERM)
        exit_code = daemon.wait(30)
        cloud = acker.finish()
        acker = None
    finally:
        if daemon is not None and daemon.poll() is None:
            daemon.kill()
            daemon.wait(10)
        if acker is not None:
            acker.proc.kill()
        sim.terminate()
        try:
            sim.wait(10)
        except subprocess.TimeoutExpired:
            sim.kill()
    sync_samples = [s for s in sampler.samples if sync_start.at <= s.at <= synced.at]
    bulk = sorted((a - r) * 1000 for a, r, urgent in cloud["arrivals"] if not urgent)
    urgent = sorted((a - r) * 1000 for a, r, u in cloud["arrivals"] if u)
    both = sorted(bulk + urgent)
    return {
        "records": args.records,
        "scenario": args.scenario,
        "readings_stored_by_cloud": cloud["stored"],
        "envelopes": cloud["envelopes"],
        "duplicate_deliveries": cloud["duplicate_deliveries"],
        "daemon_exit_code": exit_code,
        "start_to_sync_s": round(sync_start.at - started, 3),
        "startup_cpu_s": round(sync_start.cpu_s, 3),
        "startup_rss_mb": round(sync_start.rss_mb, 1),
        "sync_s": round(synced.at - sync_start.at, 3),
        "cpu_s_sync": round(synced.cpu_s - sync_start.cpu_s, 3),
        "peak_rss_mb_sync": round(max([s.rss_mb for s in sync_samples] + [synced.hwm_mb]), 1),
        "idle_seconds": round(idle_to.at - idle_from.at, 2),
        "idle_cpu_pct": round(
            100 * (idle_to.cpu_s - idle_from.cpu_s) / (idle_to.at - idle_from.at), 2
        ),
        "idle_rss_mb": round(idle_to.rss_mb, 1),
        "peak_rss_mb_lifetime": round(idle_to.hwm_mb, 1),
        "latency_readings": len(both),
        "reading_to_puback_ms_p50": round(percentile(both, 50), 1),
        "reading_to_puback_ms_p99": round(percentile(both, 99), 1),
        "bulk_readings": len(bulk),
        "bulk_reading_to_puback_ms_p50": round(percentile(bulk, 50), 1),
        "bulk_reading_to_puback_ms_p99": round(percentile(bulk, 99), 1),
        "urgent_readings": len(urgent),
        "urgent_reading_to_puback_ms_p50": round(percentile(urgent, 50), 1) if urgent else None,
        "urgent_reading_to_puback_ms_p99": round(percentile(urgent, 99), 1) if urgent else None,
    }


# --- 3: outbox replay beside a bare publisher --------------------------------------------------
def replay_readings(count: int) -> list[c.ReadingMessage]:
    meters = [
        DeviceIdentity(
            f"C0:B1:00:00:00:{m:02X}",
            DeviceKind.GLUCOSE_METER,
            system_id=f"{0xB1 << 56 | m:016x}",
            serial_number=f"GMR{m:07d}",
            model_number="GM-1",
            manufacturer="Anjia Sim",
        )
        for m in range(4)
    ]
    out = []
    for seq in range(count):
        device_time = datetime(2026, 3, 1, 8, 0) + timedelta(minutes=seq)
        measured = device_time.replace(tzinfo=UTC) - timedelta(hours=8)
        value = 4.0 + (seq % 60) / 10
        out.append(
            c.from_reading(
                GlucoseReading(
                    meters[seq % 4],
                    seq,
                    device_time,
                    measured,
                    measured + timedelta(seconds=30),
                    value,
                    value / 1000.0,
                    "mol/L",
                    sample_type=1,
                    sample_location=1,
                    context=GlucoseContext(meal=1 + seq % 3),
                ),
                "p-bench",
            )
        )
    return out


def fill_outbox(path: Path, readings: Sequence[c.ReadingMessage], chunk: int = 1000) -> float:
    """Add the readings in syncs of ``chunk``; returns readings/s of ``SqliteOutbox.add``."""
    from gateway.outbox import SqliteOutbox

    started = time.perf_counter()
    with SqliteOutbox(path) as outbox:
        for i in range(0, len(readings), chunk):
            outbox.add(readings[i : i + chunk])
        assert outbox.depth() == len(readings)
    return len(readings) / (time.perf_counter() - started)


def urgent_reading(n: int) -> c.ReadingMessage:
    """A level-2 hypoglycaemia just received (``received_at`` now), from a fifth meter."""
    meter = DeviceIdentity(
        "C0:B1:00:00:01:00", DeviceKind.GLUCOSE_METER, system_id=f"{0xB2 << 56:016x}"
    )
    now = datetime.now(UTC)
    device_time = (now + timedelta(hours=8)).replace(tzinfo=None)
    return c.from_reading(
        GlucoseReading(
            meter, n, device_time, now, now, 2.6, 0.0026, "mol/L", sample_type=1, sample_location=1
        ),
        "p-bench",
        urgent=True,
    )


async def replay(
    port: int,
    outbox_path: Path,
    expected: int,
    urgent_every_s: float,
    gateway_id: str,
    max_unacked: int | None = None,
) -> tuple[float, int, dict[str, Any]]:
    """The real publisher drains the outbox; seconds from start() to an empty outbox. Meanwhile
    an urgent reading is added every ``urgent_every_s`` (as a sync thread would: outbox.add,
    then notify): they must overtake the bulk backlog. Also noted: the moment every bulk
    reading had been published and PUBACKed by the broker (``to_broker_s``)."""
    from gateway.mqtt import MqttPublisher
    from gateway.mqtt_settings import MqttSettings
    from gateway.outbox import SqliteOutbox

    settings = MqttSettings(port=port)
    if max_unacked is not None:
        settings = settings.model_copy(update={"max_unacked_readings": max_unacked})
    urgent = 0
    with SqliteOutbox(outbox_path) as outbox:
        assert outbox.depth() == expected
        publisher = MqttPublisher(settings, outbox, gateway_id)
        done = asyncio.Event()

        async def urgent_probe() -> None:
            nonlocal urgent
            while not done.is_set():
                await asyncio.sleep(urgent_every_s)
                urgent += 1  # before it is stored: the replay is over when it is acked too
                await asyncio.to_thread(outbox.add, [urgent_reading(urgent - 1)], urgent=True)
                publisher.notify(urgent=True)

        started = time.perf_counter()
        to_broker_s: float | None = None

        async def watch_pubacks() -> None:
            nonlocal to_broker_s
            stats = publisher.stats
            while to_broker_s is None:
                if (
                    stats.readings_published >= expected
                    and stats.pubacks >= stats.messages_published
                ):
                    to_broker_s = time.perf_counter() - started
                    return
                await asyncio.sleep(0.002)

        await publisher.start()
        probe = asyncio.create_task(urgent_probe()) if urgent_every_s > 0 else None
        pubacks = asyncio.create_task(watch_pubacks())
        try:
            # over when every reading is acked: read from the publisher's counters every ms
            # (outbox.depth() takes the outbox lock: polled from the loop, it held the loop
            # up while the outbox thread read, and a coarser poll added up to its period)
            counts = publisher.stats
            last_print = time.monotonic()
            while counts.readings_acked + counts.readings_rejected < expected + urgent:
                await asyncio.sleep(0.001)
                if time.monotonic() - last_print > 2:
                    log(f"    replay: {counts.readings_acked:,}/{expected:,} acked")
                    last_print = time.monotonic()
            seconds = time.perf_counter() - started
            done.set()
            if probe is not None:
                await probe
            for _ in range(1000):  # the last urgent reading
                if outbox.depth() == 0:
                    break
                await asyncio.sleep(0.01)
            if outbox.depth():
                raise RuntimeError(f"{outbox.depth()} readings were never acked")
        finally:
            done.set()
            pubacks.cancel()
            await publisher.stop()
        stats = dataclasses.asdict(publisher.stats)
    return (
        seconds,
        urgent,
        {
            "batch_max_readings": settings.batch_max_readings,
            "inflight_messages": settings.inflight_messages,
            "max_unacked_readings": settings.max_unacked_readings,
            "to_broker_s": None if to_broker_s is None else round(to_broker_s, 3),
            "publisher_stats": stats,
        },
    )


def envelopes_like_the_publisher(
    readings: Sequence[c.ReadingMessage], per_envelope: int
) -> list[bytes]:
    encoded = [c.encode_reading(r) for r in readings]
    return [
        c.encode_envelope(f"m-bare-{i}", BARE_GW, T0, encoded[i : i + per_envelope])
        for i in range(0, len(encoded), per_envelope)
    ]


def bare_publish(port: int, payloads: Sequence[bytes], inflight: int) -> float:
    """A bare paho client publishes ``payloads`` at QoS 1 with ``inflight`` in flight; seconds
    from the first publish call to the last PUBACK."""
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id="bench-bare-pub", protocol=MQTTProtocolVersion.MQTTv5
    )
    client.max_inflight_messages_set(inflight)
    client.max_queued_messages_set(0)
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        name = c.topic(BARE_GW, c.Channel.READINGS)
        started = time.perf_counter()
        infos = [client.publish(name, payload, qos=1) for payload in payloads]
        for info in infos:
            info.wait_for_publish(120)
            if not info.is_published():
                raise RuntimeError("the broker did not acknowledge every bare publish")
        return time.perf_counter() - started
    finally:
        client.disconnect()
        client.loop_stop()


def _at_least(counter: Any, target: int) -> bool:
    return bool(counter.value >= target)


def replay_once(
    workdir: Path,
    port: int,
    args: argparse.Namespace,
    readings: Sequence[c.ReadingMessage],
    *,
    lean: bool,
    tag: str,
    max_unacked: int | None = None,
) -> tuple[Acker, float, float, int, dict[str, Any]]:
    """Fill a fresh outbox, start an acker (``lean`` or the full stand-in), replay; returns the
    running acker (to finish), add rate, replay seconds, urgent readings, publisher details.
    ``tag`` names the outbox file and the MQTT session (each replay has a session of its own)."""
    outbox_path = workdir / f"replay-outbox{tag}.db"
    add_rate = fill_outbox(outbox_path, readings)
    log(f"  outbox filled: {args.replay:,} readings ({add_rate:,.0f} readings/s through add)")
    acker = Acker(port, lean=lean).start()
    acker.track.value = 2  # the urgent readings only: decoding every bulk envelope twice costs
    try:
        if args.profile:
            profiler = cProfile.Profile()
            profiler.enable()
        # a gateway (topics, session) of its own: the broker queues every ack for each
        # offline session subscribed to the ack topic, so sharing one would slow the broker
        # down run after run and let old acks drain this outbox
        gateway_id = f"gw-bench-replay{tag}"
        seconds, urgent, publisher = asyncio.run(
            replay(port, outbox_path, args.replay, args.urgent_every_s, gateway_id, max_unacked)
        )
        if args.profile:
            profiler.disable()
            stats = pstats.Stats(profiler, stream=sys.stdout)
            stats.sort_stats("tottime").print_stats(30)
        wait_for(lambda: acker.stored.value >= args.replay, 60, "the acker to store every reading")
    except BaseException:
        acker.finish()
        raise
    finally:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{outbox_path}{suffix}").unlink(missing_ok=True)
    which = "lean acker" if lean else "stand-in cloud acker"
    log(f"  replay ({which}): {args.replay / seconds:,.0f} readings/s ({seconds:.2f} s)")
    return acker, add_rate, seconds, urgent, publisher


def run_replay(workdir: Path, port: int, args: argparse.Namespace) -> dict[str, Any]:
    """The replay ``--replay-repeat`` times against the lean acker (acks batched as the cloud's
    ingest worker batches them: the headline, median), the bare publisher ``--bare-repeat``
    times with that acker subscribed, then one replay against the full stand-in cloud (decodes
    every reading, acks every envelope) and one with an unacked window as large as the backlog
    (the pace to the broker when the publisher never waits for the cloud)."""
    from gateway.mqtt_settings import MqttSettings

    defaults = MqttSettings()
    readings = replay_readings(args.replay)
    runs: list[float] = []
    urgent_ms: list[float] = []
    urgent_total = 0
    publishers: list[dict[str, Any]] = []
    add_rate = 0.0
    for n in range(args.replay_repeat):
        last = n == args.replay_repeat - 1
        acker, add_rate, seconds, urgent, publisher = replay_once(
            workdir, port, args, readings, lean=True, tag=f"-lean{n}"
        )
        runs.append(seconds)
        urgent_total += urgent
        publishers.append(publisher)
        if not last:
            cloud = acker.finish()
            urgent_ms += [(a - r) * 1000 for a, r, u in cloud["arrivals"] if u]
    # the same envelopes from a bare paho client, with the same (lean) acker subscribed
    try:
        acker.track.value = 0
        payloads = envelopes_like_the_publisher(readings, defaults.batch_max_readings)
        bare_runs, acker_runs = [], []
        for _ in range(args.bare_repeat):
            target = acker.envelopes.value + len(payloads)
            started = time.perf_counter()
            bare_runs.append(bare_publish(port, payloads, defaults.inflight_messages))
            wait_for(partial(_at_least, acker.envelopes, target), 60, "the acker to read all")
            acker_runs.append(time.perf_counter() - started)
        bare_s = statistics.median(bare_runs)
        acker_s = statistics.median(acker_runs)
        log(
            f"  bare publisher: {len(payloads) / bare_s:,.0f} msgs/s "
            f"(median of {args.bare_repeat} runs of {bare_s:.2f} s); the acker read "
            f"them at {args.replay / acker_s:,.0f} readings/s"
        )
        singles = envelopes_like_the_publisher(readings[: args.bare_single], 1)
        single_s = bare_publish(port, singles, defaults.inflight_messages)
        log(f"  bare publisher, 1 reading/message: {len(singles) / single_s:,.0f} msgs/s")
    finally:
        cloud = acker.finish()
    urgent_ms = sorted(urgent_ms + [(a - r) * 1000 for a, r, u in cloud["arrivals"] if u])
    standin_acker, _, standin_seconds, standin_urgent, standin_publisher = replay_once(
        workdir, port, args, readings, lean=False, tag="-standin"
    )
    standin_cloud = standin_acker.finish()
    window_acker, _, window_seconds, _, window_publisher = replay_once(
        workdir,
        port,
        args,
        readings,
        lean=True,
        max_unacked=min(200_000, args.replay + 1000),
        tag="-window",
    )
    window_acker.finish()
    to_broker_s = window_publisher["to_broker_s"] or window_seconds
    seconds = statistics.median(runs)
    per_message = defaults.batch_max_readings
    bare_msgs = len(payloads) / bare_s
    bare_readings = bare_msgs * per_message
    return {
        "replay_readings": args.replay,
        "replay_acker": "lean: decodes the ids only, acks once per gateway per batch like "
        "cloud/ingest (batch_interval_ms, batch_size: the cloud's defaults)",
        "replay_s": round(seconds, 3),
        "replay_runs_s": [round(t, 3) for t in runs],
        "replay_readings_per_s": round(args.replay / seconds),
        "urgent_during_replay": urgent_total,
        "urgent_add_to_puback_ms_p50": round(percentile(urgent_ms, 50), 1) if urgent_ms else None,
        "urgent_add_to_puback_ms_p99": round(percentile(urgent_ms, 99), 1) if urgent_ms else None,
        "urgent_add_to_puback_ms_max": round(urgent_ms[-1], 1) if urgent_ms else None,
        "bare_publish_messages": len(payloads),
        "bare_publish_readings_per_message": per_message,
        "bare_publish_s": round(bare_s, 3),
        "bare_publish_runs_s": [round(t, 3) for t in bare_runs],
        "bare_publish_msgs_per_s": round(bare_msgs),
        "bare_publish_readings_per_s": round(bare_readings),
        "replay_to_bare_ratio": round(args.replay / seconds / bare_readings, 3),
        "acker_alone_readings_per_s": round(args.replay / acker_s),
        "acker_alone_to_bare_ratio": round(args.replay / acker_s / bare_readings, 3),
        "replay_standin_s": round(standin_seconds, 3),
        "replay_standin_readings_per_s": round(args.replay / standin_seconds),
        "replay_standin_to_bare_ratio": round(args.replay / standin_seconds / bare_readings, 3),
        "standin_stored": standin_cloud["stored"],
        "standin_urgent_during_replay": standin_urgent,
        "standin_duplicate_deliveries": standin_cloud["duplicate_deliveries"],
        "replay_to_broker_s": round(to_broker_s, 3),
        "replay_to_broker_readings_per_s": round(args.replay / to_broker_s),
        "replay_to_broker_to_bare_ratio": round(args.replay / to_broker_s / bare_readings, 3),
        "replay_to_broker_max_unacked_readings": window_publisher["max_unacked_readings"],
        "replay_to_broker_drain_s": round(window_seconds, 3),
        "bare_publish_single_messages": len(singles),
        "bare_publish_single_msgs_per_s": round(len(singles) / single_s),
        "outbox_add_readings_per_s": round(add_rate),
        "acker_stored": cloud["stored"],
        "urgent_during_last_replay": urgent,
        "acker_duplicate_deliveries": cloud["duplicate_deliveries"],
        "standin_publisher_stats": standin_publisher["publisher_stats"],
        **publishers[-1],  # the last run's (the acker it drained into is counted above)
    }


# --- main --------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--records", type=int, default=500, help="records in the meter")
    parser.add_argument("--scenario", default="nocturnal_level2_hypoglycaemia")
    parser.add_argument("--idle-seconds", type=float, default=10.0)
    parser.add_argument("--replay", type=int, default=100_000, help="readings in the outbox")
    parser.add_argument(
        "--replay-repeat", type=int, default=3, help="replays against the lean acker (median)"
    )
    parser.add_argument(
        "--bare-repeat", type=int, default=7, help="runs of the bare publisher (median)"
    )
    parser.add_argument(
        "--bare-single", type=int, default=20_000, help="one-reading messages, bare publisher"
    )
    parser.add_argument(
        "--urgent-every-s", type=float, default=0.1, help="an urgent reading during the replay"
    )
    parser.add_argument("--profile", action="store_true", help="cProfile the replay (this process)")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    from tests.brokers import Mosquitto

    workdir = Path(tempfile.mkdtemp(prefix="anjia-bench-gateway-"))
    load_before = os.getloadavg()[0]
    broker = Mosquitto(workdir / "mosquitto")
    broker.start()
    log(f"mosquitto on 127.0.0.1:{broker.port}; files in {workdir}")
    try:
        log(f"phase daemon: anjia gateway run syncing a simulated meter ({args.records} records)")
        daemon = run_daemon(workdir, broker.port, args)
        log(f"phase replay: {args.replay:,} readings from the outbox, then a bare publisher")
        replayed = run_replay(workdir, broker.port, args)
        mosquitto = subprocess.run([broker.binary, "-h"], capture_output=True, text=True)
        broker_version = (mosquitto.stdout or mosquitto.stderr).splitlines()[0].strip()
    finally:
        broker.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    load = os.getloadavg()[0]

    rss_ok = daemon["peak_rss_mb_sync"] < RSS_GOAL_MB
    replay_ok = replayed["replay_to_bare_ratio"] >= REPLAY_GOAL_RATIO
    log("")
    log(f"{'measure':<52} {'value':>12}")
    rows = (
        ("daemon start -> sync begins (s)", daemon["start_to_sync_s"]),
        (
            "startup CPU (s) / RSS at sync start (MB)",
            f"{daemon['startup_cpu_s']:.2f} / {daemon['startup_rss_mb']:.1f}",
        ),
        (f"sync of {args.records}: wall s (to the last cloud store)", daemon["sync_s"]),
        ("sync: CPU s", daemon["cpu_s_sync"]),
        (f"sync: peak RSS MB (goal < {RSS_GOAL_MB:.0f})", daemon["peak_rss_mb_sync"]),
        ("idle: CPU %", daemon["idle_cpu_pct"]),
        ("idle: RSS MB", daemon["idle_rss_mb"]),
        (
            "reading -> PUBACK p50 / p99 ms (all)",
            f"{daemon['reading_to_puback_ms_p50']} / {daemon['reading_to_puback_ms_p99']}",
        ),
        (
            f"  bulk ({daemon['bulk_readings']})",
            f"{daemon['bulk_reading_to_puback_ms_p50']} / "
            f"{daemon['bulk_reading_to_puback_ms_p99']}",
        ),
        (
            f"  urgent ({daemon['urgent_readings']})",
            f"{daemon['urgent_reading_to_puback_ms_p50']}"
            f" / {daemon['urgent_reading_to_puback_ms_p99']}",
        ),
        (
            f"outbox replay readings/s (median of {args.replay_repeat})",
            f"{replayed['replay_readings_per_s']:,}",
        ),
        (
            "outbox replay readings/s, full stand-in cloud",
            f"{replayed['replay_standin_readings_per_s']:,}",
        ),
        (
            "outbox replay readings/s to the broker (no ack wait)",
            f"{replayed['replay_to_broker_readings_per_s']:,}",
        ),
        (
            "acker reading the bare envelopes, readings/s",
            f"{replayed['acker_alone_readings_per_s']:,}",
        ),
        (
            f"bare publisher msgs/s ({replayed['bare_publish_readings_per_message']} readings/msg)",
            f"{replayed['bare_publish_msgs_per_s']:,}",
        ),
        ("bare publisher readings/s", f"{replayed['bare_publish_readings_per_s']:,}"),
        (
            "bare publisher, 1 reading/message: msgs/s",
            f"{replayed['bare_publish_single_msgs_per_s']:,}",
        ),
        (
            f"urgent in the replay ({replayed['urgent_during_replay']}): add->PUBACK p50/p99",
            f"{replayed['urgent_add_to_puback_ms_p50']} / "
            f"{replayed['urgent_add_to_puback_ms_p99']}",
        ),
        (f"replay / bare (goal >= {REPLAY_GOAL_RATIO})", replayed["replay_to_bare_ratio"]),
        ("replay with the full stand-in cloud / bare", replayed["replay_standin_to_bare_ratio"]),
        ("acker alone / bare (ceiling of the replay)", replayed["acker_alone_to_bare_ratio"]),
    )
    for label, value in rows:
        log(f"{label:<52} {value!s:>12}")
    log(f"goal peak RSS during a sync < {RSS_GOAL_MB:.0f} MB: {'ok' if rss_ok else 'MISSED'}")
    log(f"goal replay >= half the bare rate: {'ok' if replay_ok else 'MISSED'}")
    log(f"load average 1 min: {load:.2f} (before: {load_before:.2f})")

    result: dict[str, Any] = {
        "benchmark": "gateway",
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": commit_of_tree(ROOT),
        "uncommitted_sources": uncommitted_sources(ROOT, MEASURED_PACKAGES),
        "measured_through": "the real daemon process (anjia gateway run) for RSS, CPU and latency; "
        "MqttPublisher + SqliteOutbox in this process for the replay",
        "peak_rss_mb_sync": daemon["peak_rss_mb_sync"],
        "cpu_s_sync": daemon["cpu_s_sync"],
        "idle_rss_mb": daemon["idle_rss_mb"],
        "idle_cpu_pct": daemon["idle_cpu_pct"],
        "replay_readings_per_s": replayed["replay_readings_per_s"],
        "bare_publish_msgs_per_s": replayed["bare_publish_msgs_per_s"],
        "bare_publish_readings_per_s": replayed["bare_publish_readings_per_s"],
        "replay_to_bare_ratio": replayed["replay_to_bare_ratio"],
        "replay_standin_readings_per_s": replayed["replay_standin_readings_per_s"],
        "replay_standin_to_bare_ratio": replayed["replay_standin_to_bare_ratio"],
        "replay_to_broker_readings_per_s": replayed["replay_to_broker_readings_per_s"],
        "acker_alone_to_bare_ratio": replayed["acker_alone_to_bare_ratio"],
        "reading_to_puback_ms_p50": daemon["reading_to_puback_ms_p50"],
        "reading_to_puback_ms_p99": daemon["reading_to_puback_ms_p99"],
        "goal_peak_rss_mb": RSS_GOAL_MB,
        "goal_replay_ratio": REPLAY_GOAL_RATIO,
        "goal_rss_met": rss_ok,
        "goal_replay_met": replay_ok,
        "daemon": daemon,
        "replay": replayed,
        "broker": f"{broker_version} (tests/brokers.py config: max_queued_messages 0, "
        "persistence false), loopback",
        "python": platform.python_version(),
        "paho_mqtt": version("paho-mqtt"),
        "bumble": version("bumble"),
        "machine": machine_info(),
        "load_avg_1m": round(load, 2),
        "load_avg_1m_before": round(load_before, 2),
    }
    write_results(args.output, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
