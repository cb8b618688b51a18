"""Shared plumbing of the repositories."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session

from cloud.db.base import Base
from cloud.errors import ConflictError

__all__ = ["add_and_flush", "driver_errors"]


def add_and_flush(session: Session, row: Base, resource: str, conflict_reason: str) -> None:
    """Add ``row`` and flush it; a violated unique constraint becomes :class:`ConflictError`.

    The unit of work is rolled back first: a request that conflicts changes nothing.
    """
    session.add(row)
    try:
        session.flush()
    except IntegrityError as exc:
        session.rollback()
        raise ConflictError(resource, conflict_reason) from exc


@contextmanager
def driver_errors(connection: Connection, statement: str) -> Iterator[None]:
    """For the few hot statements run on the driver's own cursor: raise what the driver raised
    as SQLAlchemy would (``sqlalchemy.exc.OperationalError`` for the driver's
    ``OperationalError``...; a ``StatementError`` for a value no type accepts, like a naive
    datetime), parameters hidden. Callers handle SQLAlchemy's errors only."""
    try:
        yield
    except Exception as exc:
        dbapi = connection.dialect.loaded_dbapi
        raise DBAPIError.instance(
            statement, None, exc, dbapi.Error, hide_parameters=True, dialect=connection.dialect
        ) from exc
