"""`anjia sim ...`: simulated meters on the command line.

``anjia sim run`` starts a glucose meter, a blood-pressure cuff or both as bumble GATT peripherals
filled from a seeded scenario, prints their addresses and what an observer hears them advertise,
and runs until Ctrl-C or ``--duration`` seconds. Without ``--transport`` everything stays in this
process (a smoke test of the simulator). With ``--transport tcp-server:_:9000`` the simulated air
gets one more virtual controller served on that transport, so a gateway in another process can
join with ``BumbleAir.from_moniker("tcp-client:127.0.0.1:9000")`` and scan, pair and sync.

``anjia sim scenarios`` lists the scenarios. See docs/simulator.md.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import sys
from collections.abc import Sequence
from dataclasses import fields
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from device_drivers.bumble_air import BumbleAir
    from firmware_sim.faults import Faults
    from firmware_sim.peripheral import SimCuff, SimMeter

__all__ = ["parse_faults", "register"]

EXIT_OK = 0
EXIT_USAGE = 2
READINGS_PER_DAY = 3  # a glucose meter's scenario yields a little over 3 tests a day
CUFF_DAYS_MAX = 14
OBSERVE_S = 0.5
DEFAULT_METER_ADDRESS = "F0:5A:4A:00:00:01"
DEFAULT_CUFF_ADDRESS = "F0:5A:4A:00:00:02"


class FaultArgumentError(ValueError):
    def __init__(self, text: str, fault: str) -> None:
        self.text = text
        self.fault = fault
        super().__init__(f"--fault {text}: {fault}")


def _int_set(text: str) -> frozenset[int]:
    return frozenset(int(part, 0) for part in text.split(",") if part.strip())


def _optional_int(text: str) -> int | None:
    return None if text.lower() in ("", "none") else int(text, 0)


def _bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"not a boolean: {text!r}")


_FAULT_PARSERS: dict[str, Any] = {
    "seed": int,
    "on_connections": _int_set,
    "disconnect_after_records": _optional_int,
    "drop_records": _int_set,
    "drop_probability": float,
    "duplicate_records": _int_set,
    "duplicate_probability": float,
    "truncate_records": _int_set,
    "reserved_sfloat_records": _int_set,
    "racp_response_code": _optional_int,
    "silent_racp": _bool,
    "lose_confirmations": _int_set,
    "unconnectable": _bool,
    "reset_sequence_on_connection": _optional_int,
    "clock_skew_s": float,
    "clock_drift_ppm": float,
    "clock_zone_offset_minutes": _optional_int,
}


def parse_faults(items: Sequence[str]) -> Faults:
    """``["disconnect_after_records=40", "on_connections=1"]`` -> :class:`Faults`."""
    from firmware_sim.errors import SimConfigError
    from firmware_sim.faults import Faults

    known = {f.name for f in fields(Faults)}
    assert known == set(_FAULT_PARSERS), "keep _FAULT_PARSERS in step with Faults"
    values: dict[str, Any] = {}
    for item in items:
        name, sep, raw = item.partition("=")
        name = name.strip().replace("-", "_")
        if not sep:
            raise FaultArgumentError(item, "expected NAME=VALUE")
        if name not in known:
            raise FaultArgumentError(item, f"unknown knob; known: {', '.join(sorted(known))}")
        try:
            values[name] = _FAULT_PARSERS[name](raw.strip())
        except ValueError as exc:
            raise FaultArgumentError(item, str(exc)) from exc
    try:
        return Faults(**values)
    except SimConfigError as exc:
        raise FaultArgumentError(" ".join(items), str(exc)) from exc


def _days_for(args: argparse.Namespace, min_days: int) -> int:
    if args.records is None:
        return max(args.days, min_days)
    return max(min_days, math.ceil(args.records / READINGS_PER_DAY) + 2)


async def _observe(air: BumbleAir, addresses: set[str]) -> dict[str, Any]:
    """Listen on the air like a gateway would, and return the advertisements heard."""
    observer = await air.create_device("anjia-observer")
    heard: dict[str, Any] = {}

    def on_advertisement(advertisement: Any) -> None:
        key = str(advertisement.address).split("/")[0]
        if key in addresses:
            heard[key] = advertisement

    observer.on("advertisement", on_advertisement)
    await observer.power_on()
    await observer.start_scanning(filter_duplicates=False)
    try:
        async with asyncio.timeout(OBSERVE_S):
            while len(heard) < len(addresses):  # noqa: ASYNC110 - bumble callbacks, no event
                await asyncio.sleep(0.01)
    except TimeoutError:
        pass
    await observer.stop_scanning()
    await observer.power_off()
    return heard


def _describe(advertisement: Any) -> str:
    data = advertisement.data
    uuids = data.get(data.Type.COMPLETE_LIST_OF_16_BIT_SERVICE_CLASS_UUIDS) or []
    appearance = data.get(data.Type.APPEARANCE, raw=True) or b""
    services = " ".join(f"0x{u.to_bytes()[::-1].hex().upper()}" for u in uuids)
    return (
        f"name={data.get(data.Type.COMPLETE_LOCAL_NAME)!s} services={services} "
        f"appearance=0x{int.from_bytes(appearance, 'little'):04X} "
        f"connectable={advertisement.is_connectable}"
    )


async def _run(args: argparse.Namespace, faults: Faults) -> int:
    from datetime import UTC, datetime

    from device_drivers.bumble_air import BumbleAir
    from firmware_sim.device_state import SimBpMonitor, SimGlucoseMeter
    from firmware_sim.peripheral import SimCuff, SimMeter
    from firmware_sim.scenarios import SCENARIOS, generate

    now = datetime.now(UTC)
    spec = SCENARIOS[args.scenario]
    days = _days_for(args, spec.min_days)
    data = generate(
        args.scenario, seed=args.seed, end=now, days=days, utc_offset_minutes=args.utc_offset
    )
    if args.records is not None:
        data = data.last_glucose(args.records)

    def true_clock() -> datetime:
        return datetime.now(UTC)

    air = BumbleAir()
    devices: list[SimMeter | SimCuff] = []
    try:
        if args.device in ("glucose", "both"):
            meter_state = SimGlucoseMeter(
                true_clock,
                samples=data.glucose,
                unit=args.glucose_unit,
                capacity=max(args.capacity, len(data.glucose)),
                faults=faults,
                household_utc_offset_minutes=args.utc_offset,
            )
            devices.append(
                await SimMeter(
                    air, meter_state, name=args.meter_name, address=args.meter_address
                ).start()
            )
        if args.device in ("bp", "both"):
            cutoff = now.timestamp() - min(days, CUFF_DAYS_MAX) * 86400
            cuff_state = SimBpMonitor(
                true_clock,
                samples=[s for s in data.blood_pressure if s.measured_at.timestamp() >= cutoff],
                unit=args.bp_unit,
                faults=faults,
                household_utc_offset_minutes=args.utc_offset,
            )
            devices.append(
                await SimCuff(
                    air,
                    cuff_state,
                    name=args.cuff_name,
                    address=args.cuff_address,
                    idle_disconnect_s=args.idle_disconnect,
                    indication_interval_s=args.indication_interval,
                ).start()
            )
        if args.transport:
            await air.expose(args.transport)
        _print_summary(args, devices, data.name, days)
        heard = await _observe(air, {d.address for d in devices})
        for device in devices:
            advertisement = heard.get(device.address)
            text = _describe(advertisement) if advertisement else "not heard (check --fault)"
            print(f"  advertising {device.address}: {text}")
        sys.stdout.flush()
        if args.duration is None:
            await asyncio.Event().wait()
        else:
            await asyncio.sleep(args.duration)
    finally:
        for device in devices:
            await device.stop()
        await air.close()
        _print_report(devices)
    return EXIT_OK


def _print_summary(
    args: argparse.Namespace, devices: Sequence[SimMeter | SimCuff], scenario: str, days: int
) -> None:
    from firmware_sim.peripheral import SimMeter

    print(f"安家模拟设备 Anjia simulator — scenario {scenario}, seed {args.seed}, {days} day(s)")
    for device in devices:
        if isinstance(device, SimMeter):
            records = device.state.records
            span = (
                f"seq {records[0].sequence_number}..{records[-1].sequence_number}"
                if records
                else "empty"
            )
            print(
                f"  血糖仪 glucose meter  {device.name}  {device.address}  "
                f"{len(records)} record(s) ({span}, {device.state.unit})"
            )
        else:
            users = sorted({r.user_id for r in device.state.pending if r.user_id is not None})
            print(
                f"  血压计 BP monitor     {device.name}  {device.address}  "
                f"{len(device.state.pending)} unsent reading(s), users {users} "
                f"({device.state.unit})"
            )
    if args.transport:
        port = args.transport.rsplit(":", 1)[-1]
        print(
            f"  transport {args.transport}: a gateway joins with "
            f'BumbleAir.from_moniker("tcp-client:127.0.0.1:{port}")'
        )
    else:
        print("  in-process only (add --transport tcp-server:_:9000 to let a gateway join)")


def _print_report(devices: Sequence[SimMeter | SimCuff]) -> None:
    from firmware_sim.peripheral import SimMeter

    for device in devices:
        clock_writes = len(device.state.clock.adjustments)
        if isinstance(device, SimMeter):
            print(
                f"  {device.name}: {device.connections} connection(s), "
                f"{len(device.racp_writes)} RACP request(s), clock set {clock_writes} time(s)"
            )
        else:
            print(
                f"  {device.name}: {device.connections} connection(s), "
                f"{len(device.state.delivered)} reading(s) delivered, "
                f"{len(device.state.pending)} pending, clock set {clock_writes} time(s)"
            )


def _cmd_run(args: argparse.Namespace) -> int:
    try:
        faults = parse_faults(args.fault or [])
    except FaultArgumentError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        return asyncio.run(_run(args, faults))
    except KeyboardInterrupt:
        return EXIT_OK


def _cmd_scenarios(_args: argparse.Namespace) -> int:
    from firmware_sim.scenarios import SCENARIOS

    for spec in SCENARIOS.values():
        print(f"{spec.name:32} {spec.summary_zh}")
        print(f"{'':32} {spec.summary_en}")
    return EXIT_OK


def _add_run(sim_sub: Any) -> None:
    from firmware_sim.scenarios import scenario_names

    parser = sim_sub.add_parser(
        "run",
        help="运行模拟血糖仪/血压计 / run simulated meters",
        description=(
            "运行模拟的蓝牙血糖仪和血压计（bumble GATT 外设）。Run simulated BLE glucose meter "
            "and blood-pressure cuff (bumble GATT peripherals) filled from a seeded scenario."
        ),
    )
    parser.add_argument("--device", choices=("glucose", "bp", "both"), default="both")
    parser.add_argument("--scenario", choices=scenario_names(), default="well_controlled")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--records", type=int, default=None, help="glucose records in the meter (newest kept)"
    )
    parser.add_argument("--days", type=int, default=14, help="days of history (without --records)")
    parser.add_argument("--capacity", type=int, default=1000, help="meter memory (records)")
    parser.add_argument(
        "--transport",
        default=os.environ.get("ANJIA_SIM__TRANSPORT") or None,
        help="bumble transport for a gateway in another process, e.g. tcp-server:_:9000 "
        "(default: $ANJIA_SIM__TRANSPORT, else in-process only)",
    )
    parser.add_argument(
        "--duration", type=float, default=None, help="seconds to run (default: until Ctrl-C)"
    )
    parser.add_argument("--glucose-unit", choices=("kg/L", "mol/L"), default="kg/L")
    parser.add_argument("--bp-unit", choices=("mmHg", "kPa"), default="mmHg")
    parser.add_argument(
        "--utc-offset", type=int, default=480, help="household zone in minutes (default +480)"
    )
    parser.add_argument(
        "--idle-disconnect", type=float, default=5.0, help="cuff hangs up after this idle time"
    )
    parser.add_argument(
        "--indication-interval",
        type=float,
        default=0.0,
        help="seconds between the cuff's stored-reading indications (default 0: at once)",
    )
    parser.add_argument("--meter-name", default="Anjia-GM")
    parser.add_argument("--cuff-name", default="Anjia-BP")
    # Fixed static random addresses outside BumbleAir's per-process C0:00:00:00:xx:xx counter,
    # so a gateway process whose central counts from C0:00:00:00:00:01 never collides with them.
    parser.add_argument("--meter-address", default=DEFAULT_METER_ADDRESS)
    parser.add_argument("--cuff-address", default=DEFAULT_CUFF_ADDRESS)
    parser.add_argument(
        "--fault",
        action="append",
        metavar="NAME=VALUE",
        help="a fault knob, repeatable: disconnect_after_records=40, on_connections=1, "
        "drop_probability=0.1, clock_zone_offset_minutes=0, silent_racp=true ...",
    )
    parser.set_defaults(func=_cmd_run)


def _add_scenarios(sim_sub: Any) -> None:
    parser = sim_sub.add_parser("scenarios", help="列出场景 / list the scenarios")
    parser.set_defaults(func=_cmd_scenarios)


def register(subparsers: Any) -> None:
    """Add ``sim`` and its sub-commands to the ``anjia`` parser (see gateway/cli.py)."""
    sim = subparsers.add_parser(
        "sim",
        help="模拟设备 / simulated meters (run, scenarios)",
        description="模拟的蓝牙健康设备。Simulated BLE health devices.",
    )
    sim_sub = sim.add_subparsers(dest="sim_command", metavar="SUBCOMMAND", required=True)
    _add_run(sim_sub)
    _add_scenarios(sim_sub)
