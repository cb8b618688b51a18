"""`anjia cloud ingest` as its own process on a real Mosquitto: two workers on the shared
subscription store and ack a gateway's readings, a bad setting exits 2, SIGTERM stops cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select

from cloud.db.engine import make_engine, make_session_factory
from cloud.db.models import ReadingRow
from cloud.settings import DatabaseSettings
from tests.brokers import Mosquitto
from tests.integration.cloud.ingest_world import GW, envelope, glucose, seed
from tests.integration.cloud.mqtt_clients import GatewayStandIn, wait_until

pytestmark = pytest.mark.broker

ANJIA = [sys.executable, "-m", "gateway.cli"]


def _env(db_url: str, port: int, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANJIA_")}
    env.update(
        ANJIA_CLOUD__DB__URL=db_url,
        ANJIA_CLOUD__MQTT__PORT=str(port),
        ANJIA_CLOUD__MQTT__BATCH_INTERVAL_MS="20",
        **extra,
    )
    return env


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_two_workers_in_one_process_store_and_ack_then_stop_on_sigterm(
    mosquitto: Mosquitto, db_url: str
) -> None:
    engine = make_engine(DatabaseSettings(url=db_url))
    factory = make_session_factory(engine)
    seed(factory)
    proc = subprocess.Popen(
        [*ANJIA, "cloud", "ingest", "--workers", "2"],
        env=_env(db_url, mosquitto.port),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    gateway = GatewayStandIn(mosquitto.port, GW).start()
    try:
        readings = [glucose(seq, 4.0 + seq / 10) for seq in range(1, 41)]
        ids = {r.reading_id for r in readings}
        # publish until the workers are subscribed: nothing is lost meanwhile, the gateway replays
        assert wait_until(
            lambda: (
                (gateway.publish(envelope(readings[:1], "m-probe")) or True)
                and bool(gateway.settled())
            ),
            timeout_s=20,
        )
        for i in range(0, len(readings), 10):
            gateway.publish(envelope(readings[i : i + 10], f"m-{i}"))
        assert wait_until(lambda: gateway.settled() >= ids)
        with factory() as session:
            stored = session.scalar(select(func.count()).select_from(ReadingRow))
        assert stored == len(ids)  # the probe's replays were duplicates, acked as such
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
        assert proc.returncode == 0, err
        assert "2 worker(s)" in out
    finally:
        gateway.stop()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        engine.dispose()


def test_a_bad_setting_exits_2_and_names_it(tmp_path: Path) -> None:
    env = _env(f"sqlite:///{tmp_path / 'x.db'}", 1883, ANJIA_CLOUD__MQTT__PROTOCOL="mqtt4")
    done = subprocess.run(
        [*ANJIA, "cloud", "ingest"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert "protocol" in done.stderr
