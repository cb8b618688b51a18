"""`make bench-ingest`: ingest throughput and latency against a Mosquitto this script starts,
beside a bare paho subscriber on the same broker with the same messages (bench/README.md).

One Mosquitto (tests/brokers.py: ``max_queued_messages 0``, persistence off) on a free port, a
fresh SQLite (WAL) file per phase, migrated and provisioned like the ingest tests
(tests/integration/cloud/ingest_world.py: clinic, households, persons, gateways, meters owned by
a person). Messages are built with the gateway's contract (``from_reading``, ``encode_reading``,
``encode_envelope``): glucose readings from ``--gateways`` gateways, round robin.

Throughput phases drain a backlog: the consumer connects once (persistent session, shared
subscription), disconnects, the messages are published to the broker at QoS 1 and queued there
for it, then the consumer reconnects and is timed from its connect call to the last message
(bare) or the last commit (ingest). So the publisher's own CPU does not compete with the
consumer on this 2-core machine, and every consumer gets exactly the same messages.

* ``bare``: a bare paho subscriber process (MQTT 5, QoS 1, automatic PUBACK) that only counts.
* ``ingest 1w``: one process running :class:`cloud.ingest.IngestService` with one worker.
* ``ingest 2w``: two such processes, one worker each, on the shared subscription (one process
  per core is how ingest scales: docs/ingest.md).
* ``ingest 2w, 1 process``: ``IngestService(workers=2)`` in one process (what
  ``anjia cloud ingest --workers 2`` runs; the GIL is shared).
* ``batched``: one worker, envelopes of ``--batch`` readings (a gateway's bulk sync).
* ``paced`` (latency): one worker already running, ``--rate`` one-reading messages per second
  published live; latency per reading from the publish call to the commit seen by the ingest's
  alert hook (same machine, same clock).

Prints a table and writes bench/results/ingest.json. ``--profile`` instead runs the writer's hot
path (:meth:`BatchStore.process` over batches of one-reading messages) under cProfile.

    .venv/bin/python bench/bench_ingest.py [--messages 20000] [--batch 100] [--rate 500]
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import logging
import multiprocessing as mp
import os
import platform
import pstats
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib.metadata import version
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: the repository's packages and tests/
    sys.path.insert(0, str(ROOT))

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
from paho.mqtt.packettypes import PacketTypes  # noqa: E402
from paho.mqtt.properties import Properties  # noqa: E402

from device_drivers.model import DeviceIdentity, DeviceKind, GlucoseContext, GlucoseReading  # noqa: E402
from gateway import contract as c  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "ingest.json"
RESULTS_POSTGRESQL = ROOT / "bench" / "results" / "ingest_postgresql.json"
MEASURED_PACKAGES = ("cloud", "gateway/contract.py", "gateway/contract_messages.py")
T0 = datetime(2026, 3, 1, 0, 0, tzinfo=UTC)
SESSION_EXPIRY_S = 600
STALL_S = 60.0  # no progress for this long: the phase failed

Message = tuple[str, bytes, list[str]]  # topic, payload, reading ids


# --- the database ------------------------------------------------------------------------------
def make_database(url: str, gateways: int) -> None:
    """Migrate and provision: one household per gateway with one person owning one meter."""
    from cloud.db.engine import make_engine, make_session_factory
    from cloud.db.migrate import upgrade
    from cloud.db.models import ClinicRow, DeviceRow, GatewayRow, HouseholdRow, PersonRow
    from cloud.passwords import mosquitto_hash
    from cloud.settings import DatabaseSettings

    engine = make_engine(DatabaseSettings(url=url))
    upgrade(engine)
    with make_session_factory(engine)() as session:
        clinic = ClinicRow(code="c-bench", name="社区", created_at=T0)
        session.add(clinic)
        session.flush()
        for g in range(gateways):
            household = HouseholdRow(clinic_id=clinic.id, code=f"HH-B{g:04d}", created_at=T0)
            session.add(household)
            session.flush()
            person = PersonRow(
                household_id=household.id,
                name_enc=b"\x00",
                pii_key_id="dev1",
                created_at=T0,
                updated_at=T0,
            )
            session.add(person)
            session.flush()
            session.add(
                GatewayRow(
                    uid=gateway_uid(g),
                    household_id=household.id,
                    mqtt_password_hash=mosquitto_hash(f"pw-{g}", 10),
                    enrolled_at=T0,
                )
            )
            meter = meter_of(g)
            session.add(
                DeviceRow(
                    household_id=household.id,
                    device_key=meter.key,
                    kind=meter.kind.value,
                    system_id=meter.system_id,
                    serial_number=meter.serial_number,
                    model_number=meter.model_number,
                    manufacturer=meter.manufacturer,
                    label="血糖仪",
                    owner_person_id=person.id,
                    created_at=T0,
                )
            )
        session.commit()
    engine.dispose()


def gateway_uid(g: int) -> str:
    return f"gw-bench-{g:04d}"


def meter_of(g: int) -> DeviceIdentity:
    return DeviceIdentity(
        f"C0:B0:00:00:{g >> 8:02X}:{g & 255:02X}",
        DeviceKind.GLUCOSE_METER,
        system_id=f"{0xB0 << 56 | g:016x}",
        serial_number=f"GMB{g:07d}",
        model_number="GM-1",
        manufacturer="Anjia Sim",
    )


# --- messages ----------------------------------------------------------------------------------
def make_messages(phase: int, readings: int, per_envelope: int, gateways: int) -> list[Message]:
    """Envelopes of ``per_envelope`` glucose readings, gateways in turn; reading ids are unique
    per phase (sequence numbers start at ``phase`` * 10,000,000)."""
    out: list[Message] = []
    seq = phase * 10_000_000
    for n in range(max(1, readings // per_envelope)):
        g = n % gateways
        meter = meter_of(g)
        encoded: list[bytes] = []
        ids: list[str] = []
        for _ in range(per_envelope):
            seq += 1
            device_time = datetime(2026, 3, 1, 8, 0) + timedelta(minutes=seq % 500_000)
            measured = device_time.replace(tzinfo=UTC) - timedelta(hours=8)
            value = 4.0 + (seq % 60) / 10
            message = c.from_reading(
                GlucoseReading(
                    meter,
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
                None,
            )
            encoded.append(c.encode_reading(message))
            ids.append(message.reading_id)
        uid = gateway_uid(g)
        payload = c.encode_envelope(f"m-{phase}-{n}", uid, T0, encoded)
        out.append((c.topic(uid, c.Channel.READINGS), payload, ids))
    return out


# --- publishing (this process) -----------------------------------------------------------------
class Publisher:
    """One paho client publishing at QoS 1 with a bounded in-flight window."""

    def __init__(self, port: int) -> None:
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"bench-publisher-{os.getpid()}",
            protocol=MQTTProtocolVersion.MQTTv5,
        )
        self.client.max_inflight_messages_set(1000)  # far below paho's 65,535 message ids
        self.client.max_queued_messages_set(0)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def publish(self, messages: Sequence[Message], rate: float | None = None) -> dict[str, float]:
        """Publish every message at QoS 1 (paced at ``rate`` msgs/s if given) and wait for all
        PUBACKs; return reading id -> time of the publish call."""
        sent: dict[str, float] = {}
        infos = []
        start = time.time()
        for n, (topic, payload, ids) in enumerate(messages):
            if rate is not None:
                delay = start + n / rate - time.time()
                if delay > 0:
                    time.sleep(delay)
            now = time.time()
            for rid in ids:
                sent[rid] = now
            infos.append(self.client.publish(topic, payload, qos=1))
        for info in infos:
            info.wait_for_publish(120)
            if not info.is_published():
                raise RuntimeError("the broker did not acknowledge every publish")
        return sent

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


# --- child processes ---------------------------------------------------------------------------
def _session_properties() -> Properties:
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = SESSION_EXPIRY_S
    return props


def bare_subscriber(
    port: int, expected: int, primed: Any, go: Any, progress: Any, results: Any
) -> None:
    """Subscribes once (persistent session) and leaves; on ``go`` reconnects and counts the
    backlog. Reports (messages, connect time, time of the last message)."""
    topic_filter = c.cloud_filter(c.Channel.READINGS, "bench-bare")
    done = threading.Event()
    subscribed = threading.Event()
    state = {"count": 0, "last": 0.0}

    def on_connect(client: mqtt.Client, *args: object) -> None:
        client.subscribe(topic_filter, qos=1)

    def on_message(client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        state["count"] += 1
        if state["count"] % 1000 == 0:
            progress.value = state["count"]
        if state["count"] >= expected:
            state["last"] = time.time()
            progress.value = state["count"]
            done.set()

    def client() -> mqtt.Client:
        made = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id="bench-bare",
            protocol=MQTTProtocolVersion.MQTTv5,
        )
        made.on_connect = on_connect
        made.on_subscribe = lambda *args: subscribed.set()
        made.on_message = on_message
        return made

    first = client()
    first.connect("127.0.0.1", port, clean_start=False, properties=_session_properties())
    first.loop_start()
    subscribed.wait(30)
    first.disconnect()
    first.loop_stop()
    primed.set()
    go.wait(600)
    second = client()
    started = time.time()
    second.connect("127.0.0.1", port, clean_start=False, properties=_session_properties())
    second.loop_start()
    done.wait(STALL_S * 10)
    results.put(("bare", state["count"], started, state["last"]))
    second.disconnect()
    second.loop_stop()


class CommitLog:
    """The alert hook of the benchmark: remembers when each batch's readings were committed
    (the hook runs after the commit and the acks) and counts them for the parent."""

    def __init__(self, counter: Any) -> None:
        self.counter = counter
        self.batches: list[tuple[float, list[str]]] = []

    def on_committed(self, readings: Sequence[Any]) -> None:
        self.batches.append((time.time(), [r.reading_id for r in readings]))
        with self.counter.get_lock():
            self.counter.value += len(readings)


def ingest_process(
    db_url: str,
    port: int,
    name: str,
    group: str,
    workers: int,
    prime: bool,
    primed: Any,
    go: Any,
    stop: Any,
    counter: Any,
    results: Any,
) -> None:
    """An ingest process (``IngestService`` with ``workers`` workers, as `anjia cloud ingest`).
    With ``prime``: subscribe, leave (the broker keeps the sessions), come back on ``go``."""
    logging.basicConfig(level=logging.ERROR)
    from cloud.ingest.service import IngestService
    from cloud.runtime import Runtime
    from cloud.settings import CloudSettings, DatabaseSettings, IngestMqttSettings

    settings = CloudSettings(
        db=DatabaseSettings(url=db_url),
        mqtt=IngestMqttSettings(
            host="127.0.0.1", port=port, shared_group=group, session_expiry_s=SESSION_EXPIRY_S
        ),
    )
    runtime = Runtime.build(settings)
    hook = CommitLog(counter)

    def service() -> IngestService:
        return IngestService(runtime, workers=workers, hook=hook, name=name, push_config=False)

    if prime:
        first = service()
        if not first.start(30):
            raise RuntimeError(f"{name}: not subscribed")
        first.stop()
        primed.set()
        go.wait(600)
    started = time.time()
    running = service()
    if not running.start(30):
        raise RuntimeError(f"{name}: not subscribed")
    if not prime:
        primed.set()
    stop.wait(3600)
    running.stop()
    stats = [w.stats.__dict__ for w in running.workers]
    results.put(("ingest", name, started, hook.batches, stats))
    runtime.close()


# --- phases ------------------------------------------------------------------------------------
@dataclass
class Phase:
    label: str
    messages: int
    readings: int
    seconds: float
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.readings / self.seconds


def _wait_progress(label: str, counter: Any, total: int, unit: str) -> None:
    """Wait until ``counter`` reaches ``total``, printing progress; raise on a stall."""
    last, last_change, last_print = -1, time.monotonic(), time.monotonic()
    while True:
        value = counter.value
        now = time.monotonic()
        if value >= total:
            return
        if value != last:
            last, last_change = value, now
        elif now - last_change > STALL_S:
            raise RuntimeError(f"{label}: stalled at {value}/{total} {unit}")
        if now - last_print >= 2.0:
            log(f"    {label}: {value:,}/{total:,} {unit}")
            last_print = now
        time.sleep(0.05)


def _wait_event(label: str, event: Any, proc: Any, timeout_s: float = 60.0) -> None:
    """Wait for a child's event; fail at once if the child died."""
    deadline = time.monotonic() + timeout_s
    while not event.wait(0.1):
        if not proc.is_alive():
            raise RuntimeError(f"{label}: child process exited with {proc.exitcode}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{label}: child process not subscribed after {timeout_s} s")


