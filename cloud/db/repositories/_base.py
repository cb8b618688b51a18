"""Shared plumbing of the repositories."""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cloud.db.base import Base
from cloud.errors import ConflictError

__all__ = ["add_and_flush"]


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
