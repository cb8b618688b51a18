"""`anjia ble scan` and `anjia ble sync ADDRESS`: field work with a real or a simulated meter.

Both use :mod:`device_drivers.bleak_link`: without ``--transport`` bleak's OS backend (BlueZ on
Linux); with ``--transport MONIKER`` our bumble backends on that bumble HCI transport
(``tcp-client:127.0.0.1:9000`` to reach ``anjia sim run --transport tcp-server:...``, ``usb:0``
for a dongle driven from user space). ``sync`` connects (pairing unless ``--no-pair``), picks the
driver from the discovered services (glucose 0x1808, blood pressure 0x1810) and prints the readings:
a zh-CN/English table by default (glucose in mmol/L, pressure in mmHg), or JSON lines with
``--json`` (one object per reading, then one ``"type": "sync"`` summary).

Exit status: 0 done; 1 device error (not found, pairing, link lost, transfer failed, no
supported service, transport or Bluetooth stack unreachable), one line ``error: ...`` on stderr;
2 usage (bad option values). IO, CLI only (prints).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, tzinfo
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from device_drivers.bleak_link import BleakGattLink, ScanResult
    from device_drivers.bumble_air import BumbleAir
    from device_drivers.driver import SyncResult
    from device_drivers.errors import DeviceUnavailableError
    from device_drivers.model import BloodPressureReading, GlucoseReading, Reading

__all__ = ["add_scan", "add_sync", "reading_json", "sync_summary_json"]

EXIT_OK: Final = 0
EXIT_DEVICE: Final = 1
EXIT_USAGE: Final = 2
EXIT_INTERRUPTED: Final = 130

SCAN_SECONDS: Final = 5.0
CONNECT_SECONDS: Final = 20.0
HEALTH_SERVICES: Final = (0x1808, 0x1810)

_KIND_LABELS: Final = {
    "glucose_meter": "血糖仪 glucose meter",
    "blood_pressure_monitor": "血压计 BP monitor",
}


class UsageError(ValueError):
    """A bad option value (exit 2)."""


def _now() -> datetime:
    return datetime.now(UTC)


def _error(text: str) -> None:
    print(f"error: {text}", file=sys.stderr)


def _zone(name: str | None) -> tzinfo:
    """The household's zone: an IANA name, or the machine's local zone."""
    if name is None:
        local = datetime.now().astimezone().tzinfo
        return local if local is not None else UTC
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise UsageError(f"--tz {name}: unknown time zone") from exc


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from exc
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be > 0")
    return value


def _sequence_number(text: str) -> int:
    try:
        value = int(text, 0)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from exc
    if not 0 <= value <= 0xFFFF:
        raise argparse.ArgumentTypeError(f"{value} is not a sequence number (0..65535)")
    return value


def _unavailable(exc: DeviceUnavailableError, transport: str | None) -> str:
    """One line for a device-layer error; says which Bluetooth stack was out of reach."""
    cause = exc.__cause__
    if isinstance(cause, OSError) and not isinstance(cause, TimeoutError):
        where = (
            f"nothing serves --transport {transport}" if transport else "BlueZ/D-Bus not running"
        )
        return f"Bluetooth unreachable ({where}): {exc.reason}"
    return f"{exc.address}: {exc.stage.value} failed: {exc.reason}"


def _air(moniker: str | None) -> BumbleAir | None:
    if moniker is None:
        return None
    from device_drivers.bumble_air import BumbleAir

    return BumbleAir.from_moniker(moniker)


# -- scan ---------------------------------------------------------------------------------------


def _kind_of(uuid16s: Sequence[int]) -> str | None:
    from device_drivers.registry import kind_for_services

    kind = kind_for_services(uuid16s)
    return None if kind is None else kind.value


def scan_json(result: ScanResult) -> dict[str, Any]:
    return {
        "type": "device",
        "address": result.address,
        "name": result.name,
        "rssi": result.rssi,
        "kind": _kind_of(result.service_uuid16s),
        "services": [f"0x{u:04x}" for u in result.service_uuid16s],
        "service_uuids": list(result.service_uuids),
        "tx_power": result.tx_power,
    }


def _print_scan_table(results: Sequence[ScanResult], seconds: float) -> None:
    print(f"找到 {len(results)} 台设备 found {len(results)} device(s) in {seconds:g} s")
    if not results:
        return
    print(f"{'地址 address':<20} {'信号 RSSI':>9}  {'类型 kind':<22} {'名称 name':<18} services")
    for r in results:
        kind = _KIND_LABELS.get(_kind_of(r.service_uuid16s) or "", "—")
        services = ",".join(f"0x{u:04x}" for u in r.service_uuid16s) or "—"
        print(f"{r.address:<20} {r.rssi:>9}  {kind:<22} {r.name or '—':<18} {services}")


async def _scan(args: argparse.Namespace) -> int:
    from device_drivers.bleak_link import scan
    from device_drivers.errors import DeviceUnavailableError

    air = _air(args.transport)
    services = () if args.all else HEALTH_SERVICES
    try:
        results = await scan(services, air=air, duration_s=args.timeout)
    except DeviceUnavailableError as exc:
        _error(_unavailable(exc, args.transport))
        return EXIT_DEVICE
    except OSError as exc:  # the bumble transport could not be opened
        _error(f"{args.transport}: {exc.strerror or exc}")
        return EXIT_DEVICE
    finally:
        if air is not None:
            await air.close()
    if args.json:
        for result in results:
            print(json.dumps(scan_json(result), ensure_ascii=False), flush=True)
    else:
        _print_scan_table(results, args.timeout)
    return EXIT_OK


def _cmd_scan(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(_scan(args))
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


def _transport_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--transport",
        metavar="MONIKER",
        help=(
            "bumble HCI transport instead of the OS Bluetooth stack (BlueZ), e.g. "
            "tcp-client:127.0.0.1:9000 (anjia sim run) or usb:0"
        ),
    )


def add_scan(ble_sub: Any) -> None:
    parser = ble_sub.add_parser(
        "scan",
        help="扫描健康设备 / scan for glucose meters and BP monitors",
        description=(
            "扫描广播血糖 (0x1808) 或血压 (0x1810) 服务的设备。Scan for devices advertising the "
            "Glucose (0x1808) or Blood Pressure (0x1810) service, strongest first."
        ),
    )
    _transport_option(parser)
    parser.add_argument(
        "--timeout",
        type=_positive,
        default=SCAN_SECONDS,
        metavar="S",
        help=f"scan for S seconds (default {SCAN_SECONDS:g})",
    )
    parser.add_argument("--all", action="store_true", help="list every advertising device")
    parser.add_argument("--json", action="store_true", help="JSON lines, one per device")
    parser.set_defaults(func=_cmd_scan)


# -- sync ---------------------------------------------------------------------------------------


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def reading_json(reading: Reading) -> dict[str, Any]:
    """One reading as a JSON-ready dict (canonical units; flags sorted)."""
    from dataclasses import asdict

    from device_drivers.model import GlucoseReading

    out: dict[str, Any] = {
        "type": "reading",
        "kind": reading.kind.value,
        "device_key": reading.device.key,
        "sequence_number": reading.sequence_number,
        "device_time": _iso(reading.device_time),
        "measured_at": _iso(reading.measured_at),
        "received_at": _iso(reading.received_at),
        "clock_skew_s": reading.clock_skew_s,
        "original_unit": reading.original_unit,
        "flags": sorted(reading.flags),
        "patient_value": reading.is_patient_value,
    }
    if isinstance(reading, GlucoseReading):
        out |= {
            "glucose_mmol_l": reading.glucose_mmol_l,
            "glucose_mg_dl": reading.glucose_mg_dl,
            "original_value": reading.original_value,
            "sample_type": reading.sample_type,
            "sample_location": reading.sample_location,
            "sensor_status": reading.sensor_status,
            "context": None if reading.context is None else asdict(reading.context),
        }
    else:
        out |= {
            "user_id": reading.user_id,
            "systolic_mmhg": reading.systolic_mmhg,
            "diastolic_mmhg": reading.diastolic_mmhg,
            "mean_arterial_mmhg": reading.mean_arterial_mmhg,
            "pulse_bpm": reading.pulse_bpm,
            "measurement_status": reading.measurement_status,
        }
    return out


def sync_summary_json(result: SyncResult, seconds: float) -> dict[str, Any]:
    device = result.device
    return {
        "type": "sync",
        "ok": result.ok,
        "address": device.address,
        "kind": device.kind.value,
        "device_key": device.key,
        "manufacturer": device.manufacturer,
        "model_number": device.model_number,
        "serial_number": device.serial_number,
        "system_id": device.system_id,
        "readings": len(result.readings),
        "watermark": result.watermark,
        "resynced": result.resynced,
        "duplicates": result.duplicates,
        "malformed": result.malformed,
        "clock_skew_s": result.clock_skew_s,
        "clock_written": result.clock_written,
        "battery_percent": result.battery_percent,
        "failure_stage": None if result.failure_stage is None else result.failure_stage.value,
        "failure_reason": result.failure_reason,
        "seconds": round(seconds, 3),
    }


def _num(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _local(value: datetime | None, tz: tzinfo) -> str:
    return "—" if value is None else value.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S")


def _flags(reading: Reading) -> str:
    return ",".join(sorted(reading.flags)) or "—"


def _glucose_row(r: GlucoseReading, tz: tzinfo) -> str:
    meal = "—" if r.context is None or r.context.meal is None else str(r.context.meal)
    return (
        f"{r.sequence_number:>6}  {_local(r.measured_at, tz):<19}  {_num(r.glucose_mmol_l):>7}  "
        f"{_num(r.glucose_mg_dl, 0):>6}  {meal:>4}  {_flags(r)}"
    )


def _bp_row(r: BloodPressureReading, tz: tzinfo) -> str:
    user = "—" if r.user_id is None else ("guest" if r.user_id == 0xFF else str(r.user_id))
    pressure = f"{_num(r.systolic_mmhg, 0)}/{_num(r.diastolic_mmhg, 0)}"
    return (
        f"{user:>5}  {_local(r.measured_at, tz):<19}  {pressure:>9}  "
        f"{_num(r.mean_arterial_mmhg, 0):>5}  {_num(r.pulse_bpm, 0):>5}  {_flags(r)}"
    )


def _print_sync_table(result: SyncResult, seconds: float, tz: tzinfo) -> None:
    from device_drivers.model import BloodPressureReading, DeviceKind, GlucoseReading

    device = result.device
    label = _KIND_LABELS.get(device.kind.value, device.kind.value)
    print(
        f"{label} {device.address}: {device.manufacturer or '?'} {device.model_number or '?'}, "
        f"序列号 serial {device.serial_number or '?'}"
    )
    battery = "—" if result.battery_percent is None else f"{result.battery_percent}%"
    skew = "—" if result.clock_skew_s is None else f"{round(result.clock_skew_s, 1) + 0.0:+.1f} s"
    written = " (已校准 clock set)" if result.clock_written else ""
    print(f"电量 battery {battery}; 时钟偏差 clock skew {skew}{written}")
    zone = getattr(tz, "key", None) or datetime.now(tz).strftime("UTC%z")
    if device.kind is DeviceKind.GLUCOSE_METER:
        print(
            f"{'序号 seq':>6}  {'时间 time (' + zone + ')':<19}  {'mmol/L':>7}  {'mg/dL':>6}  "
            f"{'餐 meal':>4}  标记 flags"
        )
        for reading in result.readings:
            if isinstance(reading, GlucoseReading):
                print(_glucose_row(reading, tz))
    else:
        print(
            f"{'用户 user':>5}  {'时间 time (' + zone + ')':<19}  {'mmHg':>9}  {'平均 MAP':>5}  "
            f"{'脉搏 pulse':>5}  标记 flags"
        )
        for reading in result.readings:
            if isinstance(reading, BloodPressureReading):
                print(_bp_row(reading, tz))
    status = "成功 ok" if result.ok else f"失败 failed at {result.failure_stage}"
    watermark = "" if result.watermark is None else f"; 水位 watermark {result.watermark}"
    extra = " (序号重置, 全部重新同步 sequence reset, full resync)" if result.resynced else ""
    print(f"{len(result.readings)} 条读数 readings in {seconds:.2f} s, {status}{watermark}{extra}")


async def _run_driver(link: BleakGattLink, args: argparse.Namespace, tz: tzinfo) -> SyncResult:
    from device_drivers.driver import BloodPressureDriver, GlucoseMeterDriver
    from device_drivers.errors import ConnectStage, DeviceUnavailableError
    from device_drivers.model import DeviceKind
    from device_drivers.registry import kind_for_services

    kind = kind_for_services(link.service_uuid16s())
    set_clock = not args.no_set_clock
    if kind is DeviceKind.GLUCOSE_METER:
        meter = GlucoseMeterDriver(link, clock=_now, tz=tz, set_clock=set_clock)
        return await meter.fetch_since(args.since)
    if kind is DeviceKind.BLOOD_PRESSURE_MONITOR:
        if args.since is not None:
            print("note: --since is ignored for a blood-pressure cuff", file=sys.stderr)
        cuff = BloodPressureDriver(link, clock=_now, tz=tz, set_clock=set_clock)
        return await cuff.collect(idle_timeout_s=args.idle)
    raise DeviceUnavailableError(
        link.address,
        ConnectStage.DISCOVER,
        "no Glucose (0x1808) or Blood Pressure (0x1810) service",
        retryable=False,
    )


async def _sync(args: argparse.Namespace) -> int:
    import time

    from device_drivers.bleak_link import connect_gatt_link
    from device_drivers.errors import DeviceUnavailableError

    try:
        tz = _zone(args.tz)
    except UsageError as exc:
        _error(str(exc))
        return EXIT_USAGE
    air = _air(args.transport)
    started = time.perf_counter()
    try:
        link = await connect_gatt_link(
            args.address, air=air, pair=not args.no_pair, timeout_s=args.timeout
        )
        try:
            result = await _run_driver(link, args, tz)
        finally:
            await link.disconnect()
    except DeviceUnavailableError as exc:
        _error(_unavailable(exc, args.transport))
        return EXIT_DEVICE
    except OSError as exc:  # the bumble transport could not be opened
        _error(f"{args.transport}: {exc.strerror or exc}")
        return EXIT_DEVICE
    finally:
        if air is not None:
            await air.close()
    seconds = time.perf_counter() - started
    if args.json:
        for reading in result.readings:
            print(json.dumps(reading_json(reading), ensure_ascii=False))
        print(json.dumps(sync_summary_json(result, seconds), ensure_ascii=False), flush=True)
    else:
        _print_sync_table(result, seconds, tz)
    if not result.ok:
        _error(f"{result.device.address}: {result.failure_stage} failed: {result.failure_reason}")
        return EXIT_DEVICE
    return EXIT_OK


def _cmd_sync(args: argparse.Namespace) -> int:
    from device_drivers.bleak_link import MIN_ADAPTER_CONNECT_TIMEOUT_S

    if args.transport is None and args.timeout < MIN_ADAPTER_CONNECT_TIMEOUT_S:
        _error(f"--timeout must be at least {MIN_ADAPTER_CONNECT_TIMEOUT_S:g} s with BlueZ")
        return EXIT_USAGE
    try:
        return asyncio.run(_sync(args))
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


def add_sync(ble_sub: Any) -> None:
    parser = ble_sub.add_parser(
        "sync",
        help="同步一台设备的读数 / sync the readings of one meter or cuff",
        description=(
            "连接设备 (配对), 读取其全部或新的读数并显示。Connect (and pair), read the stored "
            "readings of a glucose meter (RACP) or the pending readings of a blood-pressure cuff, "
            "and print them. The device clock is set when it is off by more than a minute."
        ),
    )
    parser.add_argument("address", metavar="ADDRESS", help="Bluetooth address, AA:BB:CC:DD:EE:FF")
    _transport_option(parser)
    parser.add_argument(
        "--since",
        type=_sequence_number,
        metavar="SEQ",
        help="glucose: only records after sequence number SEQ (default: all)",
    )
    parser.add_argument(
        "--no-pair", action="store_true", help="do not pair (a bonded device still encrypts)"
    )
    parser.add_argument(
        "--no-set-clock", action="store_true", help="never write the device's Current Time"
    )
    parser.add_argument(
        "--tz", metavar="ZONE", help="household time zone, e.g. Asia/Shanghai (default: local)"
    )
    parser.add_argument(
        "--timeout",
        type=_positive,
        default=CONNECT_SECONDS,
        metavar="S",
        help=f"connect timeout (default {CONNECT_SECONDS:g}; at least 10 with BlueZ)",
    )
    parser.add_argument(
        "--idle",
        type=_positive,
        default=10.0,
        metavar="S",
        help="cuff: stop after S seconds without a reading (default 10)",
    )
    parser.add_argument("--json", action="store_true", help="JSON lines: readings, then a summary")
    parser.set_defaults(func=_cmd_sync)