def run_bare(port: int, messages: Sequence[Message]) -> Phase:
    ctx = mp.get_context("spawn")
    primed, go, results = ctx.Event(), ctx.Event(), ctx.Queue()
    progress = ctx.Value("q", 0)
    proc = ctx.Process(
        target=bare_subscriber, args=(port, len(messages), primed, go, progress, results)
    )
    proc.start()
    _wait_event("bare", primed, proc)
    publisher = Publisher(port)
    publisher.publish(messages)
    publisher.close()
    go.set()
    _wait_progress("bare", progress, len(messages), "messages")
    _, count, started, last = results.get(timeout=60)
    proc.join(30)
    return Phase("bare", len(messages), count, last - started)


def run_ingest(
    label: str,
    port: int,
    db_url: str,
    messages: Sequence[Message],
    *,
    processes: int = 1,
    workers: int = 1,
    rate: float | None = None,
) -> Phase:
    """Ingest ``messages`` with ``processes`` x ``workers``: a drained backlog, or published
    live at ``rate`` msgs/s. Latency is measured in the live (paced) case."""
    ctx = mp.get_context("spawn")
    prime = rate is None
    group = "bench-" + label.replace(" ", "-")  # one share group per phase: the sessions of
    # earlier phases' consumers stay in theirs (offline members would get a share)
    go, stop, results = ctx.Event(), ctx.Event(), ctx.Queue()
    counter = ctx.Value("q", 0)
    procs, readies = [], []
    for index in range(processes):
        primed = ctx.Event()
        proc = ctx.Process(
            target=ingest_process,
            args=(
                db_url,
                port,
                f"{group}-{index}",
                group,
                workers,
                prime,
                primed,
                go,
                stop,
                counter,
                results,
            ),
        )
        proc.start()
        procs.append(proc)
        readies.append(primed)
    for primed, proc in zip(readies, procs, strict=True):
        _wait_event(label, primed, proc)
    total = sum(len(ids) for _, _, ids in messages)
    publisher = Publisher(port)
    sent: dict[str, float] = {}
    if prime:
        publisher.publish(messages)
        go.set()
    else:
        sent = publisher.publish(messages, rate)
    _wait_progress(label, counter, total, "readings")
    publisher.close()
    stop.set()
    committed: dict[str, float] = {}
    started: list[float] = []
    stats: list[dict[str, int]] = []
    for _ in procs:
        _, _, start, batches, worker_stats = results.get(timeout=60)
        started.append(start)
        stats.extend(worker_stats)
        for when, ids in batches:
            for rid in ids:
                committed[rid] = when
    for proc in procs:
        proc.join(30)
    if len(committed) != total:
        raise RuntimeError(f"{label}: {len(committed)} of {total} readings committed")
    first = min(sent.values()) if sent else min(started)
    seconds = max(committed.values()) - first
    details: dict[str, Any] = {
        "processes": processes,
        "workers_per_process": workers,
        "per_worker_messages": [s["messages"] for s in stats],
        "batches": sum(s["batches"] for s in stats),
        "duplicates": sum(s["duplicates"] for s in stats),
        "dead_letters": sum(s["dead_letters"] for s in stats),
        "db_retries": sum(s["db_retries"] for s in stats),
        "acks_published": sum(s["acks_published"] for s in stats),
    }
    if sent:
        latencies = sorted((committed[rid] - sent[rid]) * 1000 for rid in committed)
        details["latency_p50_ms"] = round(percentile(latencies, 50), 2)
        details["latency_p99_ms"] = round(percentile(latencies, 99), 2)
        details["latency_max_ms"] = round(latencies[-1], 2)
    return Phase(label, len(messages), len(committed), seconds, details)


