"""``anjia gateway run`` as a process, syncing ``anjia sim run --transport tcp-server:...`` (a
simulated meter and cuff in another process) and publishing to Mosquitto: killed with -9 in the
middle of publishing, restarted, then stopped with SIGTERM."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.outbox import SqliteOutbox
from tests.brokers import Mosquitto
from tests.integration.cloud_standin import StandInCloud
from tests.integration.gateway.harness import process_config_toml
from tests.integration.gateway.processes import (
    ANJIA,
    await_simulator,
    spawn_simulator,
    start_gateway,
)

pytestmark = [pytest.mark.broker, pytest.mark.sim, pytest.mark.slow]

GW = "gw-proc-0001"
RECORDS = 300


def config_toml(tmp_path: Path, sim_port: int, mqtt_port: int) -> Path:
    devices = """[[devices]]
kind = "glucose_meter"
address = "F0:5A:4A:00:00:01"
person = "p-mum"

[[devices]]
kind = "blood_pressure_monitor"
address = "F0:5A:4A:00:00:02"
slots = {1 = "p-dad", 2 = "p-mum"}
"""
    mqtt = "batch_max_readings = 20\ninflight_messages = 4\nmax_unacked_readings = 100\n"
    return process_config_toml(tmp_path, GW, sim_port, mqtt_port, devices, mqtt_extra=mqtt)


@pytest.fixture
def simulator(tmp_path: Path) -> Iterator[tuple[int, int]]:
    """The simulated household in its own process: (transport port, readings it holds)."""
    out = tmp_path / "sim.out"
    proc, port = spawn_simulator(
        ["--records", str(RECORDS), "--seed", "4", "--idle-disconnect", "1"], out
    )
    try:
        text = await_simulator(out, port, devices=2)
        records = int(re.search(r"(\d+) record\(s\)", text).group(1))  # type: ignore[union-attr]
        unsent = int(re.search(r"(\d+) unsent reading", text).group(1))  # type: ignore[union-attr]
        assert records == RECORDS
        yield port, records + unsent
    finally:
        proc.terminate()
        proc.wait(10)


def test_killed_mid_publishing_then_restarted_loses_and_duplicates_nothing(
    tmp_path: Path, mosquitto: Mosquitto, simulator: tuple[int, int]
) -> None:
    sim_port, expected = simulator
    config = config_toml(tmp_path, sim_port, mosquitto.port)
    log = tmp_path / "gateway.log"
    cloud = StandInCloud("127.0.0.1", mosquitto.port, acking=False).start()
    gateway = start_gateway(config, log)
    try:
        # publishing, nothing acked: the publisher stops at 100 unacked readings
        assert cloud.wait_for(lambda s: len(s.deliveries) >= 100, 30), log.read_text()[-3000:]
        time.sleep(2.5)  # the cuff session ends (idle 1 s); envelopes wait for their acks
        assert len(cloud.deliveries) < expected  # killed in the middle of publishing
        gateway.send_signal(signal.SIGKILL)
        gateway.wait(10)
        # the broker publishes the last will: offline, without outbox stats
        assert cloud.wait_for(lambda s: bool(s.statuses) and s.statuses[-1].state == "offline", 10)
        assert cloud.statuses[-1].outbox is None
        cloud.acking = True
        gateway = start_gateway(config, log)
        assert cloud.wait_for(lambda s: len(s.stored) == expected, 40), (
            len(cloud.stored),
            log.read_text()[-3000:],
        )

        def drained(s: StandInCloud) -> bool:
            last = s.statuses[-1] if s.statuses else None
            return (
                last is not None
                and last.state == "online"
                and last.outbox is not None
                and last.outbox.pending + last.outbox.in_flight == 0
            )

        assert cloud.wait_for(drained, 15)
        gateway.send_signal(signal.SIGTERM)
        assert gateway.wait(20) == 0
        # a clean stop: the gateway's own offline status (with stats), not the last will
        assert cloud.wait_for(lambda s: s.statuses[-1].state == "offline", 5)
        assert cloud.statuses[-1].outbox is not None
    finally:
        if gateway.poll() is None:
            gateway.kill()
            gateway.wait(10)
        cloud.stop()
    stored = list(cloud.stored.values())
    # duplicates downstream only ever repeat a reading id: one id per reading identity
    identities = {(r.device.key, r.sequence_number, r.user_id, r.measured_at) for r in stored}
    assert len(identities) == len(stored) == expected
    assert {r.person_ref for r in stored if r.kind == "glucose_meter"} == {"p-mum"}
    with SqliteOutbox(tmp_path / "outbox.db") as outbox:
        assert outbox.depth() == 0
    text = log.read_text()
    assert "Traceback" not in text


def test_a_malformed_config_file_exits_2_naming_each_problem(tmp_path: Path) -> None:
    config = tmp_path / "gateway.toml"
    outbox = tmp_path / "outbox.db"
    config.write_text(
        'gateway_id = "gw 1"\n'
        "[ble]\nmax_concurrent_connections = 0\n"
        '[mqtt]\ntls = "maybe"\n'
        f'[outbox]\npath = "{outbox}"\n'
    )
    done = subprocess.run(
        [*ANJIA, "gateway", "run", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "ANJIA_GATEWAY__MQTT__PORT": "not-a-port"},
        check=False,
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert lines[0] == f"error: invalid gateway settings ({config}):"
    named = {line.split(":")[0].strip() for line in lines[1:]}
    assert named == {"gateway_id", "ble.max_concurrent_connections", "mqtt.tls", "mqtt.port"}
    assert not outbox.exists()  # nothing started

    config.write_text('gateway_id = "gw-1"\n[ble\n')
    done = subprocess.run(
        [*ANJIA, "gateway", "run", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.splitlines()[1].startswith("  toml: ")
