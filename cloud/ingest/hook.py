"""The seam between ingest and the alert rules: called with each committed batch.

The ingest calls :meth:`AlertHook.on_committed` after the batch's transaction committed and its
acks went out, with the readings stored *now* (duplicates were seen, and evaluated, before). The
hook runs on the worker's writer thread: it must be quick, or hand the readings to its own
queue. An exception in the hook is logged and does not stop the worker (the readings are stored;
the rules can catch up from the database). The rules come with a later issue; until then the
default hook does nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from cloud.db.repositories.readings import NewReading

__all__ = ["AlertHook", "NoopHook"]


class AlertHook(Protocol):
    def on_committed(self, readings: Sequence[NewReading]) -> None: ...


class NoopHook:
    """The default until the alert rules exist."""

    __slots__ = ()

    def on_committed(self, readings: Sequence[NewReading]) -> None:
        return None
