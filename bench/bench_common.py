"""What every benchmark script records beside its numbers: progress lines, percentiles, the commit
it measured and the measured files that differed from it (the tree may be shared). Imported by
the bench scripts run as ``python bench/<name>.py`` (their folder is on ``sys.path``)."""

from __future__ import annotations

import json
import os
import platform
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "commit_of_tree",
    "log",
    "machine_info",
    "percentile",
    "uncommitted_sources",
    "write_results",
]


def log(line: str) -> None:
    print(line, flush=True)


def percentile(ordered: Sequence[float], p: float) -> float:
    """Nearest-rank percentile of an ascending sequence."""
    if not ordered:
        return float("nan")
    rank = max(1, -(-len(ordered) * p // 100))
    return ordered[int(rank) - 1]


def _git(root: Path, *args: str) -> str | None:
    try:
        out = subprocess.run(
            ["git", "-C", str(root), *args], capture_output=True, text=True, check=True
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    return out.stdout


def commit_of_tree(root: Path) -> str | None:
    out = _git(root, "rev-parse", "HEAD")
    return (out or "").strip() or None


def uncommitted_sources(root: Path, packages: Sequence[str]) -> list[str]:
    """Python files of ``packages`` that differ from the recorded commit."""
    out = _git(root, "status", "--porcelain", "--", *packages) or ""
    return [line[3:] for line in out.splitlines() if line.endswith(".py")]


def machine_info() -> dict[str, Any]:
    return {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
    }


def write_results(path: Path, result: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    log(f"\nwrote {path}")
