"""Table-driven codec vectors (tests/vectors/codec_*.toml), checked in both directions.

Each `[[case]]` is decoded through the catalog (the same path as `anjia ble decode`) and compared
with its `expected` fields; keys listed in `null` must be None. Unless `roundtrip = false`, the
decoded struct is re-encoded and must give back the exact bytes. Each `[[malformed]]` must raise
DecodeError naming the characteristic and carrying the payload.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest

from device_drivers.cli import parse_hex
from device_drivers.codec import catalog
from device_drivers.errors import DecodeError

VECTORS = Path(__file__).resolve().parent.parent / "vectors"


def _load(kind: str) -> list[Any]:
    params = []
    for path in sorted(VECTORS.glob("codec_*.toml")):
        with path.open("rb") as fh:
            table = tomllib.load(fh)
        for index, case in enumerate(table.get(kind, [])):
            ident = f"{path.stem}:{index}:{case['characteristic']}:{case['hex'].replace(' ', '')}"
            params.append(pytest.param(case, id=ident))
    return params


CASES = _load("case")
MALFORMED = _load("malformed")


def test_vector_files_are_present_and_sourced() -> None:
    assert len(CASES) >= 80
    assert len(MALFORMED) >= 30
    for param in [*CASES, *MALFORMED]:
        case = param.values[0]
        assert case["source"].strip(), case
    names = {catalog.lookup(p.values[0]["characteristic"]).name for p in CASES}
    # every catalogued codec has at least one vector
    assert names == {entry.name for entry in catalog.entries()} - {
        "hardware_revision_string",
        "firmware_revision_string",
        "software_revision_string",
    }


@pytest.mark.parametrize("case", CASES)
def test_decode_matches_expected(case: dict[str, Any]) -> None:
    entry = catalog.lookup(case["characteristic"])
    decoded = entry.decode(parse_hex([case["hex"]]))
    approx_keys = set(case.get("approx", []))
    for key, want in case.get("expected", {}).items():
        assert key in decoded, f"missing key {key}"
        got = decoded[key]
        if key in approx_keys:
            assert got == pytest.approx(want, rel=1e-9), key
        else:
            # exact: SFLOAT values carry their decimal precision, no float noise allowed
            assert got == want, f"{key}: got {got!r}, want {want!r}"
            assert not isinstance(want, float) or isinstance(got, float), key
    for key in case.get("null", []):
        assert key in decoded, f"missing key {key}"
        assert decoded[key] is None, f"{key} should be null, got {decoded[key]!r}"


@pytest.mark.parametrize("case", [c for c in CASES if c.values[0].get("roundtrip", True)])
def test_encode_of_decode_is_identity(case: dict[str, Any]) -> None:
    entry = catalog.lookup(case["characteristic"])
    payload = parse_hex([case["hex"]])
    assert bytes(entry.parse(payload)) == payload


@pytest.mark.parametrize("case", [c for c in CASES if not c.values[0].get("roundtrip", True)])
def test_lossy_cases_reencode_to_a_stable_form(case: dict[str, Any]) -> None:
    """Trailing junk / RFU bits are dropped once; the canonical form then round-trips."""
    entry = catalog.lookup(case["characteristic"])
    payload = parse_hex([case["hex"]])
    canonical = bytes(entry.parse(payload))
    assert canonical != payload
    assert bytes(entry.parse(canonical)) == canonical
    assert entry.decode(canonical) == entry.decode(payload)


@pytest.mark.parametrize("case", MALFORMED)
def test_malformed_raises_decode_error(case: dict[str, Any]) -> None:
    entry = catalog.lookup(case["characteristic"])
    payload = parse_hex([case["hex"]])
    with pytest.raises(DecodeError) as info:
        entry.decode(payload)
    assert info.value.characteristic == entry.name
    assert info.value.payload == payload
    assert info.value.fault
