"""Small helpers for readable code names in ``to_dict()`` output. Pure."""

from __future__ import annotations

from collections.abc import Mapping

from device_drivers.codec.sfloat import MedFloat

__all__ = ["bit_names", "code_name", "medfloat_fields"]


def code_name(table: Mapping[int, str], code: int | None) -> str | None:
    """The readable name of ``code``; None when absent or not assigned (RFU)."""
    if code is None:
        return None
    return table.get(code)


def bit_names(table: Mapping[int, str], bits: int | None) -> list[str] | None:
    """Names of the set bits of ``bits`` (bit number -> name), in bit order; RFU bits skipped."""
    if bits is None:
        return None
    return [name for bit, name in sorted(table.items()) if bits & (1 << bit)]


def medfloat_fields(out: dict[str, object], field: str, value: MedFloat | None) -> None:
    """Put ``field`` as a plain number (None when absent or special) and, only when a special
    value was sent, ``<field>_special`` beside it."""
    if value is None:
        out[field] = None
        return
    number = value.to_dict()["value"]
    out[field] = number
    if value.special is not None:
        out[f"{field}_special"] = value.special.value
