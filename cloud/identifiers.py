"""Personal identity documents: validation and normalisation before hashing or encrypting.

Chinese resident identity card numbers (居民身份证号码) follow GB 11643-1999: 17 digits (6 area,
8 birth date YYYYMMDD, 3 sequence) and a check character computed with ISO 7064 MOD 11-2 (weights
2^(17-i) mod 11, check = (12 - sum mod 11) mod 11, with 10 written as ``X``). A number is
normalised (NFKC so full-width digits become ASCII, separators removed, ``x`` upper-cased) before
it is validated, blind-indexed or encrypted, so the same card always finds the same person.

Other documents (passport, Hong Kong/Macao/Taiwan permits, foreign permanent residence) are only
normalised: their formats vary and we do not guess.

Pure: no I/O, no clock.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import date
from enum import StrEnum
from typing import Final

__all__ = ["IdType", "cn_resident_check_char", "normalise_id_number"]

_CN_WEIGHTS: Final = tuple(pow(2, 17 - i, 11) for i in range(17))
_CN_CHECK_CHARS: Final = "10X98765432"
_CN_PATTERN: Final = re.compile(r"^\d{17}[\dX]$")
_OTHER_PATTERN: Final = re.compile(r"^[A-Z0-9]{5,32}$")
_SEPARATORS: Final = re.compile(r"[\s\-_/.]")


class IdType(StrEnum):
    CN_RESIDENT = "cn_resident"  # 居民身份证
    PASSPORT = "passport"
    OTHER = "other"  # 港澳台居民居住证, 外国人永久居留身份证, ...


def cn_resident_check_char(first17: str) -> str:
    """The GB 11643-1999 check character of the first 17 digits."""
    if len(first17) != 17 or not first17.isdigit():
        raise ValueError("need exactly 17 digits")
    total = sum(int(d) * w for d, w in zip(first17, _CN_WEIGHTS, strict=True))
    return _CN_CHECK_CHARS[total % 11]


def normalise_id_number(id_type: IdType, raw: str) -> str:
    """The canonical form of an ID number; raises ValueError (without echoing it) if invalid."""
    text = unicodedata.normalize("NFKC", raw)
    text = _SEPARATORS.sub("", text).upper()
    if id_type is IdType.CN_RESIDENT:
        if not _CN_PATTERN.match(text):
            raise ValueError("a resident ID number has 17 digits and a check digit or X")
        try:
            date(int(text[6:10]), int(text[10:12]), int(text[12:14]))
        except ValueError as exc:
            raise ValueError("the birth date inside the resident ID number is impossible") from exc
        if cn_resident_check_char(text[:17]) != text[17]:
            raise ValueError("the check character of the resident ID number is wrong")
        return text
    if not _OTHER_PATTERN.match(text):
        raise ValueError("a document number has 5 to 32 letters or digits")
    return text
