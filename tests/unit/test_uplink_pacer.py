"""The uplink pacer (gateway/uplink.py): bulk bytes allowed in flight follow the measured rate."""

from __future__ import annotations

import pytest

from gateway.uplink import SendMark, UplinkPacer

KB = 1000
ENVELOPE = 50 * KB


def drive(pacer: UplinkPacer, link_bytes_per_s: float, rtt_s: float, seconds: float) -> list[int]:
    """Simulate a link (serialisation at ``link_bytes_per_s`` plus ``rtt_s``) kept as full as the
    pacer allows with envelopes of ENVELOPE bytes; returns the outstanding bytes at each send."""
    now = 0.0
    link_free = 0.0
    in_flight: list[tuple[float, SendMark]] = []  # (PUBACK time, mark)
    seen: list[int] = []
    while now < seconds:
        for _ in range(pacer.envelopes(now, ENVELOPE)):
            mark = pacer.sent(now, ENVELOPE)
            seen.append(pacer.outstanding)
            link_free = max(link_free, now) + ENVELOPE / link_bytes_per_s
            in_flight.append((link_free + rtt_s, mark))
        in_flight.sort(key=lambda item: item[0])
        now = in_flight[0][0]  # the next PUBACK
        while in_flight and in_flight[0][0] <= now:
            _, mark = in_flight.pop(0)
            pacer.pubacked(now, mark)
    return seen


def test_before_any_puback_one_envelope_may_leave() -> None:
    pacer = UplinkPacer(max_queue_s=1.0, floor_bytes=64 * KB)
    assert pacer.rate(0.0) is None
    assert pacer.envelopes(0.0, ENVELOPE) == 2  # 64 KB of room: a second one overshoots it
    pacer.sent(0.0, ENVELOPE)
    pacer.sent(0.0, ENVELOPE)
    assert pacer.envelopes(0.0, ENVELOPE) == 0


@pytest.mark.parametrize(
    ("link", "rtt"), [(125 * KB, 0.05), (1_000 * KB, 0.2), (30 * KB, 0.3), (50_000 * KB, 0.001)]
)
def test_the_queue_ahead_of_an_urgent_message_stays_near_max_queue_s_and_the_link_stays_full(
    link: float, rtt: float
) -> None:
    pacer = UplinkPacer(max_queue_s=1.0, floor_bytes=64 * KB)
    outstanding = drive(pacer, link, rtt, seconds=30)
    steady = outstanding[len(outstanding) // 2 :]
    # what an urgent envelope would wait for: the bytes ahead of it, at the link's rate
    worst_wait_s = max(steady) / link
    assert worst_wait_s <= 1.0 + rtt + 2 * ENVELOPE / link
    rate = pacer.rate(30.0)
    assert rate is not None
    assert rate >= 0.9 * link  # the samples saw the whole bandwidth: the link was kept full


def test_the_budget_follows_the_link_down_after_the_window() -> None:
    pacer = UplinkPacer(max_queue_s=1.0, floor_bytes=10 * KB, window_s=5.0)
    drive(pacer, 10_000 * KB, 0.01, seconds=2)
    assert pacer.budget(2.0) >= 9_000 * KB
    # later the link is slow (the old peak ages out of the window)
    mark = pacer.sent(20.0, ENVELOPE)
    pacer.pubacked(21.0, mark)
    assert pacer.budget(21.0) == pytest.approx(ENVELOPE, rel=0.01)
    assert pacer.rate(21.0) == pytest.approx(ENVELOPE, rel=0.01)


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(ValueError, match="positive"):
        UplinkPacer(max_queue_s=0, floor_bytes=1)
    with pytest.raises(ValueError, match="positive"):
        UplinkPacer(max_queue_s=1, floor_bytes=0)
