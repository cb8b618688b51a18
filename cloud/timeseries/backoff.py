"""The wait before the next try after consecutive failures. Pure."""

from __future__ import annotations

__all__ = ["backoff_s"]


def backoff_s(failures: int, minimum_s: float, maximum_s: float) -> float:
    """``minimum_s * 2**(failures - 1)``, capped at ``maximum_s``; 0 before any failure."""
    if failures <= 0:
        return 0.0
    if minimum_s <= 0 or maximum_s < minimum_s:
        raise ValueError("need 0 < minimum_s <= maximum_s")
    return min(maximum_s, minimum_s * 2.0 ** min(failures - 1, 60))
