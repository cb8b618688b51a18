"""``readings`` rows in the database's own representation: the ingest's insert without
SQLAlchemy's per-value type processing.

SQLAlchemy turns every bound value into what the driver stores (:class:`UtcDateTime` to a UTC
datetime, then SQLite's ``DATETIME`` to a string; ``Uuid`` to 32 hex digits on SQLite; ``JSON``
through ``json.dumps``) by calling one processor per value, ~2.5 µs per value on this project's
machine and 30 values a row. The ingest inserts many rows of one fixed shape, so this module
computes the same stored values directly, one tuple per row in :data:`COLUMNS` order:

* SQLite (pysqlite): times as ``YYYY-MM-DD HH:MM:SS.ffffff`` in UTC without a zone, UUIDs as
  32 lowercase hex digits, JSON as ``json.dumps`` text (a ``None`` context is the JSON text
  ``null``, as SQLAlchemy's ``JSON`` stores it), booleans as 0/1.
* PostgreSQL (psycopg 3): native values (aware UTC datetimes, ``uuid.UUID``, booleans); the
  JSON columns as the same ``json.dumps`` text, cast with ``::json`` in the SQL.

``tests/integration/cloud/test_reading_rows.py`` stores a reading with every field through this
path and through SQLAlchemy's and compares the stored values, on both databases. Change a
column of ``ReadingRow`` and this module must change with it (the test fails otherwise).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

import orjson

if TYPE_CHECKING:
    from cloud.db.repositories.readings import NewReading

__all__ = [
    "COLUMNS",
    "ROW_BUILDERS",
    "RowEncoder",
    "insert_sql",
    "postgres_row",
    "rows_for",
    "sqlite_row",
]

COLUMNS: Final[tuple[str, ...]] = (
    "reading_id",
    "kind",
    "household_id",
    "person_id",
    "gateway_id",
    "device_id",
    "device_key",
    "attribution",
    "sequence_number",
    "user_slot",
    "device_time",
    "measured_at",
    "received_at",
    "effective_at",
    "stored_at",
    "clock_skew_s",
    "glucose_mmol_l",
    "systolic_mmhg",
    "diastolic_mmhg",
    "mean_arterial_mmhg",
    "pulse_bpm",
    "original_value",
    "original_unit",
    "sample_type",
    "sample_location",
    "meal",
    "context",
    "status_bits",
    "flags",
    "urgent",
)
"""The inserted columns (every column of ``readings`` but ``id``: ``NewReading``'s fields), in
the order of every row tuple."""

_JSON_CACHE_MAX: Final = 1024


def _insert_sql(dialect: str, *, returning: bool) -> str:
    if dialect == "postgresql":
        marks = ", ".join("%s::json" if c in ("context", "flags") else "%s" for c in COLUMNS)
    else:
        marks = ", ".join("?" for _ in COLUMNS)
    sql = (  # constant column names and placeholders only
        f"INSERT INTO readings ({', '.join(COLUMNS)}) VALUES ({marks}) "  # noqa: S608
        "ON CONFLICT (reading_id) DO NOTHING"
    )
    return sql + " RETURNING reading_id" if returning else sql


_SQL: Final[dict[tuple[str, bool], str]] = {
    (dialect, returning): _insert_sql(dialect, returning=returning)
    for dialect in ("sqlite", "postgresql")
    for returning in (False, True)
}


def insert_sql(dialect: str, *, returning: bool) -> str:
    """``INSERT INTO readings (...) VALUES (...) ON CONFLICT (reading_id) DO NOTHING`` with the
    driver's placeholders (``?`` for pysqlite, ``%s`` for psycopg; JSON cast on PostgreSQL)."""
    return _SQL[dialect, returning]


def _utc(value: datetime) -> datetime:
    """What :class:`UtcDateTime` binds: refuse naive times, convert to UTC."""
    if value.tzinfo is UTC:
        return value
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("naive datetime: store aware UTC times only")
    return value.astimezone(UTC)


def _sqlite_time(value: datetime) -> str:
    """SQLAlchemy's SQLite ``DATETIME`` storage format of the UTC time (years are 4 digits in
    both ``isoformat`` and SQLAlchemy's ``%04d``)."""
    return _utc(value).isoformat(" ", "microseconds")[:26]


class RowEncoder:
    """Caches the ``json.dumps`` text of the few distinct ``flags`` and ``context`` values (a
    worker sees the same handful again and again) and the batch's ``stored_at``."""

    __slots__ = ("_contexts", "_flags", "_times")

    def __init__(self) -> None:
        self._flags: dict[tuple[str, ...], str] = {(): "[]"}
        self._contexts: dict[bytes, str] = {}
        self._times: dict[datetime, str] = {}

    def flags(self, value: tuple[str, ...]) -> str:
        try:
            text = self._flags.get(value)
        except TypeError:  # not a tuple of strings after all
            return json.dumps(list(value))
        if text is None:
            text = json.dumps(list(value))
            if len(self._flags) < _JSON_CACHE_MAX:
                self._flags[value] = text
        return text

    def context(self, value: dict[str, Any] | None) -> str:
        if value is None:
            return "null"
        try:  # orjson's text tells 1 from 1.0 and True (a tuple of the items would not)
            key = orjson.dumps(value)
        except (TypeError, orjson.JSONEncodeError):
            return json.dumps(value)
        text = self._contexts.get(key)
        if text is None:
            text = json.dumps(value)
            if len(self._contexts) < _JSON_CACHE_MAX:
                self._contexts[key] = text
        return text

    def sqlite_time(self, value: datetime) -> str:
        """For the time shared by a whole batch (``stored_at``): formatted once."""
        text = self._times.get(value)
        if text is None:
            if len(self._times) > 16:
                self._times.clear()
            text = self._times[value] = _sqlite_time(value)
        return text


def sqlite_row(r: NewReading, enc: RowEncoder) -> tuple[Any, ...]:
    """The values pysqlite stores for ``r``, exactly as SQLAlchemy's types would bind them."""
    measured = r.measured_at
    received = r.received_at
    measured_text = None if measured is None else _sqlite_time(measured)
    received_text = _sqlite_time(received)
    effective = r.effective_at
    if effective is measured:
        effective_text = measured_text
    elif effective is received:
        effective_text = received_text
    else:
        effective_text = _sqlite_time(effective)
    household, person, gateway, device = r.household_id, r.person_id, r.gateway_id, r.device_id
    return (
        r.reading_id,
        r.kind,
        None if household is None else household.hex,
        None if person is None else person.hex,
        None if gateway is None else gateway.hex,
        None if device is None else device.hex,
        r.device_key,
        r.attribution,
        r.sequence_number,
        r.user_slot,
        r.device_time,
        measured_text,
        received_text,
        effective_text,
        enc.sqlite_time(r.stored_at),
        r.clock_skew_s,
        r.glucose_mmol_l,
        r.systolic_mmhg,
        r.diastolic_mmhg,
        r.mean_arterial_mmhg,
        r.pulse_bpm,
        r.original_value,
        r.original_unit,
        r.sample_type,
        r.sample_location,
        r.meal,
        enc.context(r.context),
        r.status_bits,
        enc.flags(r.flags),
        1 if r.urgent else 0,
    )


def postgres_row(r: NewReading, enc: RowEncoder) -> tuple[Any, ...]:
    """The values psycopg binds for ``r`` (native types; JSON as text for ``::json``)."""
    measured = r.measured_at
    return (
        r.reading_id,
        r.kind,
        r.household_id,
        r.person_id,
        r.gateway_id,
        r.device_id,
        r.device_key,
        r.attribution,
        r.sequence_number,
        r.user_slot,
        r.device_time,
        None if measured is None else _utc(measured),
        _utc(r.received_at),
        _utc(r.effective_at),
        _utc(r.stored_at),
        r.clock_skew_s,
        r.glucose_mmol_l,
        r.systolic_mmhg,
        r.diastolic_mmhg,
        r.mean_arterial_mmhg,
        r.pulse_bpm,
        r.original_value,
        r.original_unit,
        r.sample_type,
        r.sample_location,
        r.meal,
        enc.context(r.context),
        r.status_bits,
        enc.flags(r.flags),
        bool(r.urgent),
    )


ROW_BUILDERS: Final[dict[str, Callable[[NewReading, RowEncoder], tuple[Any, ...]]]] = {
    "sqlite": sqlite_row,
    "postgresql": postgres_row,
}


def rows_for(
    dialect: str, readings: Sequence[NewReading], enc: RowEncoder
) -> list[tuple[Any, ...]]:
    build = ROW_BUILDERS[dialect]
    return [build(r, enc) for r in readings]
