"""`make bench-ble`: decode throughput per characteristic, and a 500-record sync through our bleak
path beside bumble's own GATT client (documented in bench/README.md).

1. Decode: ``from_bytes`` of every codec in :mod:`device_drivers.codec` over realistic payloads
   (encoded with the codecs from full, plausible values), timed with :mod:`timeit` (autorange,
   best of ``--decode-repeat``), in operations per second.
2. Sync 500: one in-process bumble air with the simulated meter (:class:`firmware_sim.SimMeter`,
   500 stored records, context on most, clock right so nothing is written), bonded beforehand.
   * ours: ``connect_gatt_link`` (bleak ``BleakClient`` over our bumble backend: connect,
     encrypt with the bond, MTU, discovery) + ``GlucoseMeterDriver.fetch_since(None)`` (identity,
     battery, feature and Current Time reads, subscriptions, RACP ``01 01``, 500 records decoded,
     context joined, converted to readings) until the final RACP response.
   * bumble: bumble's ``Device.connect`` + ``encrypt`` + ``Peer`` discovery (services,
     characteristics, descriptors) + subscribe 0x2A18/0x2A34 (notify) and 0x2A52 (indicate) +
     write ``01 01`` + collect every notification until the final response ``06 00 01 01``.
   Each measured from the connect call to the final response; disconnect not counted. The two
   alternate, ``--repeat`` times each after one warm-up; medians are reported.

Writes bench/results/ble.json. ``--profile`` prints a cProfile of our path instead.

    .venv/bin/python bench/bench_ble.py [--repeat 9] [--records 500] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import platform
import pstats
import statistics
import sys
import time
import timeit
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from importlib.metadata import version
from pathlib import Path
from typing import Any

from bumble.core import UUID
from bumble.device import Device, Peer
from bumble.hci import Address
from bumble.keys import MemoryKeyStore
from bumble.pairing import PairingConfig, PairingDelegate

from device_drivers.bleak_link import connect_gatt_link
from device_drivers.bumble_air import BumbleAir
from device_drivers.codec.battery import BatteryLevel
from device_drivers.codec.blood_pressure import (
    BloodPressureFeature,
    BloodPressureMeasurement,
    IntermediateCuffPressure,
)
from device_drivers.codec.date_time import DateTime
from device_drivers.codec.device_info import PnpId, SystemId, decode_string
from device_drivers.codec.glucose import (
    GlucoseFeature,
    GlucoseMeasurement,
    GlucoseMeasurementContext,
)
from device_drivers.codec.racp import RacpMessage
from device_drivers.codec.sfloat import MedFloat, decode_float, decode_sfloat
from device_drivers.codec.time_service import CurrentTime
from device_drivers.driver import GlucoseMeterDriver
from firmware_sim.device_state import SimGlucoseMeter
from firmware_sim.peripheral import SimMeter
from firmware_sim.scenarios import GlucoseSample

RESULTS = Path(__file__).resolve().parent / "results" / "ble.json"
TZ_OFFSET_MIN = 480
GOAL_RATIO = 1.5
STEP_S = 30.0


# -- decode throughput --------------------------------------------------------------------------


def decode_cases() -> dict[str, tuple[Callable[[bytes], object], bytes]]:
    """Characteristic name -> (decoder, realistic wire payload)."""
    when = DateTime(2026, 11, 24, 7, 31, 5)
    glucose = GlucoseMeasurement(
        sequence_number=1234,
        base_time=when,
        time_offset_minutes=-60,
        concentration=MedFloat(101, -5),  # 101 mg/dL in kg/L
        concentration_unit="kg/L",
        type=2,
        sample_location=1,
        sensor_status=0x0001,
        context_information_follows=True,
    )
    context = GlucoseMeasurementContext(
        sequence_number=1234,
        extended_flags=None,
        carbohydrate_id=1,
        carbohydrate_kg=MedFloat(45, -3),
        meal=1,
        tester=1,
        health=5,
        exercise_duration_s=1800,
        exercise_intensity_pct=40,
        medication_id=1,
        medication=MedFloat(4, -3),
        medication_unit="L",
        hba1c_pct=MedFloat(62, -1),
    )
    pressure = BloodPressureMeasurement(
        systolic=MedFloat(128, 0),
        diastolic=MedFloat(82, 0),
        mean_arterial_pressure=MedFloat(97, 0),
        unit="mmHg",
        timestamp=when,
        pulse_rate=MedFloat(66, 0),
        user_id=1,
        measurement_status=0x0004,
    )
    cuff = IntermediateCuffPressure(
        cuff_pressure=MedFloat(146, 0),
        unit="mmHg",
        timestamp=None,
        pulse_rate=None,
        user_id=1,
        measurement_status=None,
    )
    return {
        "glucose_measurement": (GlucoseMeasurement.from_bytes, bytes(glucose)),
        "glucose_measurement_context": (GlucoseMeasurementContext.from_bytes, bytes(context)),
        "glucose_feature": (GlucoseFeature.from_bytes, bytes(GlucoseFeature(0x02FF))),
        "record_access_control_point": (
            RacpMessage.from_bytes,
            bytes(RacpMessage.report_greater_or_equal(1235)),
        ),
        "blood_pressure_measurement": (BloodPressureMeasurement.from_bytes, bytes(pressure)),
        "intermediate_cuff_pressure": (IntermediateCuffPressure.from_bytes, bytes(cuff)),
        "blood_pressure_feature": (
            BloodPressureFeature.from_bytes,
            bytes(BloodPressureFeature(0x003F)),
        ),
        "current_time": (
            CurrentTime.from_bytes,
            bytes(CurrentTime(when, day_of_week=2, fractions256=128, adjust_reason=2)),
        ),
        "date_time": (DateTime.from_bytes, bytes(when)),
        "battery_level": (BatteryLevel.from_bytes, bytes(BatteryLevel(86))),
        "system_id": (SystemId.from_bytes, bytes(SystemId(0x4A5A41B1CE, 0xE92A45))),
        "pnp_id": (PnpId.from_bytes, bytes(PnpId(1, 0x0059, 0x0001, 0x0100))),
        "model_number_string": (decode_string, b"AJ-G100"),
        "sfloat": (lambda b: decode_sfloat(int.from_bytes(b, "little")), bytes.fromhex("b076")),
        "float": (lambda b: decode_float(int.from_bytes(b, "little")), bytes.fromhex("87d612fe")),
    }


def decode_throughput(repeat: int, number: int | None = None) -> dict[str, float]:
    """ops/s per characteristic: best of ``repeat`` loops of ``number`` decodes (by default
    as many as take 0.2 s, timeit's autorange)."""
    out: dict[str, float] = {}
    for name, (decode, payload) in decode_cases().items():
        decode(payload)  # a malformed payload would fail here, not in the loop
        timer = timeit.Timer(lambda d=decode, p=payload: d(p))  # type: ignore[misc]
        loops = timer.autorange()[0] if number is None else number
        best = min(timer.repeat(repeat=repeat, number=loops)) / loops
        out[name] = round(1.0 / best)
    return out


# -- sync of 500 records ------------------------------------------------------------------------


def now() -> datetime:
    return datetime.now(UTC)


def samples(count: int) -> list[GlucoseSample]:
    start = now() - timedelta(hours=6 * count)
    return [
        GlucoseSample(
            start + timedelta(hours=6, seconds=i * 6 * 3600 + 17),
            4.5 + (i * 7 % 50) / 10,
            meal=None if i % 4 == 0 else 1 + i % 5,
            carbohydrate_id=1 if i % 4 == 1 else None,
            carbohydrate_g=45.0 if i % 4 == 1 else None,
        )
        for i in range(count)
    ]


class Bench:
    """One air, one simulated meter, our central (the air's) and a bare bumble central."""

    def __init__(self, records: int) -> None:
        self.records = records
        self.air = BumbleAir()
        self.state = SimGlucoseMeter(
            now,
            samples=samples(records),
            capacity=max(1000, records),
            household_utc_offset_minutes=TZ_OFFSET_MIN,
        )
        self.meter: SimMeter | None = None
        self.central: Device | None = None
        self.bumble_bonded = False

    @property
    def tz(self) -> Any:
        from datetime import timezone

        return timezone(timedelta(minutes=TZ_OFFSET_MIN))

    async def start(self) -> None:
        self.meter = await SimMeter(self.air, self.state).start()
        central = await self.air.create_device("bench-bumble")
        central.keystore = MemoryKeyStore()
        central.pairing_config_factory = lambda _c: PairingConfig(
            sc=True, mitm=False, bonding=True, delegate=PairingDelegate()
        )
        await central.power_on()
        self.central = central

    async def stop(self) -> None:
        if self.meter is not None:
            await self.meter.stop()
        if self.central is not None:
            await self.central.power_off()
        await self.air.close()

    async def ours(self) -> tuple[float, float]:
        """(connect to final response, connect + discovery) in seconds."""
        assert self.meter is not None
        started = time.perf_counter()
        link = await connect_gatt_link(self.meter.address, air=self.air, timeout_s=STEP_S)
        connected = time.perf_counter() - started
        try:
            result = await GlucoseMeterDriver(link, clock=now, tz=self.tz).fetch_since(None)
            elapsed = time.perf_counter() - started
        finally:
            await link.disconnect()
        if not result.ok or len(result.readings) != self.records or result.clock_written:
            raise RuntimeError(f"our sync went wrong: {result.failure_reason}")
        return elapsed, connected

    async def bumble(self) -> tuple[float, float]:
        """(connect to final response, connect + encryption + discovery) in seconds."""
        assert self.meter is not None
        assert self.central is not None
        address = Address(self.meter.address, Address.RANDOM_DEVICE_ADDRESS)
        started = time.perf_counter()
        connection = await self.central.connect(address, timeout=STEP_S)
        try:
            if self.bumble_bonded:
                await connection.encrypt()
            else:
                await connection.pair()
                self.bumble_bonded = True
            peer = Peer(connection)
            await peer.discover_services()
            await peer.discover_characteristics()
            for service in peer.services:
                for characteristic in service.characteristics:
                    await characteristic.discover_descriptors()
            connected = time.perf_counter() - started
            measurements: list[bytes] = []
            contexts: list[bytes] = []
            done: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

            def on_racp(value: bytes) -> None:
                if not done.done():
                    done.set_result(bytes(value))

            def char(uuid16: int) -> Any:
                return peer.get_characteristics_by_uuid(UUID.from_16_bits(uuid16))[0]

            await char(0x2A18).subscribe(measurements.append)
            await char(0x2A34).subscribe(contexts.append)
            await char(0x2A52).subscribe(on_racp, prefer_notify=False)
            await char(0x2A52).write_value(bytes.fromhex("0101"), with_response=True)
            async with asyncio.timeout(STEP_S):
                answer = await done
            elapsed = time.perf_counter() - started
        finally:
            await connection.disconnect()
        if answer != bytes.fromhex("06000101") or len(measurements) != self.records:
            raise RuntimeError(f"bumble sync went wrong: {answer.hex()} {len(measurements)}")
        return elapsed, connected


Runs = list[tuple[float, float]]


async def sync_times(records: int, repeat: int) -> tuple[Runs, Runs]:
    """``repeat`` alternating runs of each path after one warm-up each (pairing, caches)."""
    bench = Bench(records)
    await bench.start()
    try:
        await bench.ours()
        await bench.bumble()
        ours: Runs = []
        theirs: Runs = []
        for _ in range(repeat):
            ours.append(await bench.ours())
            theirs.append(await bench.bumble())
        return ours, theirs
    finally:
        await bench.stop()


async def profile_ours(records: int, repeat: int) -> None:
    bench = Bench(records)
    await bench.start()
    try:
        await bench.ours()
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(repeat):
            await bench.ours()
        profiler.disable()
    finally:
        await bench.stop()
    stats = pstats.Stats(profiler, stream=sys.stdout)
    stats.sort_stats("cumulative").print_stats(45)
    stats.sort_stats("tottime").print_stats(30)


# -- report -------------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    return {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": platform.processor() or None,
        "cpu_count": os.cpu_count(),
        "python_implementation": platform.python_implementation(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=9, help="sync repetitions (each path)")
    parser.add_argument("--decode-repeat", type=int, default=5)
    parser.add_argument("--profile", action="store_true", help="cProfile our path; no results")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.profile:
        asyncio.run(profile_ours(args.records, args.repeat))
        return

    load_before = os.getloadavg()[0]
    decode = decode_throughput(args.decode_repeat)
    ours_runs, bumble_runs = asyncio.run(sync_times(args.records, args.repeat))
    ours = [total for total, _ in ours_runs]
    theirs = [total for total, _ in bumble_runs]
    ours_s, bumble_s = statistics.median(ours), statistics.median(theirs)
    ours_connect_s = statistics.median(c for _, c in ours_runs)
    bumble_connect_s = statistics.median(c for _, c in bumble_runs)
    ratio = ours_s / bumble_s
    load = os.getloadavg()[0]

    print(f"decode throughput ({args.decode_repeat} repeats, best):")
    print(f"  {'characteristic':<30} {'ops/s':>12}")
    for name, ops in decode.items():
        print(f"  {name:<30} {ops:>12,}")
    print(
        f"\nsync of {args.records} stored records over the bumble link ({args.repeat} runs each):"
    )
    print(f"  {'path':<40} {'median s':>9} {'min s':>7} {'max s':>7} {'connect s':>10}")
    for label, times, connect_s in (
        ("ours (connect_gatt_link + fetch_since)", ours, ours_connect_s),
        ("bumble GATT client (Peer, RACP 01 01)", theirs, bumble_connect_s),
    ):
        print(
            f"  {label:<40} {statistics.median(times):>9.3f} {min(times):>7.3f} "
            f"{max(times):>7.3f} {connect_s:>10.3f}"
        )
    verdict = "ok" if ratio <= GOAL_RATIO else "ABOVE GOAL"
    print(f"  ratio ours/bumble: {ratio:.2f} (goal <= {GOAL_RATIO}: {verdict})")
    print(f"  load average 1 min: {load:.2f} (before: {load_before:.2f})")

    result = {
        "benchmark": "ble",
        "generated_at": now().isoformat(timespec="seconds"),
        "records": args.records,
        "repetitions": args.repeat,
        "sync_500_ours_s": round(ours_s, 4),
        "sync_500_bumble_s": round(bumble_s, 4),
        "sync_ratio": round(ratio, 3),
        "sync_goal_ratio": GOAL_RATIO,
        "sync_500_ours_connect_s": round(ours_connect_s, 4),
        "sync_500_bumble_connect_s": round(bumble_connect_s, 4),
        "sync_ours_runs_s": [round(t, 4) for t in ours],
        "sync_bumble_runs_s": [round(t, 4) for t in theirs],
        "decode_ops_per_s": decode,
        "decode_repeat": args.decode_repeat,
        "python": platform.python_version(),
        "bumble": version("bumble"),
        "bleak": version("bleak"),
        "machine": machine(),
        "load_avg_1m": round(load, 2),
        "load_avg_1m_before": round(load_before, 2),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    print(f"\nwrote {args.output}")


if __name__ == "__main__":
    main()
