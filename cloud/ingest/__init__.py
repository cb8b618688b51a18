"""Ingest: MQTT readings, statuses and events from gateways into the health record database.

See docs/ingest.md. :class:`IngestWorker` subscribes (shared subscription), stores batches
idempotently, acks to the gateways after the commit and calls the :class:`AlertHook`.
"""

from __future__ import annotations

from cloud.ingest.hook import AlertHook, NoopHook
from cloud.ingest.store import BatchOutcome, BatchStore, Inbound, StoreUnavailableError
from cloud.ingest.worker import IngestStats, IngestWorker, subscription_filters

__all__ = [
    "AlertHook",
    "BatchOutcome",
    "BatchStore",
    "Inbound",
    "IngestStats",
    "IngestWorker",
    "NoopHook",
    "StoreUnavailableError",
    "subscription_filters",
]
