"""The hand-over from paho's network thread to the writer thread of one ingest worker.

A ``deque`` (``append``/``popleft`` are atomic) plus one condition the writer waits on. Unlike
``queue.Queue`` a put takes no lock unless the writer is asleep waiting for what the put
brings, and the writer takes a whole batch in one call: the per-message cost on paho's thread
(which shares the GIL with the writer) is an append. Bounded: :meth:`put` blocks while
``maxsize`` messages wait, which happens only if a broker ignores the worker's Receive Maximum
(then TCP pushes back).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

__all__ = ["Inbox"]

_T = TypeVar("_T")


class Inbox(Generic[_T]):
    """One producer (paho's thread), one consumer (the writer)."""

    __slots__ = ("_cond", "_full_waiters", "_items", "_maxsize", "_want", "_weigh")

    def __init__(self, maxsize: int, weigh: Callable[[_T], int] | None = None) -> None:
        self._items: deque[_T] = deque()
        self._maxsize = maxsize
        self._weigh = weigh  # a message's size (bytes) for take()'s max_weight
        self._cond = threading.Condition(threading.Lock())
        self._want = 0  # > 0 while the writer sleeps until this many messages wait
        self._full_waiters = 0

    def __len__(self) -> int:
        return len(self._items)

    def put(self, item: _T) -> None:
        items = self._items
        items.append(item)
        want = self._want  # read after the append: see take()
        if want and len(items) >= want:
            with self._cond:
                self._cond.notify()
        if len(items) > self._maxsize:
            with self._cond:
                self._full_waiters += 1
                try:
                    while len(items) > self._maxsize:
                        self._cond.wait(0.1)
                finally:
                    self._full_waiters -= 1

    def take(
        self,
        limit: int,
        first_timeout_s: float,
        window_s: float,
        stop: Callable[[], bool] = lambda: False,
        max_weight: int | None = None,
    ) -> list[_T]:
        """Up to ``limit`` messages: waits up to ``first_timeout_s`` for the first one (else
        returns ``[]``), then until ``limit`` are there or ``window_s`` after the first, or
        ``stop()`` is true. With ``max_weight`` (and ``weigh``), the batch also ends with the
        message that brings its weight to ``max_weight`` (so one message always fits)."""
        items = self._items
        if not items and not self._sleep(1, first_timeout_s):
            return []
        deadline = time.monotonic() + window_s
        batch: list[_T] = []
        weigh = self._weigh if max_weight is not None else None
        room = max_weight if max_weight is not None else 0
        pop = items.popleft
        while True:
            try:
                if weigh is None:
                    while len(batch) < limit:
                        batch.append(pop())
                else:
                    while len(batch) < limit and room > 0:
                        item = pop()
                        batch.append(item)
                        room -= weigh(item)
            except IndexError:
                pass
            if self._full_waiters:
                with self._cond:
                    self._cond.notify_all()
            if len(batch) >= limit or (weigh is not None and room <= 0) or stop():
                return batch
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not self._sleep(limit - len(batch), remaining):
                try:  # whatever came in at the last moment
                    while len(batch) < limit and (weigh is None or room > 0):
                        item = pop()
                        batch.append(item)
                        if weigh is not None:
                            room -= weigh(item)
                except IndexError:
                    pass
                return batch

    def _sleep(self, want: int, timeout_s: float) -> bool:
        """Sleep until ``want`` messages wait or ``timeout_s``; True if any message waits.
        ``_want`` is set before the length is checked and the producer reads it after its
        append, so a put is never missed: either it sees ``_want`` and notifies, or its
        message is already counted here."""
        with self._cond:
            self._want = want
            try:
                if len(self._items) < want:
                    self._cond.wait(timeout_s)
            finally:
                self._want = 0
        return bool(self._items)
