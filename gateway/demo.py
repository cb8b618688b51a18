"""`anjia demo`: the whole loop on one machine, on embedded defaults (nothing to install by hand).

A simulated household (a glucose meter and a blood-pressure cuff, real bumble GATT peripherals) is
synced through the bleak API over the simulated air, exactly as the gateway syncs real meters; the
readings go through the edge pipeline (quality flags, dedupe, local urgent rules) and are printed
with any local alert. See docs/demo.md.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from device_drivers.bumble_air import BumbleAir
    from device_drivers.driver import SyncResult

__all__ = ["register"]

EXIT_OK = 0
EXIT_FAILED = 1
SHOWN_PER_DEVICE = 12


def _now() -> datetime:
    return datetime.now(UTC)


def _step(text: str) -> None:
    print(f"\n▶ {text}", flush=True)


async def _sync_meter(air: BumbleAir, address: str) -> SyncResult:
    from device_drivers.bleak_link import connect_gatt_link
    from device_drivers.driver import GlucoseMeterDriver
    from gateway.demo_household import HOUSEHOLD_TZ

    link = await connect_gatt_link(address, air=air)
    try:
        return await GlucoseMeterDriver(link, clock=_now, tz=HOUSEHOLD_TZ).fetch_since(None)
    finally:
        await link.disconnect()


async def _sync_cuff(air: BumbleAir, address: str) -> SyncResult:
    from device_drivers.bleak_link import connect_gatt_link
    from device_drivers.driver import BloodPressureDriver
    from gateway.demo_household import HOUSEHOLD_TZ

    link = await connect_gatt_link(address, air=air)
    try:
        return await BloodPressureDriver(link, clock=_now, tz=HOUSEHOLD_TZ).collect()
    finally:
        await link.disconnect()


def _print_sync(title: str, result: SyncResult, seconds: float) -> None:
    from gateway.demo_household import HOUSEHOLD_TZ
    from gateway.demo_report import reading_lines

    device = result.device
    status = "成功 ok" if result.ok else f"失败 failed at {result.failure_stage}"
    skew = f"{round(result.clock_skew_s):+d} s" if result.clock_skew_s is not None else "—"
    battery = f"{result.battery_percent}%" if result.battery_percent is not None else "—"
    print(
        f"  {title}: {len(result.readings)} 条读数 readings in {seconds:.1f} s, {status}; "
        f"型号 model {device.model_number or '?'}, 电量 battery {battery}, "
        f"时钟偏差 clock skew {skew}"
    )
    for line in reading_lines(result.readings, HOUSEHOLD_TZ, limit=SHOWN_PER_DEVICE):
        print(f"    {line}")


async def _run(args: argparse.Namespace) -> int:
    from device_drivers.bumble_air import BumbleAir
    from edge.pipeline import EdgeState, process
    from gateway.demo_household import CUFF_ADDRESS, METER_ADDRESS, measure_now, start_household

    print("安家 Anjia 演示 demo — 模拟家庭 simulated household, 全部在本机 all on this machine")
    air = BumbleAir()
    try:
        _step("启动模拟设备 starting simulated meters (bumble GATT peripherals)")
        sims = await start_household(
            air,
            glucose_scenario=args.glucose_scenario,
            bp_scenario=args.bp_scenario,
            seed=args.seed,
            records=args.records,
        )
        print(f"  血糖仪 glucose meter {METER_ADDRESS}: {len(sims.meter.state.records)} records")
        print(f"  血压计 BP monitor    {CUFF_ADDRESS}: {len(sims.cuff.state.pending)} unsent")
        fresh = measure_now(sims, systolic=args.now_systolic, diastolic=args.now_diastolic)
        print(
            f"  刚刚测量 just measured: 用户 user {fresh.user_id} "
            f"{fresh.systolic_mmhg}/{fresh.diastolic_mmhg} mmHg"
        )
        try:
            _step("通过 bleak 同步 syncing through bleak over the simulated air (pair, RACP)")
            started = time.perf_counter()
            meter = await _sync_meter(air, METER_ADDRESS)
            _print_sync("血糖仪 glucose meter", meter, time.perf_counter() - started)
            started = time.perf_counter()
            cuff = await _sync_cuff(air, CUFF_ADDRESS)
            _print_sync("血压计 BP monitor", cuff, time.perf_counter() - started)
        finally:
            await sims.stop()
        _step("边缘处理 edge processing (quality flags, dedupe, local urgent rules)")
        batch = process([*meter.readings, *cuff.readings], _now(), EdgeState.initial())
        stats = batch.stats
        print(
            f"  {stats.received} received, {stats.published} to publish, "
            f"{stats.duplicates} duplicates, {sum(stats.flags_added.values())} flags added"
        )
        if not batch.local_alerts:
            print("  无本地紧急提醒 no local urgent alert")
        for alert in batch.local_alerts:
            print(f"  ⚠ 本地紧急提醒 {alert.message_zh}")
            print(f"    local urgent alert: {alert.message_en}")
        return EXIT_OK if meter.ok and cuff.ok else EXIT_FAILED
    finally:
        await air.close()


def _cmd_demo(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(_run(args))
    except KeyboardInterrupt:
        return EXIT_OK


def register(subparsers: Any) -> None:
    """Add ``demo`` to the ``anjia`` parser (see gateway/cli.py)."""
    from firmware_sim.scenarios import scenario_names

    parser = subparsers.add_parser(
        "demo",
        help="在本机演示整个流程 / run the whole loop on this machine",
        description=(
            "模拟一个家庭的血糖仪和血压计，通过 bleak 同步并处理读数。A simulated household's "
            "meters synced through bleak over a real BLE stack, processed at the edge."
        ),
    )
    parser.add_argument(
        "--glucose-scenario", choices=scenario_names(), default="nocturnal_level2_hypoglycaemia"
    )
    parser.add_argument("--bp-scenario", choices=scenario_names(), default="hypertensive_crisis")
    parser.add_argument("--records", type=int, default=60, help="glucose records in the meter")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--now-systolic", type=int, default=186, help="a blood pressure measured just now (mmHg)"
    )
    parser.add_argument("--now-diastolic", type=int, default=112)
    parser.set_defaults(func=_cmd_demo)
