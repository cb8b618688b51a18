"""`anjia demo` end to end: the simulated household synced through bleak over bumble."""

from __future__ import annotations

import re

import pytest

from gateway.cli import main

pytestmark = [pytest.mark.e2e, pytest.mark.sim]


def test_demo_syncs_both_meters_and_raises_the_local_alert(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = main(["demo", "--records", "25", "--now-systolic", "183", "--now-diastolic", "95"])
    out = capsys.readouterr().out
    assert code == 0
    meter = re.search(r"glucose meter: (\d+) 条读数", out)
    cuff = re.search(r"BP monitor: (\d+) 条读数", out)
    assert meter is not None
    assert cuff is not None
    assert int(meter.group(1)) == 25
    unsent = re.search(r"BP monitor +\S+: (\d+) unsent", out)
    assert unsent is not None
    assert int(cuff.group(1)) == int(unsent.group(1)) + 1  # the history and the new measurement
    assert "183/95 mmHg" in out
    assert "本地紧急提醒" in out
    assert "local urgent alert: Very high blood pressure (183/95 mmHg)" in out


def test_demo_with_a_normal_measurement_raises_no_alert(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "demo",
            "--records",
            "5",
            "--glucose-scenario",
            "well_controlled",
            "--bp-scenario",
            "well_controlled",
            "--now-systolic",
            "124",
            "--now-diastolic",
            "78",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "no local urgent alert" in out
