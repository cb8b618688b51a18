"""`anjia ble scan` and `anjia ble sync` as a field engineer runs them: `anjia sim run` serves the
simulated meter and cuff on a tcp-server bumble transport in one child process, and each CLI
command runs in another, joining with ``--transport tcp-client:...`` (docs/ble.md). Ground truth
is what the simulator process prints about its memories; the processes are always stopped.
"""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

import pytest

pytestmark = pytest.mark.sim

METER = "F0:5A:4A:00:00:01"
CUFF = "F0:5A:4A:00:00:02"
STEP_S = 20.0
RECORDS = 90


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Sim:
    process: subprocess.Popen[str]
    moniker: str
    lines: list[str]
    output: queue.Queue[str | None]

    def line_with(self, marker: str) -> str:
        return next(line for line in self.lines if marker in line)

    def read_until(self, marker: str) -> str:
        deadline = time.monotonic() + STEP_S
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self.output.get(timeout=left)
            except queue.Empty:
                break
            if line is None:
                raise AssertionError(f"sim ended before {marker!r}: {self.lines}")
            self.lines.append(line)
            if marker in line:
                return line
        raise AssertionError(f"no {marker!r} within {STEP_S} s: {self.lines}")


def _pump(stream: IO[str], output: queue.Queue[str | None]) -> None:
    for line in stream:
        output.put(line)
    output.put(None)


@pytest.fixture(scope="module")
def sim() -> Iterator[Sim]:
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gateway.cli",
            "sim",
            "run",
            "--scenario",
            "hi_lo",
            "--seed",
            "3",
            "--records",
            str(RECORDS),
            "--days",
            "3",
            "--transport",
            f"tcp-server:127.0.0.1:{port}",
            "--duration",
            "120",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert process.stdout is not None
    output: queue.Queue[str | None] = queue.Queue()
    reader = threading.Thread(target=_pump, args=(process.stdout, output), daemon=True)
    reader.start()
    try:
        the_sim = Sim(process, f"tcp-client:127.0.0.1:{port}", [], output)
        the_sim.read_until(f"advertising {CUFF}")
        yield the_sim
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=STEP_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        reader.join(timeout=STEP_S)
        process.stdout.close()


def anjia(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONWARNINGS": "error"}
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", *args],
        capture_output=True,
        text=True,
        timeout=STEP_S * 2,
        env=env,
        check=False,
    )


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_scan_lists_the_meter_and_the_cuff(sim: Sim) -> None:
    done = anjia("ble", "scan", "--transport", sim.moniker, "--timeout", "1", "--json")
    assert done.returncode == 0, done.stderr
    devices = {d["address"]: d for d in json_lines(done.stdout)}
    assert devices[METER]["kind"] == "glucose_meter"
    assert devices[METER]["services"] == ["0x1808"]
    assert devices[CUFF]["kind"] == "blood_pressure_monitor"
    assert devices[CUFF]["name"] in sim.line_with(CUFF)
    table = anjia("ble", "scan", "--transport", sim.moniker, "--timeout", "1")
    assert table.returncode == 0, table.stderr
    assert "found 2 device(s)" in table.stdout
    assert re.search(rf"{METER}\s+-?\d+\s+血糖仪 glucose meter", table.stdout)


