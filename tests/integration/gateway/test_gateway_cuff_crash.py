"""A gateway killed with -9 in the middle of a cuff session loses no reading.

The cuff (``anjia sim run --device bp`` in its own process, indications paced) forgets each reading
once its indication is confirmed. The gateway process journals each reading as it arrives
(gateway/cuff_journal.py); it is killed while the session runs (the journal, polled read-only,
holds some readings and the outbox none), restarted, and every reading the cuff held reaches the
stand-in cloud exactly once by identity."""

from __future__ import annotations

import re
import signal
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.outbox import SqliteOutbox
from tests.brokers import Mosquitto
from tests.integration.cloud_standin import StandInCloud
from tests.integration.gateway.harness import process_config_toml
from tests.integration.gateway.processes import (
    await_simulator,
    spawn_simulator,
    start_gateway,
    wait,
)

pytestmark = [pytest.mark.broker, pytest.mark.sim, pytest.mark.slow]

GW = "gw-cuff-crash-01"
CUFF = "F0:5A:4A:00:00:02"
INDICATION_INTERVAL_S = 0.1
KILL_AFTER = 8  # journaled readings


def config_toml(tmp_path: Path, sim_port: int, mqtt_port: int) -> Path:
    devices = f"""[[devices]]
kind = "blood_pressure_monitor"
address = "{CUFF}"
slots = {{1 = "p-dad", 2 = "p-mum"}}
"""
    return process_config_toml(
        tmp_path, GW, sim_port, mqtt_port, devices, ble_extra="backoff_max_s = 2\n"
    )


def count(db: Path, table: str) -> int:
    """Rows in a table of the gateway's outbox file, read-only (0 before it exists)."""
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as conn:
            return int(conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])
    except sqlite3.OperationalError:  # not created yet, or busy for a moment
        return 0


@pytest.fixture
def cuff(tmp_path: Path) -> Iterator[tuple[int, int, Path]]:
    """A cuff holding a few days of readings, in its own process: (port, readings, output)."""
    out = tmp_path / "sim.out"
    proc, port = spawn_simulator(
        [
            *("--device", "bp", "--days", "5", "--seed", "3", "--idle-disconnect", "1"),
            *("--indication-interval", str(INDICATION_INTERVAL_S)),
        ],
        out,
    )
    try:
        await_simulator(out, port)
        held = int(re.search(r"(\d+) unsent reading", out.read_text()).group(1))  # type: ignore[union-attr]
        assert held >= 3 * KILL_AFTER
        yield port, held, out
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)  # prints its report
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


def test_killed_mid_cuff_session_every_reading_arrives_once(
    tmp_path: Path, mosquitto: Mosquitto, cuff: tuple[int, int, Path]
) -> None:
    sim_port, held, _sim_out = cuff
    config = config_toml(tmp_path, sim_port, mosquitto.port)
    db = tmp_path / "outbox.db"
    log = tmp_path / "gateway.log"
    cloud = StandInCloud("127.0.0.1", mosquitto.port).start()
    gateway = start_gateway(config, log)
    try:
        assert wait(lambda: count(db, "cuff_journal") >= KILL_AFTER, 20), log.read_text()[-3000:]
        gateway.send_signal(signal.SIGKILL)
        gateway.wait(10)
        journaled = count(db, "cuff_journal")
        # killed mid-session: readings only in the journal (the session never ended), not all
        assert KILL_AFTER <= journaled < held
        assert count(db, "readings") == 0
        assert not cloud.stored

        gateway = start_gateway(config, log)
        assert cloud.wait_for(lambda s: len(s.stored) == held, 25), (
            len(cloud.stored),
            log.read_text()[-3000:],
        )
        assert wait(lambda: count(db, "cuff_journal") == 0, 10)
        gateway.send_signal(signal.SIGTERM)
        assert gateway.wait(20) == 0
    finally:
        if gateway.poll() is None:
            gateway.kill()
            gateway.wait(10)
        cloud.stop()
    stored = list(cloud.stored.values())
    identities = {(r.device.key, r.user_id, r.measured_at, r.systolic_mmhg) for r in stored}
    assert len(identities) == len(stored) == held
    assert {r.person_ref for r in stored} == {"p-dad", "p-mum"}
    with SqliteOutbox(db) as outbox:
        assert outbox.depth() == 0
    assert "recovered" in log.read_text()  # the journal was drained at the restart
    assert "Traceback" not in log.read_text()
