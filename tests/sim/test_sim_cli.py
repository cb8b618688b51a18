"""`anjia sim run` in its own process, reached by a central in the test process over a TCP HCI
transport (the way a gateway on another process joins the simulated air), plus argument errors.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import sys
from collections.abc import AsyncIterator

import pytest
from bumble.core import UUID
from bumble.device import Peer
from bumble.hci import Address
from bumble.pairing import PairingConfig, PairingDelegate

from device_drivers.bumble_air import BumbleAir
from device_drivers.codec.glucose import GlucoseMeasurement
from firmware_sim.cli import FaultArgumentError, parse_faults
from gateway.cli import main

pytestmark = pytest.mark.sim

STEP_S = 5.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def read_until(stream: asyncio.StreamReader, marker: str, lines: list[str]) -> None:
    async with asyncio.timeout(STEP_S * 2):
        while True:
            raw = await stream.readline()
            if not raw:
                raise AssertionError(f"process ended before {marker!r}: {lines}")
            lines.append(raw.decode())
            if marker in lines[-1]:
                return


@pytest.fixture
async def sim_process() -> AsyncIterator[tuple[asyncio.subprocess.Process, int, list[str]]]:
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway.cli",
        "sim",
        "run",
        "--device",
        "glucose",
        "--scenario",
        "hi_lo",
        "--seed",
        "4",
        "--records",
        "120",
        "--transport",
        f"tcp-server:127.0.0.1:{port}",
        "--duration",
        "30",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    lines: list[str] = []
    try:
        assert process.stdout is not None
        await read_until(process.stdout, "advertising", lines)
        yield process, port, lines
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()


async def test_gateway_in_another_process_syncs_the_cli_meter(
    sim_process: tuple[asyncio.subprocess.Process, int, list[str]],
) -> None:
    process, port, lines = sim_process
    assert any("120 record(s) (seq 1..120, kg/L)" in line for line in lines)
    meter_line = next(line for line in lines if "glucose meter" in line)
    address = meter_line.split()[4]
    air = BumbleAir.from_moniker(f"tcp-client:127.0.0.1:{port}")
    try:
        central = await air.central_device()
        central.pairing_config_factory = lambda _c: PairingConfig(
            sc=True, mitm=False, bonding=True, delegate=PairingDelegate()
        )
        connection = await central.connect(
            Address(address, Address.RANDOM_DEVICE_ADDRESS), timeout=STEP_S
        )
        await connection.pair()
        peer = Peer(connection)
        await peer.discover_services()
        await peer.discover_characteristics()

        def char(uuid16: int) -> object:
            return peer.get_characteristics_by_uuid(UUID.from_16_bits(uuid16))[0]

        measurements: list[bytes] = []
        answers: asyncio.Queue[bytes] = asyncio.Queue()
        await char(0x2A18).subscribe(measurements.append)  # type: ignore[attr-defined]
        await char(0x2A52).subscribe(answers.put_nowait, prefer_notify=False)  # type: ignore[attr-defined]
        await char(0x2A52).write_value(bytes.fromhex("0101"), with_response=True)  # type: ignore[attr-defined]
        async with asyncio.timeout(STEP_S):
            assert await answers.get() == bytes.fromhex("06000101")
        records = [GlucoseMeasurement.from_bytes(m) for m in measurements]
        assert [r.sequence_number for r in records] == list(range(1, 121))
        statuses = {r.sensor_status for r in records}
        assert {0x20, 0x40} <= statuses  # the scenario's HI and LO made it over the transport
        await connection.disconnect()
    finally:
        await air.close()
    process.send_signal(signal.SIGINT)  # Ctrl-C: a clean stop with a report
    assert process.stdout is not None
    async with asyncio.timeout(STEP_S):
        rest = (await process.stdout.read()).decode()
        assert await process.wait() == 0
    assert "1 connection(s), 1 RACP request(s)" in rest


def test_fault_arguments() -> None:
    faults = parse_faults(
        [
            "disconnect_after_records=40",
            "on_connections=1,3",
            "drop_probability=0.25",
            "silent-racp=yes",
            "clock_zone_offset_minutes=0",
        ]
    )
    assert faults.disconnect_after_records == 40
    assert faults.on_connections == frozenset({1, 3})
    assert faults.drop_probability == 0.25
    assert faults.silent_racp is True
    assert faults.clock_zone_offset_minutes == 0
    for bad in ("nope=1", "drop_probability", "drop_probability=lots", "drop_probability=2"):
        with pytest.raises(FaultArgumentError):
            parse_faults([bad])


def test_bad_fault_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sim", "run", "--fault", "drop_probability=2", "--duration", "0"]) == 2
    assert "drop_probability" in capsys.readouterr().err


def test_in_process_run_prints_what_is_advertised(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "sim",
            "run",
            "--device",
            "bp",
            "--scenario",
            "sustained_home_hypertension",
            "--days",
            "7",
            "--bp-unit",
            "kPa",
            "--duration",
            "0",
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "血压计 BP monitor" in out
    assert "(kPa)" in out
    assert "services=0x1810" in out
    assert "connectable=True" in out
    assert "glucose meter" not in out
