"""Edge processing on the gateway (pure, numpy): clock placement, dedupe and order, quality flags,
local urgent rules. Entry point: :func:`edge.pipeline.process`. See docs/edge.md."""

from __future__ import annotations

from edge.pipeline import EdgeConfig, EdgeState, EdgeStats, ProcessedBatch, process
from edge.urgent import LocalAlert, Severity, ThresholdSet, UrgentRule, UrgentThresholds

__all__ = [
    "EdgeConfig",
    "EdgeState",
    "EdgeStats",
    "LocalAlert",
    "ProcessedBatch",
    "Severity",
    "ThresholdSet",
    "UrgentRule",
    "UrgentThresholds",
    "process",
]
