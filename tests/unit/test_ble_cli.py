"""`anjia ble decode`: JSON on success (exit 0), one line on stderr for malformed input (exit 1)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from device_drivers.cli import HexError, parse_hex
from gateway.cli import main

REPO = Path(__file__).resolve().parents[2]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["ble", "decode", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_subprocess_decodes_glucose_measurement_to_json() -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "gateway.cli",
            "ble",
            "decode",
            "2a18",
            "02 7b00 e807 03 0f 0a 1e 00 01 d0 11",
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    decoded = json.loads(proc.stdout)
    assert decoded["sequence_number"] == 123
    assert decoded["concentration_unit"] == "kg/L"
    assert decoded["glucose_mg_dl"] == 100.0
    assert decoded["base_time"] == "2024-03-15T10:30:00"
    assert decoded["time_offset_minutes"] is None
    assert proc.stdout.startswith("{\n  ")  # indented


def test_subprocess_malformed_is_one_line_exit_1() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "ble", "decode", "glucose_measurement", "1b01"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 1
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("error: glucose_measurement: truncated")


@pytest.mark.parametrize(
    ("char", "hex_text", "keys"),
    [
        ("0x2A52", "01 03 01 2a 00", {"op_code": 1, "operator": 3, "operands": [42]}),
        ("record_access_control_point", "06:00:01:06", {"response_code": 6}),
        ("2a35", "0x00bdf00b009ff0", {"systolic": 18.9, "unit": "mmHg", "user_id": None}),
        ("current_time", "2e 06 01 01 17 3b 3b 01 ff 01", {"iso": "1582-01-01T23:59:59"}),
        ("battery_level", "64", {"percent": 100}),
        ("sfloat", "ff07", {"value": None, "special": "NaN"}),
        ("float", "87 d6 12 fe", {"value": 12345.67}),
        ("manufacturer_name", "e5ae89e5aeb6", {"value": "安家"}),
    ],
)
def test_decode_success(
    capsys: pytest.CaptureFixture[str], char: str, hex_text: str, keys: dict[str, object]
) -> None:
    code, out, err = run(capsys, char, hex_text)
    assert code == 0, err
    decoded = json.loads(out)
    for key, value in keys.items():
        assert decoded[key] == value
    assert "安家" in out or "\\u" not in out  # ensure_ascii=False


def test_hex_split_over_several_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "2a19", "0x64")
    assert code == 0
    assert json.loads(out) == {"percent": 100}
    code, out, _ = run(capsys, "2a52", "01", "01")
    assert code == 0
    assert json.loads(out)["operator_name"] == "all_records"


@pytest.mark.parametrize(
    ("char", "hex_text", "prefix"),
    [
        ("battery_level", "65", "error: battery_level: "),
        ("battery_level", "zz", "error: battery_level: not hexadecimal"),
        ("2a18", "0", "error: glucose_measurement: odd number of hex digits"),
        ("pnp_id", "01", "error: pnp_id: "),
        ("model_number_string", "ff", "error: model_number_string: invalid UTF-8"),
    ],
)
def test_decode_malformed(
    capsys: pytest.CaptureFixture[str], char: str, hex_text: str, prefix: str
) -> None:
    code, out, err = run(capsys, char, hex_text)
    assert code == 1
    assert out == ""
    assert len(err.splitlines()) == 1
    assert err.startswith(prefix)


@pytest.mark.parametrize("char", ["heart_rate", "0000180a-0000-1000-8000-00805f9b34fb"])
def test_unknown_characteristic_lists_the_known_names(
    capsys: pytest.CaptureFixture[str], char: str
) -> None:
    code, out, err = run(capsys, char, "00")
    assert code == 2
    assert out == ""
    assert err.startswith(f"error: {char}: unknown characteristic")
    assert "glucose_measurement" in err
    assert len(err.splitlines()) == 1


@pytest.mark.parametrize(
    ("parts", "want"),
    [
        (["01 d0"], b"\x01\xd0"),
        (["01:d0"], b"\x01\xd0"),
        (["0x01d0"], b"\x01\xd0"),
        (["0x01", "0xD0"], b"\x01\xd0"),
        (["01,d0"], b"\x01\xd0"),
        ([""], b""),
        (["0x"], b""),
    ],
)
def test_parse_hex(parts: list[str], want: bytes) -> None:
    assert parse_hex(parts) == want


@pytest.mark.parametrize("parts", [["0g"], ["123"], ["01-02"]])
def test_parse_hex_rejects(parts: list[str]) -> None:
    with pytest.raises(HexError):
        parse_hex(parts)
