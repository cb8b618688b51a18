"""bench/bench_ble.py stays runnable: its payloads decode, both sync paths move every record."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

pytestmark = pytest.mark.sim

BENCH = Path(__file__).resolve().parents[2] / "bench" / "bench_ble.py"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_ble", BENCH)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("bench_ble", module)
    spec.loader.exec_module(module)
    return module


def test_every_codec_payload_decodes_and_is_measured(bench: ModuleType) -> None:
    cases = bench.decode_cases()
    for decode, payload in cases.values():
        decode(payload)
    ops = bench.decode_throughput(repeat=1, number=20)
    assert set(ops) == set(cases)
    assert all(rate > 0 for rate in ops.values())


async def test_both_sync_paths_transfer_every_record(bench: ModuleType) -> None:
    ours, theirs = await bench.sync_times(records=30, repeat=1)
    # each path raises when a record is missing; the times are what the benchmark reports
    assert len(ours) == len(theirs) == 1
    for total, connect in (*ours, *theirs):
        assert 0 < connect < total
