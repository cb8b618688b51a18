"""Typed errors of the edge layer.

One root, :class:`EdgeError`. The edge never raises for a *reading* (an odd value becomes a flag,
not an exception); it raises only for local misuse such as thresholds that make no sense.
"""

from __future__ import annotations

__all__ = ["EdgeError", "NaiveTimeError", "ThresholdError"]


class EdgeError(Exception):
    """Root of every error raised by :mod:`edge`."""


class ThresholdError(EdgeError, ValueError):
    """A threshold or limit is outside its sane range (``name`` = field, ``value`` = as given)."""

    def __init__(self, name: str, value: float, reason: str) -> None:
        self.name = name
        self.value = value
        self.reason = reason
        super().__init__(f"{name}={value!r}: {reason}")


class NaiveTimeError(EdgeError, ValueError):
    """A time given to the edge has no time zone (``name`` = the parameter). The edge works in
    aware UTC; a naive ``now`` would silently be read in the machine's zone."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"{name} must be an aware datetime (UTC), got a naive one")