# --- profile -----------------------------------------------------------------------------------
def profile(workdir: Path, args: argparse.Namespace) -> None:
    """cProfile of the writer thread's work: BatchStore.process over one-reading messages."""
    from cloud.db.engine import make_engine, make_session_factory
    from cloud.ingest import BatchStore, Inbound
    from cloud.runtime import system_clock
    from cloud.settings import DatabaseSettings, IngestMqttSettings

    url = f"sqlite:///{workdir / 'profile.db'}"
    make_database(url, args.gateways)
    engine = make_engine(DatabaseSettings(url=url))
    store = BatchStore(make_session_factory(engine), system_clock)
    messages = make_messages(9, args.messages, 1, args.gateways)
    items = [
        Inbound(topic, payload, time.time(), n + 1)
        for n, (topic, payload, _) in enumerate(messages)
    ]
    size = IngestMqttSettings().batch_size  # the worker's default batch
    batches = [items[i : i + size] for i in range(0, len(items), size)]
    profiler = cProfile.Profile()
    started = time.perf_counter()
    profiler.enable()
    for batch in batches:
        store.process(batch)
    profiler.disable()
    elapsed = time.perf_counter() - started
    engine.dispose()
    log(f"BatchStore.process: {len(items) / elapsed:,.0f} messages/s under cProfile")
    stats = pstats.Stats(profiler, stream=sys.stdout)
    stats.sort_stats("cumulative").print_stats(40)
    stats.sort_stats("tottime").print_stats(30)


