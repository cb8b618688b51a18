"""`anjia demo` end to end: broker, cloud, provisioning, simulated meters, the gateway daemon, and
the doctor reading the records through the API and FHIR, all in one process on real components."""

from __future__ import annotations

import re

import pytest

from gateway.cli import main

pytestmark = [pytest.mark.e2e, pytest.mark.sim]


def _stored(out: str) -> tuple[int, int]:
    found = re.findall(r"stored in the cloud: (\d+)/(\d+)", out)
    assert found, out
    done, expected = found[-1]
    return int(done), int(expected)


def test_demo_carries_every_reading_to_the_doctor_and_alerts_at_home(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = main(["demo", "--records", "25", "--now-systolic", "183", "--now-diastolic", "95"])
    out = capsys.readouterr().out
    assert code == 0, out
    unsent = re.search(r"BP monitor +\S+: (\d+) unsent", out)
    assert unsent is not None
    done, expected = _stored(out)
    assert expected == 25 + int(unsent.group(1)) + 1  # meter records, cuff history, measured now
    assert done == expected
    # raised at home by the gateway, and sent to the cloud as an event over MQTT
    assert "本地紧急提醒" in out
    assert "gateway event [urgent_reading]" in out
    assert "Very high blood pressure (183/95 mmHg)" in out
    # the doctor sees the fresh measurement, marked urgent, through the API
    assert re.search(r"⚠ \d\d-\d\d \d\d:\d\d  血压 BP 183/95", out), out
    assert re.search(r"张伟: \d+ 条读数 readings \(血压 BP\), 1 条紧急 urgent", out), out
    # and as FHIR Observations
    assert re.search(r"李梅: \d+ 个 Observation.*MDC_CONC_GLU", out), out
    assert "outbox pending 0" in out


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
    assert code == 0, out
    done, expected = _stored(out)
    assert done == expected
    assert "本地紧急提醒" not in out
    assert "urgent_reading" not in out
    assert "0 条紧急 urgent" in out
