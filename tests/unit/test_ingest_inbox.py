"""The ingest worker's hand-over from paho's thread to the writer (cloud/ingest/inbox.py)."""

from __future__ import annotations

import threading
import time

from cloud.ingest.inbox import Inbox


def test_take_returns_up_to_limit_in_order_without_waiting_when_full() -> None:
    inbox: Inbox[int] = Inbox(maxsize=100)
    for n in range(25):
        inbox.put(n)
    started = time.monotonic()
    assert inbox.take(10, 1.0, 5.0) == list(range(10))
    assert inbox.take(10, 1.0, 5.0) == list(range(10, 20))
    assert time.monotonic() - started < 0.5  # full batches never wait for the window
    assert len(inbox) == 5


def test_take_waits_the_window_after_the_first_message_then_returns_what_came() -> None:
    inbox: Inbox[int] = Inbox(maxsize=100)
    inbox.put(1)

    def later() -> None:
        time.sleep(0.05)
        inbox.put(2)

    threading.Thread(target=later).start()
    started = time.monotonic()
    assert inbox.take(10, 1.0, 0.3) == [1, 2]
    assert 0.25 <= time.monotonic() - started < 1.0


def test_take_wakes_when_the_batch_fills_before_the_window_ends() -> None:
    inbox: Inbox[int] = Inbox(maxsize=100)

    def producer() -> None:
        for n in range(5):
            time.sleep(0.02)
            inbox.put(n)

    threading.Thread(target=producer).start()
    started = time.monotonic()
    assert inbox.take(5, 2.0, 5.0) == [0, 1, 2, 3, 4]
    assert time.monotonic() - started < 1.5


def test_take_returns_nothing_after_the_first_timeout_and_stops_early() -> None:
    inbox: Inbox[int] = Inbox(maxsize=100)
    started = time.monotonic()
    assert inbox.take(10, 0.05, 5.0) == []
    assert time.monotonic() - started < 1.0
    inbox.put(7)
    started = time.monotonic()
    assert inbox.take(10, 1.0, 5.0, stop=lambda: True) == [7]
    assert time.monotonic() - started < 0.5


def test_a_full_inbox_blocks_the_producer_until_the_writer_takes() -> None:
    inbox: Inbox[int] = Inbox(maxsize=3)
    done = threading.Event()

    def producer() -> None:
        for n in range(6):
            inbox.put(n)
        done.set()

    threading.Thread(target=producer, daemon=True).start()
    assert not done.wait(0.3)  # blocked in the put that went over maxsize
    assert len(inbox) == 4
    taken = inbox.take(10, 1.0, 0.01)
    assert done.wait(2.0)
    taken += inbox.take(10, 1.0, 0.01)
    assert taken == list(range(6))


def test_a_batch_ends_with_the_message_that_reaches_max_weight() -> None:
    inbox: Inbox[bytes] = Inbox(maxsize=100, weigh=len)
    for size in (400, 400, 400, 50, 7000, 10):
        inbox.put(b"x" * size)
    assert [len(m) for m in inbox.take(10, 1.0, 5.0, max_weight=1000)] == [400, 400, 400]
    assert [len(m) for m in inbox.take(10, 1.0, 5.0, max_weight=1000)] == [50, 7000]  # fits alone
    assert [len(m) for m in inbox.take(10, 1.0, 0.01, max_weight=1000)] == [10]
