"""The gateway's small local state beside the readings, in the outbox's SQLite file.

Sync watermarks (:mod:`gateway.watermarks`) and the last accepted cloud config
(:mod:`gateway.config_sync`) live in their own tables of the outbox file, so one durable file on
one disk holds everything a restart needs. Each store opens its own connection after the outbox
has opened (and checked, and switched to WAL) the file; SQLite serialises the writers. IO.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar, Final

__all__ = ["BUSY_TIMEOUT_S", "StateTable", "open_state_db"]

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


class StateTable:
    """Base of the small stores in the outbox file: one connection with the subclass's ``SCHEMA``
    applied, one lock around it (thread-safe), a wall clock for timestamps."""

    SCHEMA: ClassVar[str]

    def __init__(self, path: Path | str, *, clock: Callable[[], float] = time.time) -> None:
        self._db = open_state_db(path, self.SCHEMA)
        self._lock = threading.Lock()
        self._clock = clock

    def close(self) -> None:
        with self._lock:
            self._db.close()
