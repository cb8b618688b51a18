"""The gateway's small local state beside the readings, in the outbox's SQLite file.

Sync watermarks (:mod:`gateway.watermarks`) and the last accepted cloud config
(:mod:`gateway.config_sync`) live in their own tables of the outbox file, so one durable file on
one disk holds everything a restart needs. Each store opens its own connection after the outbox
has opened (and checked, and switched to WAL) the file; SQLite serialises the writers. IO.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Final

__all__ = ["BUSY_TIMEOUT_S", "open_state_db"]

BUSY_TIMEOUT_S: Final = 30.0
"""How long a write waits for the outbox's writer to finish (it holds the lock for one fsync)."""


def open_state_db(path: Path | str, schema: str) -> sqlite3.Connection:
    """A connection to the outbox file with ``schema`` (``CREATE TABLE IF NOT EXISTS ...``)
    applied. Autocommit mode; commits are ``synchronous=FULL`` (a few per sync, cheap)."""
    db = sqlite3.connect(
        Path(path), timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
    )
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.executescript(schema)
    return db
