"""The time-series mirror against a real VictoriaMetrics (InfluxDB v2 write API), on SQLite and
PostgreSQL: points read back with their tags and times, an outage that loses nothing, repeated
writes that add no sample, disjoint batches for concurrent mirrors, the CLI and the health check."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from cloud.db.engine import make_engine, make_session_factory
from cloud.db.models import ReadingRow, TsdbPendingRow
from cloud.db.repositories.ingest import TsdbPendingRepository
from cloud.ingest.store import BatchStore, Inbound
from cloud.settings import DatabaseSettings, TsdbSettings
from cloud.timeseries.mirror import TsdbMirror
from cloud.timeseries.writer import InfluxWriter, PointsRejectedError
from gateway import contract as c
from tests.integration.cloud.conftest import FakeClock, make_settings
from tests.integration.cloud.ingest_world import (
    IngestWorld,
    bp,
    envelope,
    glucose,
    readings_topic,
    seed,
)
from tests.integration.cloud.mqtt_clients import wait_until
from tests.victoria import VictoriaMetrics

pytestmark = pytest.mark.tsdb


@pytest.fixture
def factory(db_url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(DatabaseSettings(url=db_url))
    yield make_session_factory(engine)
    engine.dispose()


@pytest.fixture
def world(factory: sessionmaker[Session]) -> IngestWorld:
    return seed(factory)


@pytest.fixture
def store(factory: sessionmaker[Session], clock: FakeClock) -> BatchStore:
    return BatchStore(factory, clock, mirror=True)


def tsdb_settings(vm: VictoriaMetrics, **overrides: object) -> TsdbSettings:
    values: dict[str, object] = {
        "enabled": True,
        "url": vm.url,
        "batch_size": 3,
        "interval_ms": 20,
        "timeout_ms": 2000,
        "retry_min_s": 0.05,
        "retry_max_s": 0.2,
    }
    values.update(overrides)
    return TsdbSettings.model_validate(values)


_mids = iter(range(1, 1_000_000))


def ingest(store: BatchStore, messages: Sequence[c.ReadingMessage], message_id: str) -> int:
    outcome = store.process(
        [Inbound(readings_topic(), envelope(list(messages), message_id), time.time(), next(_mids))]
    )
    return outcome.accepted


def pending(factory: sessionmaker[Session]) -> int:
    with factory() as session:
        return int(session.scalar(select(func.count()).select_from(TsdbPendingRow)) or 0)


def epoch_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def test_readings_are_mirrored_with_opaque_tags_and_their_effective_times(
    store: BatchStore,
    factory: sessionmaker[Session],
    world: IngestWorld,
    victoria_metrics: VictoriaMetrics,
) -> None:
    messages = [
        glucose(1, 5.5),
        glucose(2, 6.5, minutes=10),
        glucose(3, None, minutes=20),  # HI/LO: no number, nothing to write
        bp(1, 128, 82, pulse=70),
        bp(2, 141, 91, minutes=5, pulse=None),
    ]
    assert ingest(store, messages, "m-1") == 5
    mirror = TsdbMirror(tsdb_settings(victoria_metrics), factory)
    try:
        settled = 0
        while step := mirror.drain_once():
            settled += step
    finally:
        mirror.stop()
    assert settled == 5
    assert pending(factory) == 0
    assert mirror.stats.written == 4
    assert mirror.stats.skipped == 1
    assert mirror.stats.last_success_at is not None

    mum, dad, h1 = (str(world.ids[k]) for k in ("mum", "dad", "h1"))
    series = victoria_metrics.export()
    by_name: dict[tuple[str, str], dict[int, float]] = {}
    for s in series:
        labels = s["metric"]
        key = (labels["__name__"], labels.get("person", ""))
        by_name.setdefault(key, {}).update(zip(s["timestamps"], s["values"], strict=True))
        # only opaque ids and codes: no name, no device address or serial
        assert set(labels) <= {"__name__", "person", "household", "device", "device_kind", "db"}
        assert labels["household"] == h1
    with factory() as session:
        rows = {r.reading_id: r for r in session.scalars(select(ReadingRow)).all()}
    g1, g2 = rows[messages[0].reading_id], rows[messages[1].reading_id]
    b1, b2 = rows[messages[3].reading_id], rows[messages[4].reading_id]
    assert by_name[("glucose_mmol_l", mum)] == {
        epoch_ms(g1.effective_at): 5.5,
        epoch_ms(g2.effective_at): 6.5,
    }
    assert by_name[("blood_pressure_systolic", dad)] == {epoch_ms(b1.effective_at): 128}
    assert by_name[("blood_pressure_diastolic", dad)] == {epoch_ms(b1.effective_at): 82}
    assert by_name[("blood_pressure_pulse", dad)] == {epoch_ms(b1.effective_at): 70}
    assert by_name[("blood_pressure_systolic", mum)] == {epoch_ms(b2.effective_at): 141}
    assert ("blood_pressure_pulse", mum) not in by_name  # no pulse measured: no sample
    assert by_name[("blood_pressure_mean", mum)] == {epoch_ms(b2.effective_at): 107.7}
    kinds = {s["metric"]["__name__"]: s["metric"]["device_kind"] for s in series}
    assert kinds["glucose_mmol_l"] == "glucose_meter"
    assert kinds["blood_pressure_systolic"] == "blood_pressure_monitor"
    assert epoch_ms(g1.effective_at) == epoch_ms(datetime(2026, 3, 1, 0, 0, tzinfo=UTC))


def test_an_outage_blocks_nothing_and_the_mirror_catches_up_without_loss(
    store: BatchStore,
    factory: sessionmaker[Session],
    world: IngestWorld,
    victoria_metrics: VictoriaMetrics,
) -> None:
    mirror = TsdbMirror(tsdb_settings(victoria_metrics), factory)
    mirror.start()
    try:
        assert ingest(store, [glucose(1, 5.1), glucose(2, 5.2, minutes=1)], "m-1") == 2
        assert wait_until(lambda: pending(factory) == 0)
        victoria_metrics.stop()
        # the store is down: ingest keeps committing, the queue grows, the mirror keeps failing
        values = [round(5.3 + n / 10, 1) for n in range(8)]
        for n, value in enumerate(values):
            assert ingest(store, [glucose(3 + n, value, minutes=2 + n)], f"m-out-{n}") == 1
        assert pending(factory) == 8
        assert wait_until(lambda: mirror.stats.failures >= 3)
        assert mirror.stats.last_error is not None
        assert mirror.stats.last_error.startswith("store: ")
        assert pending(factory) == 8  # nothing deleted while nothing was written
        victoria_metrics.start()  # same port, same data directory
        assert wait_until(lambda: pending(factory) == 0, timeout_s=30)
        assert wait_until(lambda: mirror.stats.failures == 0)
    finally:
        mirror.stop()
    samples = victoria_metrics.samples('{__name__="glucose_mmol_l"}')
    assert samples == {("glucose_mmol_l", str(world.ids["mum"])): [5.1, 5.2, *values]}


def test_writing_the_same_points_again_adds_no_sample(
    store: BatchStore,
    factory: sessionmaker[Session],
    world: IngestWorld,
    victoria_metrics: VictoriaMetrics,
) -> None:
    """A write that succeeded but whose dequeue did not commit is written again: same series,
    same timestamp, same value, so VictoriaMetrics (deduplicating) keeps one sample."""
    messages = [glucose(1, 5.5), bp(1, 120, 80)]
    assert ingest(store, messages, "m-1") == 2
    mirror = TsdbMirror(tsdb_settings(victoria_metrics), factory)
    try:
        assert mirror.drain_once() == 2
        victoria_metrics.flush()
        with factory() as session:  # as if the first dequeue had rolled back
            TsdbPendingRepository(session).add([m.reading_id for m in messages])
            session.commit()
        assert mirror.drain_once() == 2
    finally:
        mirror.stop()
    for s in victoria_metrics.export():
        assert len(s["values"]) == 1, s["metric"]["__name__"]


def test_a_refused_batch_is_written_point_by_point_and_bad_points_dropped(
    store: BatchStore,
    factory: sessionmaker[Session],
    world: IngestWorld,
    victoria_metrics: VictoriaMetrics,
) -> None:
    """The store refusing a batch as invalid must not stall the queue: the good points of the
    batch still reach the real server, the refused one is counted and dropped."""
    real = InfluxWriter(tsdb_settings(victoria_metrics))

    class RefusesGlucoseSix:
        def write(self, lines: Sequence[str]) -> None:
            if any(" mmol_l=6 " in line for line in lines):
                raise PointsRejectedError("HTTP 400")
            real.write(lines)

        def close(self) -> None:
            real.close()

    assert (
        ingest(
            store, [glucose(1, 5.0), glucose(2, 6.0, minutes=1), glucose(3, 7.0, minutes=2)], "m"
        )
        == 3
    )
    mirror = TsdbMirror(tsdb_settings(victoria_metrics), factory, writer=RefusesGlucoseSix())
    try:
        assert mirror.drain_once() == 3
    finally:
        mirror.stop()
    assert (mirror.stats.written, mirror.stats.rejected) == (2, 1)
    assert pending(factory) == 0
    assert victoria_metrics.samples() == {("glucose_mmol_l", str(world.ids["mum"])): [5.0, 7.0]}


def test_concurrent_mirrors_take_disjoint_batches_on_postgresql(
    db_url: str, store: BatchStore, factory: sessionmaker[Session], world: IngestWorld
) -> None:
    if not db_url.startswith("postgresql"):
        pytest.skip("SKIP LOCKED is PostgreSQL's; SQLite mirrors may repeat a batch (harmless)")
    messages = [glucose(n, 5.0 + n / 10, minutes=n) for n in range(1, 7)]
    assert ingest(store, messages, "m-1") == 6
    with factory() as first, factory() as second:
        a = TsdbPendingRepository(first).next_batch(4, skip_locked=True)
        b = TsdbPendingRepository(second).next_batch(4, skip_locked=True)
        assert len(a) == 4
        assert len(b) == 2
        assert {pid for pid, _ in a}.isdisjoint({pid for pid, _ in b})
        first.rollback()
        second.rollback()


def test_tsdb_mirror_command_drains_the_queue_and_health_shows_the_lag(
    db_url: str,
    store: BatchStore,
    factory: sessionmaker[Session],
    world: IngestWorld,
    victoria_metrics: VictoriaMetrics,
    clock: FakeClock,
) -> None:
    from fastapi.testclient import TestClient

    from cloud.main import create_app

    assert ingest(store, [glucose(1, 5.5), glucose(2, 6.5, minutes=1)], "m-1") == 2
    settings = make_settings(db_url, tsdb=tsdb_settings(victoria_metrics))
    clock.advance(seconds=90)  # the readings were stored at the clock's time
    with TestClient(create_app(settings, clock=clock)) as client:
        lag = client.get("/healthz").json()["tsdb"]
    assert lag == {"pending": 2, "oldest_pending_age_s": 90.0}

    env = {k: v for k, v in os.environ.items() if not k.startswith("ANJIA_")}
    env.update(
        ANJIA_CLOUD__DB__URL=db_url,
        ANJIA_CLOUD__TSDB__ENABLED="true",
        ANJIA_CLOUD__TSDB__URL=victoria_metrics.url,
        ANJIA_CLOUD__TSDB__INTERVAL_MS="50",
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "cloud", "tsdb-mirror"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert wait_until(lambda: pending(factory) == 0, timeout_s=30), proc.stderr
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "2 point(s) written" in out
    assert victoria_metrics.samples() == {("glucose_mmol_l", str(world.ids["mum"])): [5.5, 6.5]}


def test_tsdb_mirror_command_refuses_to_run_when_the_mirror_is_off(db_url: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANJIA_")}
    env["ANJIA_CLOUD__DB__URL"] = db_url
    done = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "cloud", "tsdb-mirror"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "ANJIA_CLOUD__TSDB__ENABLED" in done.stderr
