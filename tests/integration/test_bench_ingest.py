"""bench/bench_ingest.py stays runnable: a tiny run against a real Mosquitto writes every key
the results file promises (bench/README.md), with every reading committed. Times nothing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.brokers import find_mosquitto

pytestmark = pytest.mark.broker

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "bench" / "bench_ingest.py"
KEYS = {
    "bare_msgs_per_s",
    "ingest_1w_readings_per_s",
    "ingest_2w_readings_per_s",
    "batched_readings_per_s",
    "latency_p50_ms",
    "latency_p99_ms",
    "messages",
    "batched_messages",
    "broker",
    "database",
    "commit",
    "load_avg_1m",
}


def test_a_tiny_run_writes_every_promised_key(tmp_path: Path) -> None:
    find_mosquitto()  # skips (fails under CI) without the broker
    out = tmp_path / "ingest.json"
    proc = subprocess.run(
        [
            sys.executable,
            str(BENCH),
            "--messages",
            "60",
            "--batch",
            "10",
            "--batched-readings",
            "100",
            "--rate",
            "100",
            "--paced-seconds",
            "0.3",
            "--gateways",
            "3",
            "--output",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads(out.read_text())
    assert KEYS <= set(result), KEYS - set(result)
    for key in (
        "bare_msgs_per_s",
        "ingest_1w_readings_per_s",
        "ingest_2w_readings_per_s",
        "batched_readings_per_s",
    ):
        assert result[key] > 0, key
    runs = result["runs"]
    assert runs["bare"]["readings"] == 60
    assert runs["ingest_1w"]["readings"] == runs["ingest_2w"]["readings"] == 60
    assert runs["batched"] == runs["batched"] | {"messages": 10, "readings": 100}
    assert len(runs["ingest_2w"]["per_worker_messages"]) == 2
    assert runs["paced"]["dead_letters"] == 0
    assert 0 < result["latency_p50_ms"] <= result["latency_p99_ms"]
    assert "phase ingest_1w" in proc.stdout  # a progress line per phase
