"""The outbox file holds health data: readable and writable by the gateway's user only.

A new file is created with mode 0600 (and its directory, if new, 0700) before SQLite opens it, so
the ``-wal`` and ``-shm`` files SQLite creates beside it get the same mode (SQLite copies the
database file's permissions). A file found open to the group or to others, with its companions,
is tightened to 0600. IO.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Final

__all__ = ["SQLITE_COMPANIONS", "private_sqlite_file"]

SQLITE_COMPANIONS: Final = ("-wal", "-shm", "-journal")


def private_sqlite_file(path: Path) -> list[Path]:
    """Make sure ``path`` exists with mode 0600; returns the files whose mode was tightened (the
    database or its companions), for the caller to log."""
    if not path.parent.exists():
        path.parent.mkdir(mode=0o700, parents=True)
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    except FileExistsError:
        pass
    tightened = []
    for candidate in (path, *(Path(f"{path}{suffix}") for suffix in SQLITE_COMPANIONS)):
        try:
            mode = stat.S_IMODE(candidate.stat().st_mode)
        except FileNotFoundError:
            continue
        if mode & 0o077:
            candidate.chmod(mode & 0o700)
            tightened.append(candidate)
    return tightened
