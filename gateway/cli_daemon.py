"""`anjia gateway run --config gateway.toml`: the home gateway daemon (docs/gateway.md).

Settings come from the TOML file and ``ANJIA_GATEWAY__*`` environment variables (they win). A
file that cannot be read or does not validate stops the command before anything starts: exit 2,
one ``error:`` line, then one line per problem naming where it is. SIGTERM and SIGINT stop the
daemon cleanly (syncs in progress finish, status ``offline`` is published, the outbox is
closed), exit 0. Exit 1 when the outbox file cannot be used. CLI only (prints the errors).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from pathlib import Path
from typing import Any, Final

__all__ = ["register"]

EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
EXIT_USAGE: Final = 2


async def _serve(settings: Any) -> None:
    from gateway.app import run_gateway

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await run_gateway(settings, stop=stop)
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)


def _cmd_run(args: argparse.Namespace) -> int:
    from gateway.outbox import OutboxError
    from gateway.settings import SettingsError, load_gateway_settings

    try:
        settings = load_gateway_settings(args.config)
    except SettingsError as exc:
        print(f"error: invalid gateway settings ({exc.source}):", file=sys.stderr)
        for location, problem in exc.problems:
            print(f"  {location}: {problem}", file=sys.stderr)
        return EXIT_USAGE
    try:
        asyncio.run(_serve(settings))
    except OutboxError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def register(subparsers: Any) -> None:
    """Add ``gateway run`` to the ``anjia`` parser (see gateway/cli.py)."""
    gateway = subparsers.add_parser(
        "gateway",
        help="家庭网关 / the home gateway (run)",
        description="家庭网关：同步血糖仪和血压计并上传。The home gateway daemon.",
    )
    sub = gateway.add_subparsers(dest="gateway_command", metavar="SUBCOMMAND", required=True)
    run = sub.add_parser(
        "run",
        help="运行网关守护进程 / run the gateway daemon",
        description=(
            "运行家庭网关：扫描、同步已登记的设备，经 MQTT 上传读数。Run the gateway: scan and "
            "sync the enrolled meters, publish their readings over MQTT (docs/gateway.md)."
        ),
    )
    run.add_argument(
        "--config",
        type=Path,
        metavar="PATH",
        help="TOML settings file (ANJIA_GATEWAY__* environment variables override it)",
    )
    run.set_defaults(func=_cmd_run)
