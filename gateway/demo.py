"""`anjia demo`: the whole loop on one machine, on embedded defaults (nothing to install by hand).

An embedded MQTT broker (amqtt) and the cloud (API + ingest on SQLite) start; a clinic provisions a
household over the REST API; the household's meters (real bumble GATT peripherals) hold a seeded
scenario and someone measures a blood pressure just now; the household's gateway daemon receives its
enrollment from the cloud, syncs the meters through bleak, raises a local urgent alert at home and
publishes to the broker; the cloud stores the readings and the family doctor reads them through the
API and FHIR. See docs/demo.md.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gateway.demo_cloud import DemoCloud
    from gateway.demo_gateway import DemoGateway
    from gateway.demo_provision import DemoAccounts
    from gateway.demo_watch import BrokerWatch

__all__ = ["register"]

EXIT_OK = 0
EXIT_FAILED = 1
POLL_S = 0.5


def _step(text: str) -> None:
    print(f"\n▶ {text}", flush=True)


def _print_alerts(gateway: DemoGateway) -> None:
    for alert in gateway.take_alerts():
        print(f"  ⚠ 本地紧急提醒 local urgent alert (at home): {alert.message_zh}", flush=True)
        print(f"      {alert.message_en}", flush=True)


def _print_events(watch: BrokerWatch) -> None:
    for event in watch.take_events():
        mark = "⚠" if event.severity == "critical" else "•"
        print(f"  {mark} 网关事件 gateway event [{event.type}] {event.message_zh}", flush=True)
        if event.message_en:
            print(f"      {event.message_en}", flush=True)


async def _readings_by_name(
    cloud: DemoCloud, token: str, accounts: DemoAccounts
) -> dict[str, list[dict[str, Any]]]:
    """Each person's readings as the doctor sees them through the API."""
    return {
        name: await cloud.call(
            "GET", f"/persons/{person_id}/readings", token=token, query={"limit": "5000"}
        )
        for name, person_id in accounts.persons.items()
    }


async def _wait_for_readings(
    cloud: DemoCloud,
    gateway: DemoGateway,
    watch: BrokerWatch,
    token: str,
    accounts: DemoAccounts,
    expected: int,
    timeout_s: float,
) -> dict[str, list[dict[str, Any]]]:
    from gateway.demo_doctor_view import reading_count

    deadline = time.monotonic() + timeout_s
    shown = -1
    while True:
        gateway.check()
        _print_alerts(gateway)
        _print_events(watch)
        readings = await _readings_by_name(cloud, token, accounts)
        count = reading_count(readings)
        if count != shown:
            print(f"  云端已存 stored in the cloud: {count}/{expected} 条读数 readings", flush=True)
            shown = count
        if count >= expected or time.monotonic() > deadline:
            return readings
        await asyncio.sleep(POLL_S)


def _print_status(watch: BrokerWatch) -> None:
    status = watch.latest_status()
    if status is None:
        print("  (尚无网关状态 no gateway status yet)")
        return
    pending = status.outbox.pending if status.outbox is not None else "?"
    print(f"  网关 gateway {status.gateway_id}: {status.state}, 待发 outbox pending {pending}")
    for device in status.devices:
        ok = {True: "成功 ok", False: f"失败 failed ({device.failure_stage})", None: "—"}
        skew = f"{round(device.clock_skew_s):+d} s" if device.clock_skew_s is not None else "—"
        battery = f"{device.battery_pct}%" if device.battery_pct is not None else "—"
        print(
            f"    {device.label or device.kind}: 上次同步 last sync {ok[device.last_sync_ok]}, "
            f"{device.readings_synced} 条 readings, 电量 battery {battery}, 时钟偏差 skew {skew}"
        )


async def _print_fhir(cloud: DemoCloud, token: str, accounts: DemoAccounts) -> None:
    for name, person_id in accounts.persons.items():
        bundle = await cloud.call(
            "GET", "/fhir/Observation", token=token, query={"patient": person_id, "_count": "100"}
        )
        entries = bundle.get("entry") or []
        codes = sorted(
            {
                coding.get("display") or coding.get("code")
                for entry in entries
                for coding in entry["resource"]["code"]["coding"][:1]
            }
        )
        more = (
            " (第一页 first page)"
            if any(link["relation"] == "next" for link in bundle.get("link", []))
            else ""
        )
        print(f"  {name}: {len(entries)} 个 Observation{more}: {', '.join(codes)}")


def _quiet_expected_warnings() -> None:
    """The demo's own state, said once in its output instead of as log warnings: development
    keys on a throwaway database, and local alerts (printed by the demo as they are raised)."""
    if logging.getLogger().getEffectiveLevel() >= logging.WARNING:
        for name in ("cloud.runtime", "gateway.ingest"):
            logging.getLogger(name).setLevel(logging.ERROR)


