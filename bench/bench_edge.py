"""Throughput of edge.pipeline.process() on 100,000 readings (not a timed test).

Builds a seeded batch like a busy gateway's backlog (glucose meters and cuffs, some resent records,
some without device time, a few urgent values), then times process() with an empty state and with
a state that has already seen half of the batch. Prints readings/s beside a bare loop that only
reads each reading's identity (the floor any per-reading Python work pays).

    .venv/bin/python bench/bench_edge.py [--readings 100000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from datetime import UTC, datetime, timedelta

from device_drivers.model import (
    BloodPressureReading,
    DeviceIdentity,
    DeviceKind,
    GlucoseReading,
    Reading,
    ReadingFlag,
)
from edge.pipeline import EdgeState, process

NOW = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)


def make_batch(n: int, seed: int = 7) -> list[Reading]:
    rng = random.Random(seed)
    meters = [
        DeviceIdentity(
            f"C0:00:00:00:{i >> 8:02X}:{i & 255:02X}", DeviceKind.GLUCOSE_METER, f"{i:016x}"
        )
        for i in range(200)
    ]
    cuffs = [
        DeviceIdentity(
            f"C1:00:00:00:{i >> 8:02X}:{i & 255:02X}",
            DeviceKind.BLOOD_PRESSURE_MONITOR,
            serial_number=f"S{i}",
        )
        for i in range(200)
    ]
    seq = [0] * len(meters)
    # each meter's records run forward in time with its sequence numbers, over the last 30 days
    clock = [NOW - timedelta(days=30)] * len(meters)
    step = timedelta(seconds=30 * 86_400 * len(meters) * 0.6 / n)
    out: list[Reading] = []
    while len(out) < n:
        at = NOW - timedelta(seconds=rng.randrange(0, 30 * 86_400))
        if rng.random() < 0.6:
            m = rng.randrange(len(meters))
            seq[m] += 1
            clock[m] += step * rng.uniform(0.5, 1.5)
            at = min(clock[m], NOW)
            value = rng.gauss(7.5, 2.5) if rng.random() > 0.01 else 2.4
            out.append(
                GlucoseReading(
                    device=meters[m],
                    sequence_number=seq[m],
                    device_time=(at + timedelta(hours=8)).replace(tzinfo=None),
                    measured_at=at,
                    received_at=NOW,
                    glucose_mmol_l=round(value, 1),
                    original_value=round(value, 1) / 1000,
                    original_unit="mol/L",
                    sample_type=1,
                    sample_location=1,
                    clock_skew_s=3.0,
                )
            )
        else:
            systolic = round(rng.gauss(135, 18))
            no_time = rng.random() < 0.05
            out.append(
                BloodPressureReading(
                    device=cuffs[rng.randrange(len(cuffs))],
                    device_time=None if no_time else (at + timedelta(hours=8)).replace(tzinfo=None),
                    measured_at=None if no_time else at,
                    received_at=NOW,
                    systolic_mmhg=float(systolic),
                    diastolic_mmhg=float(round(systolic * 0.62)),
                    mean_arterial_mmhg=None,
                    pulse_bpm=float(rng.randrange(55, 100)),
                    original_unit="mmHg",
                    user_id=rng.choice((1, 2)),
                    flags=frozenset({ReadingFlag.NO_DEVICE_TIME}) if no_time else frozenset(),
                )
            )
        if rng.random() < 0.02:  # a resent record
            out.append(out[-1])
    return out[:n]


def timed(fn: object, repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()  # type: ignore[operator]
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readings", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    batch = make_batch(args.readings)
    n = len(batch)
    empty = EdgeState.initial(window=n)
    warm = process(batch[: n // 2], NOW, EdgeState.initial(window=n)).state

    bare = timed(lambda: [r.identity for r in batch], args.repeat)
    cold = timed(lambda: process(batch, NOW, empty), args.repeat)
    seen = timed(lambda: process(batch, NOW, warm), args.repeat)
    result = process(batch, NOW, empty)
    print(f"edge.process over {n:,} readings (median of {args.repeat})")
    print(f"{'path':<44}{'s':>8}{'readings/s':>14}{'us/reading':>12}")
    for name, secs in (
        ("bare loop: reading.identity only", bare),
        ("process(), empty state", cold),
        ("process(), half the batch already seen", seen),
    ):
        print(f"{name:<44}{secs:>8.3f}{n / secs:>14,.0f}{secs / n * 1e6:>12.2f}")
    s = result.stats
    print(
        f"published {s.published:,}, duplicates {s.duplicates:,}, flags added "
        f"{sum(s.flags_added.values()):,}, local alerts {s.local_alerts:,} "
        f"(too old to act on: {s.urgent_too_old:,})"
    )


if __name__ == "__main__":
    main()