def test_sync_the_meter_then_only_what_is_new(sim: Sim) -> None:
    stored = re.search(r"(\d+) record\(s\) \(seq (\d+)\.\.(\d+), (\S+)\)", sim.line_with(METER))
    assert stored is not None
    count, first, last, unit = int(stored[1]), int(stored[2]), int(stored[3]), stored[4]
    assert count == RECORDS

    done = anjia(
        "ble", "sync", METER, "--transport", sim.moniker, "--json", "--tz", "Asia/Shanghai"
    )
    assert done.returncode == 0, done.stderr
    *readings, summary = json_lines(done.stdout)
    assert summary["type"] == "sync"
    assert summary["ok"] is True
    assert summary["readings"] == len(readings) == count
    assert summary["watermark"] == last
    assert [r["sequence_number"] for r in readings] == list(range(first, last + 1))
    assert {r["original_unit"] for r in readings} == {unit}
    for r in readings:
        assert r["type"] == "reading"
        assert r["glucose_mg_dl"] == pytest.approx(r["glucose_mmol_l"] * 18.0156, abs=0.06)
    # the hi_lo scenario: HI and LO are flagged and not patient values, never dropped
    hi_lo = [r for r in readings if {"high_out_of_range", "low_out_of_range"} & set(r["flags"])]
    assert hi_lo
    assert not any(r["patient_value"] for r in hi_lo)

    since = last - 7
    table = anjia("ble", "sync", METER, "--transport", sim.moniker, "--since", str(since))
    assert table.returncode == 0, table.stderr
    rows = [
        line.split() for line in table.stdout.splitlines() if re.match(r"\s+\d+\s+\d{4}-", line)
    ]
    assert [int(row[0]) for row in rows] == list(range(since + 1, last + 1))
    assert "mmol/L" in table.stdout
    assert "7 条读数 readings" in table.stdout
    assert f"watermark {last}" in table.stdout


def test_sync_without_pairing_is_a_one_line_device_error(sim: Sim) -> None:
    done = anjia("ble", "sync", METER, "--transport", sim.moniker, "--no-pair")
    assert done.returncode == 1
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1
    assert errors[0].startswith(f"error: {METER}: pair failed:")


def test_sync_the_cuff_delivers_every_unsent_reading(sim: Sim) -> None:
    pending = re.search(
        r"(\d+) unsent reading\(s\), users \[([\d, ]+)\] \((\S+)\)", sim.line_with(CUFF)
    )
    assert pending is not None
    users = {int(u) for u in pending[2].split(",")}
    done = anjia("ble", "sync", CUFF, "--transport", sim.moniker, "--json", "--idle", "3")
    assert done.returncode == 0, done.stderr
    *readings, summary = json_lines(done.stdout)
    assert summary["ok"] is True
    assert summary["kind"] == "blood_pressure_monitor"
    assert len(readings) == int(pending[1])
    assert {r["user_id"] for r in readings} == users
    assert {r["original_unit"] for r in readings} == {pending[3]}
    assert all(r["systolic_mmhg"] > r["diastolic_mmhg"] for r in readings)


def test_unknown_device_and_unreachable_transport_are_device_errors(sim: Sim) -> None:
    missing = anjia(
        "ble", "sync", "F0:5A:4A:00:00:99", "--transport", sim.moniker, "--timeout", "0.5"
    )
    assert missing.returncode == 1
    assert missing.stderr.strip().splitlines()[-1].startswith("error: F0:5A:4A:00:00:99: scan")
    port = free_port()  # nothing listens there
    for command in (["scan", "--timeout", "0.5"], ["sync", METER]):
        done = anjia("ble", *command, "--transport", f"tcp-client:127.0.0.1:{port}")
        assert done.returncode == 1
        assert done.stderr.strip().splitlines()[-1].startswith("error: Bluetooth unreachable")


@pytest.mark.parametrize(
    "args",
    [
        ["sync", METER, "--since", "70000"],
        ["sync", METER, "--since", "seven"],
        ["sync", METER, "--timeout", "0"],
        ["sync", METER, "--timeout", "2"],  # BlueZ needs at least 10 s
        ["sync", METER, "--tz", "Mars/Olympus", "--transport", "tcp-client:127.0.0.1:1"],
        ["scan", "--timeout", "-1"],
        ["sync"],
    ],
)
def test_usage_errors_exit_2(args: list[str]) -> None:
    done = anjia("ble", *args)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert done.stderr.strip()


def test_sim_saw_the_syncs(sim: Sim) -> None:
    """Last in this module: stop the simulator and read its report (RACP requests made)."""
    sim.process.send_signal(signal.SIGINT)
    report = sim.read_until("RACP request(s)")
    assert sim.process.wait(timeout=STEP_S) == 0
    match = re.search(r"(\d+) connection\(s\), (\d+) RACP request\(s\)", report)
    assert match is not None, report
    assert int(match[2]) >= 3  # full sync (1), count + report after --since (2)
