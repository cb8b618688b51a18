"""The `anjia` command: one entry point whose sub-commands live beside what they drive.

Each sub-command module exposes ``register(subparsers)`` and keeps its heavy imports inside the
command functions, so ``anjia ble decode`` starts fast. This is the composition root: the only
place that configures logging.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

_SUBCOMMAND_MODULES = (
    "device_drivers.cli",  # anjia ble decode|scan|sync
    "firmware_sim.cli",  # anjia sim run
    "gateway.demo",  # anjia demo
    "gateway.cli_daemon",  # anjia gateway run
    "cloud.cli",  # anjia cloud serve|migrate|create-operator|rotate-keys
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="anjia",
        description="安家 Anjia — home health monitoring: meters, gateway, cloud, family doctor.",
    )
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in _SUBCOMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue  # that part of the system is not built yet
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