async def _run(args: argparse.Namespace) -> int:
    from device_drivers.bumble_air import BumbleAir
    from firmware_sim.device_base import DeviceInformation
    from gateway.demo_cloud import DemoBroker, DemoCloud
    from gateway.demo_doctor_view import doctor_view_lines, reading_count
    from gateway.demo_gateway import DemoGateway, demo_gateway_settings
    from gateway.demo_household import (
        CUFF_ADDRESS,
        HOUSEHOLD_TZ,
        HOUSEHOLD_TZ_NAME,
        METER_ADDRESS,
        measure_now,
        start_household,
    )
    from gateway.demo_provision import CLINIC_NAME, DOCTOR_NAME, provision_household
    from gateway.demo_watch import BrokerWatch

    _quiet_expected_warnings()
    print(
        "安家 Anjia 演示 demo — 模拟家庭到家庭医生 simulated household to family doctor, 全在本机"
    )
    with tempfile.TemporaryDirectory(prefix="anjia-demo-") as tmp:
        directory = Path(tmp)
        air = BumbleAir()
        broker = cloud = sims = gateway = watch = None
        try:
            _step("启动消息代理和云端 starting the MQTT broker (amqtt) and the cloud (API, ingest)")
            broker = await DemoBroker().start()
            cloud = await DemoCloud(directory, broker.port).start()
            print(f"  broker mqtt://127.0.0.1:{broker.port}, API {cloud.base_url}/docs")
            print("  (演示用开发密钥和临时数据库 development keys, a throwaway SQLite database)")

            _step("社区诊所登记家庭 the clinic provisions the household over the REST API")
            accounts = await provision_household(
                cloud,
                DeviceInformation.glucose_meter(),
                DeviceInformation.bp_monitor(),
                meter_address=METER_ADDRESS,
                cuff_address=CUFF_ADDRESS,
            )
            print(f"  {CLINIC_NAME}, 家庭医生 family doctor {DOCTOR_NAME}")
            print(f"  家庭成员 persons: {', '.join(accounts.persons)}")
            print(f"  网关 gateway {accounts.gateway_uid} (MQTT 凭据仅显示一次 shown once)")

            _step("启动模拟设备 the household's meters (bumble GATT peripherals)")
            sims = await start_household(
                air,
                glucose_scenario=args.glucose_scenario,
                bp_scenario=args.bp_scenario,
                seed=args.seed,
                records=args.records,
            )
            stored = len(sims.meter.state.records)
            unsent = len(sims.cuff.state.pending)
            print(f"  血糖仪 glucose meter {METER_ADDRESS}: {stored} records")
            print(f"  血压计 BP monitor    {CUFF_ADDRESS}: {unsent} unsent")
            fresh = measure_now(sims, systolic=args.now_systolic, diastolic=args.now_diastolic)
            print(
                f"  刚刚测量 just measured: 用户 user {fresh.user_id} "
                f"{fresh.systolic_mmhg}/{fresh.diastolic_mmhg} mmHg"
            )

            _step(
                "家庭网关 the gateway: config from the cloud, sync through bleak, MQTT to the cloud"
            )
            watch = BrokerWatch(broker.port, accounts.gateway_uid).start()
            settings = demo_gateway_settings(accounts, broker.port, directory, HOUSEHOLD_TZ_NAME)
            gateway = DemoGateway(settings, air).start()
            token = await cloud.login(accounts.doctor_username, accounts.doctor_password)
            expected = stored + unsent + 1
            readings = await _wait_for_readings(
                cloud, gateway, watch, token, accounts, expected, args.timeout
            )
            await asyncio.sleep(0.5)  # the status after the last sync
            _print_alerts(gateway)
            _print_events(watch)
            _print_status(watch)

            _step(f"家庭医生 {DOCTOR_NAME} 查看 the family doctor reads the records (API)")
            for line in doctor_view_lines(readings, HOUSEHOLD_TZ, limit=args.shown):
                print(f"  {line}")
            _step("FHIR 健康档案 the same records as FHIR R4 (/fhir/Observation)")
            await _print_fhir(cloud, token, accounts)
            if reading_count(readings) < expected:
                print(f"\n✗ 超时 timed out: {reading_count(readings)}/{expected} readings arrived")
                return EXIT_FAILED
            print("\n✓ 完成 done: every reading reached the family doctor's record")
            return EXIT_OK
        finally:
            for stop in (
                gateway.stop if gateway else None,
                sims.stop if sims else None,
                cloud.stop if cloud else None,
                broker.stop if broker else None,
            ):
                if stop is not None:
                    await stop()
            if watch is not None:
                watch.stop()
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
            "模拟家庭的血糖仪和血压计 -> 网关 -> MQTT -> 云端 -> 家庭医生。A simulated household's "
            "meters, its gateway, an embedded MQTT broker and the cloud, all on this machine."
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
    parser.add_argument("--shown", type=int, default=6, help="newest readings shown per person")
    parser.add_argument(
        "--timeout", type=float, default=90.0, help="seconds to wait for every reading"
    )
    parser.set_defaults(func=_cmd_demo)
