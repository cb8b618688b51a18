"""FHIR search parameters of the Observation, Device and ``$everything`` endpoints: parsing,
validation and the paging cursor (FHIR R4 "Search": date and token parameters, ``_count``).

* ``date`` (repeatable; all must hold): ``[prefix]YYYY[-MM[-DD[Thh:mm[:ss[.fff]][zone]]]]``
  with prefixes ``eq`` (default), ``ge``, ``gt``, ``le``, ``lt``. The value is a range at its own
  precision (``2026-03`` is the whole month); a value without a zone is in the household's time
  zone (given by the caller). ``eq``: inside the range; ``ge``/``lt``: from / before its start;
  ``gt``/``le``: from / before its end. ``ne``, ``sa``, ``eb``, ``ap`` are not supported (400).
  All of them narrow one half-open interval ``[since, until)``.
* ``code`` (repeatable, comma = OR within one parameter, AND across parameters):
  ``system|code``, ``code`` (any system), ``|code`` (no system: matches nothing of ours),
  ``system|`` (any code of the system).
* ``_count``: 1 to :data:`MAX_COUNT`, default :data:`DEFAULT_COUNT`.
* ``_cursor``: opaque paging token from a ``next`` link: where the next page starts (the time,
  row id and Observation part of the first entry not yet returned). Newest first.

Errors raise :class:`SearchParamError` (400 with an OperationOutcome ``invalid`` or
``not-supported``). Pure: standard library only.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from typing import Any, Final

from cloud.fhir.identifiers import ObservationPart

__all__ = [
    "DEFAULT_COUNT",
    "MAX_COUNT",
    "CodeToken",
    "Cursor",
    "Interval",
    "SearchParamError",
    "codes_match",
    "parse_codes",
    "parse_count",
    "parse_cursor",
    "parse_dates",
    "parse_reference",
    "reject_unknown",
    "values_of",
]

DEFAULT_COUNT: Final = 50
MAX_COUNT: Final = 500

_DATE: Final = re.compile(
    r"^(?P<prefix>[a-z]{2})?(?P<year>\d{4})(?:-(?P<month>\d{2})(?:-(?P<day>\d{2})"
    r"(?:T(?P<hour>\d{2}):(?P<minute>\d{2})(?::(?P<second>\d{2})(?P<fraction>\.\d{1,6})?)?"
    r"(?P<zone>Z|[+-]\d{2}:\d{2})?)?)?)?$"
)
_SUPPORTED_PREFIXES: Final = frozenset({"eq", "ge", "gt", "le", "lt"})
_ALL_PREFIXES: Final = _SUPPORTED_PREFIXES | {"ne", "sa", "eb", "ap"}
_CURSOR: Final = re.compile(r"^(-?\d{1,20})_(\d{1,20})_(main|pulse|status)$")
_PART_ORDER: Final = {p: i for i, p in enumerate(ObservationPart)}


class SearchParamError(ValueError):
    """A search parameter is malformed (``code='invalid'``) or not supported here
    (``code='not-supported'``)."""

    def __init__(self, param: str, reason: str, code: str = "invalid") -> None:
        self.param = param
        self.reason = reason
        self.code = code
        super().__init__(f"{param}: {reason}")


@dataclass(frozen=True, slots=True)
class Interval:
    """``since <= t < until``; either end open when None."""

    since: datetime | None = None
    until: datetime | None = None

    @property
    def empty(self) -> bool:
        return self.since is not None and self.until is not None and self.since >= self.until

    def narrow(self, since: datetime | None, until: datetime | None) -> Interval:
        lo = (
            self.since
            if since is None or (self.since is not None and self.since >= since)
            else since
        )
        hi = (
            self.until
            if until is None or (self.until is not None and self.until <= until)
            else until
        )
        return Interval(lo, hi)


@dataclass(frozen=True, slots=True)
class CodeToken:
    """``system|code``; None for "any" (``code`` alone, or ``system|``)."""

    system: str | None
    code: str | None

    def matches(self, coding: Mapping[str, Any]) -> bool:
        if self.system is not None and coding.get("system") != self.system:
            return False
        return self.code is None or coding.get("code") == self.code


@dataclass(frozen=True, slots=True, order=True)
class Cursor:
    """Where a page starts: the reading at (effective time, row id), from its ``part``."""

    effective_us: int  # microseconds since the Unix epoch, UTC
    row_id: int
    part_index: int = 0

    @classmethod
    def at(cls, effective_at: datetime, row_id: int, part: ObservationPart) -> Cursor:
        delta = effective_at.astimezone(UTC) - datetime(1970, 1, 1, tzinfo=UTC)
        return cls(delta // timedelta(microseconds=1), row_id, _PART_ORDER[part])

    @property
    def effective_at(self) -> datetime:
        return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=self.effective_us)

    def token(self) -> str:
        part = list(ObservationPart)[self.part_index].value
        return f"{self.effective_us}_{self.row_id}_{part}"


def reject_unknown(params: Iterable[tuple[str, str]], allowed: Iterable[str]) -> None:
    """Strict handling: an unknown parameter is an error, not silently ignored (which would
    return more than the caller asked for)."""
    known = set(allowed)
    for name, value in params:
        if name not in known:
            raise SearchParamError(name, "unknown or unsupported search parameter", "not-supported")
        if name == "_format" and value not in ("json", "application/fhir+json", "application/json"):
            raise SearchParamError("_format", "only JSON is served", "not-supported")


def _values(params: Iterable[tuple[str, str]], name: str) -> list[str]:
    return [value for key, value in params if key == name]


def parse_reference(value: str, resource_type: str, param: str) -> str:
    """``Patient/<id>`` or ``<id>`` -> ``<id>``."""
    value = value.strip()
    if "/" in value:
        kind, _, value = value.partition("/")
        if kind != resource_type:
            raise SearchParamError(param, f"must reference a {resource_type}")
    if not value or not re.fullmatch(r"[A-Za-z0-9\-.]{1,64}", value):
        raise SearchParamError(param, "not a resource id")
    return value


def _zone(text: str | None, default: tzinfo) -> tzinfo:
    if text is None:
        return default
    if text == "Z":
        return UTC
    sign = 1 if text[0] == "+" else -1
    hours, minutes = int(text[1:3]), int(text[4:6])
    if hours > 14 or minutes > 59:
        raise ValueError("zone offset out of range")
    return timezone(sign * timedelta(hours=hours, minutes=minutes))


def _date_range(match: re.Match[str], default_tz: tzinfo) -> tuple[datetime, datetime]:
    g = match.groupdict()
    zone = _zone(g["zone"], default_tz)
    year = int(g["year"])
    if g["month"] is None:
        return datetime(year, 1, 1, tzinfo=zone), datetime(year + 1, 1, 1, tzinfo=zone)
    month = int(g["month"])
    if g["day"] is None:
        start = datetime(year, month, 1, tzinfo=zone)
        end = datetime(year + (month == 12), month % 12 + 1, 1, tzinfo=zone)
        return start, end
    day = int(g["day"])
    if g["hour"] is None:
        start = datetime(year, month, day, tzinfo=zone)
        return start, start + timedelta(days=1)
    hour, minute = int(g["hour"]), int(g["minute"])
    if g["second"] is None:
        start = datetime(year, month, day, hour, minute, tzinfo=zone)
        return start, start + timedelta(minutes=1)
    second = int(g["second"])
    fraction = g["fraction"]
    if fraction is None:
        start = datetime(year, month, day, hour, minute, second, tzinfo=zone)
        return start, start + timedelta(seconds=1)
    digits = fraction[1:]
    micro = int(digits.ljust(6, "0"))
    start = datetime(year, month, day, hour, minute, second, micro, tzinfo=zone)
    return start, start + timedelta(microseconds=10 ** (6 - len(digits)))


def parse_dates(values: Sequence[str], default_tz: tzinfo) -> Interval:
    """Every ``date`` value, ANDed, as one interval (UTC)."""
    interval = Interval()
    for raw in values:
        value = raw.strip().replace(" ", "+")  # a '+' sent unencoded in a query becomes a space
        match = _DATE.match(value)
        if match is None:
            raise SearchParamError("date", "expected [prefix]YYYY[-MM[-DD[Thh:mm[:ss][zone]]]]")
        prefix = match["prefix"] or "eq"
        if prefix not in _ALL_PREFIXES:
            raise SearchParamError("date", f"unknown prefix {prefix!r}")
        if prefix not in _SUPPORTED_PREFIXES:
            raise SearchParamError("date", f"prefix {prefix!r} is not supported", "not-supported")
        try:
            start, end = _date_range(match, default_tz)
        except ValueError as exc:
            raise SearchParamError("date", f"not a valid date: {exc}") from None
        start, end = start.astimezone(UTC), end.astimezone(UTC)
        bounds = {
            "eq": (start, end),
            "ge": (start, None),
            "gt": (end, None),
            "le": (None, end),
            "lt": (None, start),
        }[prefix]
        interval = interval.narrow(*bounds)
    return interval


def parse_codes(values: Sequence[str]) -> tuple[tuple[CodeToken, ...], ...]:
    """Each ``code`` parameter as its OR-list of tokens (the parameters are ANDed)."""
    out = []
    for value in values:
        tokens = []
        for item in value.split(","):
            item = item.strip()
            if not item:
                raise SearchParamError("code", "empty token")
            if "|" in item:
                system, _, code = item.partition("|")
                if not system and not code:
                    raise SearchParamError("code", "empty token")
                # "|code": explicitly no system. Ours always have one, so it matches nothing.
                tokens.append(CodeToken("" if not system else system, code or None))
            else:
                tokens.append(CodeToken(None, item))
        out.append(tuple(tokens))
    return tuple(out)


def codes_match(
    query: tuple[tuple[CodeToken, ...], ...], codings: Sequence[Mapping[str, Any]]
) -> bool:
    """True if every parameter has a token matching one of ``codings``."""
    return all(any(token.matches(c) for token in tokens for c in codings) for tokens in query)


def parse_count(values: Sequence[str]) -> int:
    if not values:
        return DEFAULT_COUNT
    if len(values) > 1:
        raise SearchParamError("_count", "given more than once")
    try:
        count = int(values[0])
    except ValueError:
        raise SearchParamError("_count", "not an integer") from None
    if not 1 <= count <= MAX_COUNT:
        raise SearchParamError("_count", f"must be between 1 and {MAX_COUNT}")
    return count


def parse_cursor(values: Sequence[str]) -> Cursor | None:
    if not values:
        return None
    if len(values) > 1:
        raise SearchParamError("_cursor", "given more than once")
    match = _CURSOR.match(values[0])
    if match is None:
        raise SearchParamError("_cursor", "not a paging token of this server")
    return Cursor(int(match[1]), int(match[2]), _PART_ORDER[ObservationPart(match[3])])


def values_of(params: Iterable[tuple[str, str]], name: str) -> list[str]:
    """All values of a (repeatable) parameter, in order."""
    return _values(params, name)
