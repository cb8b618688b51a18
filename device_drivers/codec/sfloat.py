"""IEEE 11073-20601 SFLOAT (medfloat16) and FLOAT (medfloat32): spec ble.md §4.

SFLOAT is a uint16: the top 4 bits are the exponent, the low 12 bits the mantissa, both two's
complement; value = mantissa x 10^exponent. FLOAT is a uint32 with an 8-bit exponent and a 24-bit
mantissa. Special values are defined with exponent 0 only and are tested *before* the arithmetic:

========  ==========  ==========
special   SFLOAT      FLOAT
========  ==========  ==========
NaN       0x07FF      0x007FFFFF
NRes      0x0800      0x00800000
+INF      0x07FE      0x007FFFFE
-INF      0x0802      0x00800002
reserved  0x0801      0x00800001
========  ==========  ==========

A special comes back as ``MedFloat(0, 0, special)`` whose ``value`` is None: never a number such
as 2047. The exponent carries precision: 0x0002, 0xF014 and 0xE0C8 all decode to 2 (as "2", "2.0"
and "2.00") and stay distinct ``MedFloat`` values, so a decode/encode round trip is exact.
``value`` is the float nearest to the exact decimal, so 0xF0BD is 18.9, not 18.899999.

Pure: no I/O.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from enum import StrEnum
from typing import Final

from device_drivers.errors import DecodeError, EncodeError

__all__ = [
    "FLOAT_SPECIALS",
    "SFLOAT_SPECIALS",
    "MedFloat",
    "Special",
    "decode_float",
    "decode_sfloat",
    "encode_float",
    "encode_sfloat",
]


class Special(StrEnum):
    """IEEE 11073 special values. They are results, never numbers."""

    NAN = "NaN"
    NRES = "NRes"
    POSITIVE_INFINITY = "+INF"
    NEGATIVE_INFINITY = "-INF"
    RESERVED = "reserved"


SFLOAT_SPECIALS: Final[dict[int, Special]] = {
    0x07FF: Special.NAN,
    0x0800: Special.NRES,
    0x07FE: Special.POSITIVE_INFINITY,
    0x0802: Special.NEGATIVE_INFINITY,
    0x0801: Special.RESERVED,
}
FLOAT_SPECIALS: Final[dict[int, Special]] = {
    0x007FFFFF: Special.NAN,
    0x00800000: Special.NRES,
    0x007FFFFE: Special.POSITIVE_INFINITY,
    0x00800002: Special.NEGATIVE_INFINITY,
    0x00800001: Special.RESERVED,
}
_SFLOAT_RAW: Final = {special: raw for raw, special in SFLOAT_SPECIALS.items()}
_FLOAT_RAW: Final = {special: raw for raw, special in FLOAT_SPECIALS.items()}


@dataclass(frozen=True, slots=True)
class _Format:
    name: str
    exponent_bits: int
    mantissa_bits: int
    specials: dict[int, Special]
    raw_of: dict[Special, int]

    @property
    def exponent_min(self) -> int:
        return -(1 << (self.exponent_bits - 1))

    @property
    def exponent_max(self) -> int:
        return (1 << (self.exponent_bits - 1)) - 1

    @property
    def mantissa_min(self) -> int:
        return -(1 << (self.mantissa_bits - 1))

    @property
    def mantissa_max(self) -> int:
        return (1 << (self.mantissa_bits - 1)) - 1

    @property
    def raw_max(self) -> int:
        return (1 << (self.exponent_bits + self.mantissa_bits)) - 1

    def collides(self, mantissa: int, exponent: int) -> bool:
        """True when (mantissa, exponent) would be sent as a special code."""
        return exponent == 0 and (mantissa & ((1 << self.mantissa_bits) - 1)) in self.specials

    def fits(self, mantissa: int, exponent: int) -> bool:
        return (
            self.mantissa_min <= mantissa <= self.mantissa_max
            and self.exponent_min <= exponent <= self.exponent_max
            and not self.collides(mantissa, exponent)
        )


_SFLOAT: Final = _Format("sfloat", 4, 12, SFLOAT_SPECIALS, _SFLOAT_RAW)
_FLOAT: Final = _Format("float", 8, 24, FLOAT_SPECIALS, _FLOAT_RAW)
_FORMATS: Final = {16: _SFLOAT, 32: _FLOAT}


@dataclass(frozen=True, slots=True)
class MedFloat:
    """A medical float: ``mantissa`` x 10^``exponent``, or a ``special`` (then both are 0)."""

    mantissa: int
    exponent: int
    special: Special | None = None

    def __post_init__(self) -> None:
        if self.special is not None and (self.mantissa, self.exponent) != (0, 0):
            raise EncodeError("medfloat", "a special value has mantissa 0 and exponent 0")

    @property
    def decimal(self) -> Decimal | None:
        """The exact value with its precision (``Decimal('2.0')`` for 20e-1), None if special."""
        if self.special is not None:
            return None
        return Decimal(self.mantissa).scaleb(self.exponent)

    @property
    def value(self) -> float | None:
        """The float nearest to the exact decimal value; None for a special value."""
        exact = self.decimal
        return None if exact is None else float(exact)

    @property
    def is_special(self) -> bool:
        return self.special is not None

    @classmethod
    def nan(cls) -> MedFloat:
        return cls(0, 0, Special.NAN)

    @classmethod
    def from_value(
        cls, value: float | int | Decimal | str, exponent: int | None = None, *, width: int = 16
    ) -> MedFloat:
        """A MedFloat for ``value`` that fits SFLOAT (``width=16``) or FLOAT (``width=32``).

        With ``exponent=None`` the exponent is chosen to keep every significant digit of the
        decimal form of ``value`` (``2.0`` -> 20e-1); if that cannot fit, :class:`EncodeError`.
        With an explicit exponent the value is rounded half-even to that exponent's digits.
        Float NaN and infinities map to the NaN and +/-INF specials.
        """
        fmt = _FORMATS.get(width)
        if fmt is None:
            raise EncodeError("medfloat", f"width must be 16 or 32, not {width}")
        if isinstance(value, float) and not math.isfinite(value):
            if math.isnan(value):
                return cls.nan()
            return cls(0, 0, Special.POSITIVE_INFINITY if value > 0 else Special.NEGATIVE_INFINITY)
        try:
            exact = Decimal(str(value)) if isinstance(value, float) else Decimal(value)
        except (InvalidOperation, ValueError) as exc:
            raise EncodeError(fmt.name, f"not a number: {value!r}") from exc
        if not exact.is_finite():
            if exact.is_nan():
                return cls.nan()
            return cls(0, 0, Special.NEGATIVE_INFINITY if exact < 0 else Special.POSITIVE_INFINITY)
        if exponent is not None:
            scaled = exact.scaleb(-exponent).to_integral_value(rounding=ROUND_HALF_EVEN)
            mantissa = int(scaled)
            if not fmt.fits(mantissa, exponent):
                raise EncodeError(fmt.name, f"{value!r} does not fit with exponent {exponent}")
            return cls(mantissa, exponent)
        sign, digits, raw_exponent = exact.as_tuple()
        assert isinstance(raw_exponent, int)  # finite, checked above
        exp = raw_exponent
        magnitude = int("".join(map(str, digits)) or "0")
        # Drop trailing zeros only where needed to fit; add zeros to bring the exponent down.
        while (
            magnitude
            and magnitude % 10 == 0
            and (magnitude > fmt.mantissa_max or exp < fmt.exponent_min)
        ):
            magnitude //= 10
            exp += 1
        if magnitude == 0:
            exp = min(max(exp, fmt.exponent_min), fmt.exponent_max)
        while exp > fmt.exponent_max and magnitude * 10 <= fmt.mantissa_max:
            magnitude *= 10
            exp -= 1
        mantissa = -magnitude if sign else magnitude
        if not fmt.fits(mantissa, exp):
            raise EncodeError(
                fmt.name, f"{value!r} cannot be represented without losing digits; give an exponent"
            )
        return cls(mantissa, exp)

    def to_dict(self) -> dict[str, object]:
        return {
            "value": _json_number(self),
            "special": None if self.special is None else self.special.value,
            "mantissa": self.mantissa,
            "exponent": self.exponent,
        }


def _json_number(value: MedFloat) -> int | float | None:
    """Plain JSON number: an int when the exponent is >= 0, else the nearest float."""
    exact = value.decimal
    if exact is None:
        return None
    if value.exponent >= 0:
        return int(exact)
    return float(exact)


def _decode(raw: int, fmt: _Format) -> MedFloat:
    if not 0 <= raw <= fmt.raw_max:
        raise DecodeError(fmt.name, f"raw value {raw:#x} out of range")
    special = fmt.specials.get(raw)
    if special is not None:
        return MedFloat(0, 0, special)
    exponent = raw >> fmt.mantissa_bits
    if exponent > (1 << (fmt.exponent_bits - 1)) - 1:
        exponent -= 1 << fmt.exponent_bits
    mantissa = raw & ((1 << fmt.mantissa_bits) - 1)
    if mantissa > fmt.mantissa_max:
        mantissa -= 1 << fmt.mantissa_bits
    return MedFloat(mantissa, exponent)


def _encode(value: MedFloat, fmt: _Format) -> int:
    if value.special is not None:
        return fmt.raw_of[value.special]
    if not fmt.fits(value.mantissa, value.exponent):
        raise EncodeError(
            fmt.name,
            f"mantissa {value.mantissa} / exponent {value.exponent} is not representable"
            f" (mantissa {fmt.mantissa_min}..{fmt.mantissa_max}, exponent"
            f" {fmt.exponent_min}..{fmt.exponent_max}, no special code)",
        )
    exponent_field = value.exponent & ((1 << fmt.exponent_bits) - 1)
    mantissa_field = value.mantissa & ((1 << fmt.mantissa_bits) - 1)
    return (exponent_field << fmt.mantissa_bits) | mantissa_field


def decode_sfloat(raw: int) -> MedFloat:
    """Decode a 16-bit SFLOAT (the uint16 already assembled little-endian)."""
    return _decode(raw, _SFLOAT)


def encode_sfloat(value: MedFloat) -> int:
    """The uint16 SFLOAT of ``value``; :class:`EncodeError` when out of SFLOAT range."""
    return _encode(value, _SFLOAT)


def decode_float(raw: int) -> MedFloat:
    """Decode a 32-bit FLOAT (the uint32 already assembled little-endian)."""
    return _decode(raw, _FLOAT)


def encode_float(value: MedFloat) -> int:
    """The uint32 FLOAT of ``value``; :class:`EncodeError` when out of FLOAT range."""
    return _encode(value, _FLOAT)
