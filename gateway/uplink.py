"""How many bulk bytes may be on their way to the broker at once: the uplink pacer (docs/mqtt.md).

An urgent envelope is published behind every byte handed to paho before it: envelopes not yet
written, the socket's send buffer, the link itself. On loopback 64 bulk envelopes of ~54 KB are
a few milliseconds of that; on a 1 Mbit/s home uplink they are ~30 s. The pacer measures the
uplink's delivery rate and keeps the bulk bytes awaiting their PUBACK to what the link delivers
in ``max_queue_s``, so that an urgent reading waits about that long on any link.

The rate is measured the way BBR measures it: when an envelope leaves, the bytes PUBACKed so far
are noted; at its PUBACK, the bytes PUBACKed since, over the time since, is one sample. The
budget uses the highest sample of the last ``window_s``. With the budget at least the link's
bandwidth-delay product (its round trip shorter than ``max_queue_s``) the pipe stays full, so
the samples see the whole bandwidth and the budget follows it up; one envelope may always be
outstanding (``floor_bytes`` at least), so a link of any speed keeps moving.

Pure: the caller passes the time (``time.monotonic()``), nothing here reads a clock.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass

__all__ = ["SendMark", "UplinkPacer"]


@dataclass(frozen=True, slots=True)
class SendMark:
    """What the pacer noted when an envelope left: when, its size, the bytes PUBACKed before."""

    sent_at: float
    size: int
    delivered: int


class UplinkPacer:
    """Bulk bytes in flight, the measured delivery rate, and the room left for more."""

    def __init__(self, max_queue_s: float, floor_bytes: int, window_s: float = 10.0) -> None:
        if max_queue_s <= 0 or floor_bytes < 1 or window_s <= 0:
            raise ValueError("max_queue_s, floor_bytes and window_s must be positive")
        self.max_queue_s = max_queue_s
        self.floor_bytes = floor_bytes
        self.window_s = window_s
        self._outstanding = 0
        self._delivered = 0
        # (time, rate), rates decreasing from the front: the front is the window's maximum
        self._peaks: collections.deque[tuple[float, float]] = collections.deque()

    @property
    def outstanding(self) -> int:
        """Bulk bytes sent and not yet PUBACKed."""
        return self._outstanding

    def sent(self, now: float, size: int) -> SendMark:
        self._outstanding += size
        return SendMark(now, size, self._delivered)

    def pubacked(self, now: float, mark: SendMark) -> None:
        self._outstanding = max(0, self._outstanding - mark.size)
        self._delivered += mark.size
        elapsed = now - mark.sent_at
        if elapsed <= 0:
            return
        rate = (self._delivered - mark.delivered) / elapsed
        peaks = self._peaks
        while peaks and peaks[-1][1] <= rate:
            peaks.pop()
        peaks.append((now, rate))

    def rate(self, now: float) -> float | None:
        """Bytes per second: the highest sample of the last ``window_s``; None without one."""
        peaks = self._peaks
        while peaks and peaks[0][0] < now - self.window_s:
            peaks.popleft()
        return peaks[0][1] if peaks else None

    def budget(self, now: float) -> int:
        """Bulk bytes that may await their PUBACK: what the link delivers in ``max_queue_s``."""
        rate = self.rate(now)
        if rate is None:
            return self.floor_bytes
        return max(self.floor_bytes, int(rate * self.max_queue_s))

    def envelopes(self, now: float, envelope_bytes: int) -> int:
        """How many more envelopes of about ``envelope_bytes`` may leave now: enough to fill the
        budget (the last may overshoot it), so one at least when nothing is outstanding."""
        room = self.budget(now) - self._outstanding
        return -(-room // max(1, envelope_bytes)) if room > 0 else 0