# --- main --------------------------------------------------------------------------------------
def ingest_settings_label() -> str:
    from cloud.settings import DatabaseSettings, IngestMqttSettings

    mqtt_cfg, db_cfg = IngestMqttSettings(), DatabaseSettings()
    return (
        f"IngestMqttSettings defaults: batch_size {mqtt_cfg.batch_size}, batch_max_bytes "
        f"{mqtt_cfg.batch_max_bytes}, batch_interval_ms {mqtt_cfg.batch_interval_ms}, "
        f"receive_maximum {mqtt_cfg.receive_maximum}; SQLite "
        f"wal_autocheckpoint {db_cfg.sqlite_wal_autocheckpoint_pages} pages"
    )


def postgres_version(server: Any) -> str:
    import psycopg

    dsn = f"host={server.host} port={server.port} user={server.user} dbname=postgres"
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SHOW server_version").fetchone()
    return str(row[0]) if row else "?"


def mosquitto_version(binary: str) -> str | None:
    try:
        out = subprocess.run([binary, "-h"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    first = (out.stdout or out.stderr).splitlines()
    return first[0].strip() if first else None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--messages", type=int, default=20_000, help="one-reading messages")
    parser.add_argument("--batch", type=int, default=100, help="readings per batched envelope")
    parser.add_argument("--batched-readings", type=int, default=100_000)
    parser.add_argument("--rate", type=float, default=500.0, help="msgs/s of the latency run")
    parser.add_argument("--paced-seconds", type=float, default=10.0)
    parser.add_argument("--gateways", type=int, default=50)
    parser.add_argument("--profile", action="store_true", help="cProfile BatchStore; no results")
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument(
        "--output", type=Path, help="default: bench/results/ingest[_postgresql].json"
    )
    args = parser.parse_args(argv)
    if args.output is None:
        args.output = RESULTS if args.database == "sqlite" else RESULTS_POSTGRESQL

    from tests.brokers import Mosquitto

    workdir = Path(tempfile.mkdtemp(prefix="anjia-bench-ingest-"))
    if args.profile:
        try:
            profile(workdir, args)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        return 0

    databases = iter(range(1, 100))
    stack = contextlib.ExitStack()
    server: Any = None
    database_label = "SQLite (WAL, synchronous=NORMAL), a fresh file per phase"
    if args.database == "postgresql":
        from tests.integration.postgres import find_pg_bin, running_postgres

        bin_dir = find_pg_bin()
        if bin_dir is None:
            log("PostgreSQL server binaries not found (make system-deps)")
            return 2
        server = stack.enter_context(running_postgres(bin_dir))
        log(f"postgresql {postgres_version(server)} on {server.host}:{server.port}")
        database_label = (
            f"PostgreSQL {postgres_version(server)} (tests/integration/postgres.py server, "
            "default settings), a fresh database per phase"
        )

    def database() -> str:
        """A fresh, migrated and provisioned database for the next phase."""
        number = next(databases)
        if server is None:
            url = f"sqlite:///{workdir / f'ingest-{number}.db'}"
        else:
            import psycopg

            name = f"anjia_bench_{number}"
            dsn = f"host={server.host} port={server.port} user={server.user} dbname=postgres"
            with psycopg.connect(dsn, autocommit=True) as conn:
                conn.execute(f"CREATE DATABASE {name}")
            url = server.url(name)
        make_database(url, args.gateways)
        return url

    load_before = os.getloadavg()[0]
    broker = Mosquitto(workdir / "mosquitto")
    stack.callback(broker.stop)
    broker.start()
    log(f"mosquitto on 127.0.0.1:{broker.port}; databases in {workdir}")
    phases: dict[str, Phase] = {}
    plan: list[tuple[str, Callable[[], Phase]]] = []
    single = {n: make_messages(n, args.messages, 1, args.gateways) for n in (1, 2, 3, 4)}
    batched = make_messages(5, args.batched_readings, args.batch, args.gateways)
    paced = make_messages(6, int(args.rate * args.paced_seconds), 1, args.gateways)
    port = broker.port
    plan = [
        ("bare", lambda: run_bare(port, single[1])),
        ("ingest_1w", lambda: run_ingest("ingest 1w", port, database(), single[2])),
        (
            "ingest_2w",
            lambda: run_ingest("ingest 2w", port, database(), single[3], processes=2),
        ),
        (
            "ingest_2w_1proc",
            lambda: run_ingest("ingest 2w 1proc", port, database(), single[4], workers=2),
        ),
        ("batched", lambda: run_ingest("batched", port, database(), batched)),
        ("paced", lambda: run_ingest("paced", port, database(), paced, rate=args.rate)),
    ]
    try:
        for key, run in plan:
            log(f"phase {key} ...")
            phase = run()
            phases[key] = phase
            log(
                f"  {key}: {phase.readings:,} readings in {phase.messages:,} messages, "
                f"{phase.seconds:.2f} s, {phase.rate:,.0f} readings/s"
            )
    finally:
        stack.close()
        shutil.rmtree(workdir, ignore_errors=True)
    load = os.getloadavg()[0]

    bare = phases["bare"]
    one, two, two_1p = phases["ingest_1w"], phases["ingest_2w"], phases["ingest_2w_1proc"]
    batch, pace = phases["batched"], phases["paced"]
    log(f"\n{'run':<46} {'messages':>9} {'readings/s':>11} {'msgs/s':>9}")
    for label, phase in (
        ("bare paho subscriber (counts only)", bare),
        ("ingest, 1 worker", one),
        ("ingest, 2 workers (2 processes)", two),
        ("ingest, 2 workers in 1 process", two_1p),
        (f"ingest, 1 worker, {args.batch} readings/message", batch),
    ):
        log(
            f"{label:<46} {phase.messages:>9,} {phase.rate:>11,.0f} "
            f"{phase.messages / phase.seconds:>9,.0f}"
        )
    log(
        f"latency publish -> commit, 1 worker at {args.rate:,.0f} msgs/s: "
        f"p50 {pace.details['latency_p50_ms']:.1f} ms, p99 {pace.details['latency_p99_ms']:.1f} ms"
    )
    half = one.rate >= 0.5 * bare.rate
    beats = batch.rate > bare.rate
    log(
        f"goal 1 worker >= half the bare rate: {one.rate / bare.rate:.2f} "
        f"({'ok' if half else 'MISSED'})"
    )
    log(
        f"goal batched readings/s > bare msgs/s: {batch.rate / bare.rate:.2f}x "
        f"({'ok' if beats else 'MISSED'})"
    )
    log(f"load average 1 min: {load:.2f} (before: {load_before:.2f})")

    def run_record(phase: Phase) -> dict[str, Any]:
        return {
            "messages": phase.messages,
            "readings": phase.readings,
            "seconds": round(phase.seconds, 4),
            "readings_per_s": round(phase.rate),
            **phase.details,
        }

    result: dict[str, Any] = {
        "benchmark": "ingest",
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": commit_of_tree(ROOT),
        "bare_msgs_per_s": round(bare.rate),
        "ingest_1w_readings_per_s": round(one.rate),
        "ingest_2w_readings_per_s": round(two.rate),
        "ingest_2w_one_process_readings_per_s": round(two_1p.rate),
        "batched_readings_per_s": round(batch.rate),
        "batched_readings_per_message": args.batch,
        "latency_p50_ms": pace.details["latency_p50_ms"],
        "latency_p99_ms": pace.details["latency_p99_ms"],
        "latency_rate_msgs_per_s": args.rate,
        "ratio_1w_to_bare": round(one.rate / bare.rate, 3),
        "ratio_batched_to_bare": round(batch.rate / bare.rate, 2),
        "goal_1w_half_bare": half,
        "goal_batched_beats_bare": beats,
        "messages": args.messages,
        "batched_messages": batch.messages,
        "batched_readings": batch.readings,
        "latency_messages": pace.messages,
        "gateways": args.gateways,
        "runs": {key: run_record(phase) for key, phase in phases.items()},
        "broker": f"{mosquitto_version(broker.binary)} (tests/brokers.py config: "
        "max_queued_messages 0, persistence false), loopback",
        "database": database_label,
        "uncommitted_sources": uncommitted_sources(ROOT, MEASURED_PACKAGES),
        "ingest_settings": ingest_settings_label(),
        "python": platform.python_version(),
        "paho_mqtt": version("paho-mqtt"),
        "sqlalchemy": version("sqlalchemy"),
        "machine": machine_info(),
        "load_avg_1m": round(load, 2),
        "load_avg_1m_before": round(load_before, 2),
    }
    write_results(args.output, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
