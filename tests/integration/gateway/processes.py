"""The simulator and the gateway daemon as processes of their own (`anjia sim run`, `anjia
gateway run`), for the process-level tests and bench/bench_gateway.py."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from tests.brokers import free_port, wait_for_port

ANJIA = [sys.executable, "-m", "gateway.cli"]


def wait(predicate: Callable[[], bool], timeout_s: float) -> bool:
    """``predicate()`` once true, or its last value after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def spawn_simulator(args: Sequence[str], out: Path) -> tuple[subprocess.Popen[bytes], int]:
    """``anjia sim run ARGS`` serving its devices on a free TCP port, its output in ``out``:
    (the process, the port)."""
    port = free_port()
    with out.open("w") as sink:
        proc = subprocess.Popen(
            [*ANJIA, "sim", "run", *args, "--transport", f"tcp-server:_:{port}"],
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    return proc, port


def await_simulator(out: Path, port: int, devices: int = 1, timeout_s: float = 20) -> str:
    """Until the simulator advertises ``devices`` devices and listens; its output so far.
    Raises TimeoutError (with that output) otherwise."""
    if not wait(lambda: out.read_text().count("advertising F0:") >= devices, timeout_s):
        raise TimeoutError(f"the simulator did not advertise:\n{out.read_text()[-3000:]}")
    wait_for_port(port)
    return out.read_text()


def start_gateway(config: Path, log: Path) -> subprocess.Popen[bytes]:
    """``anjia -v gateway run --config CONFIG``, its output appended to ``log``."""
    with log.open("ab") as sink:
        return subprocess.Popen(
            [*ANJIA, "-v", "gateway", "run", "--config", str(config)],
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
