"""Writing line-protocol points with influxdb-client's synchronous write API. IO, thin.

``SYNCHRONOUS`` mode: one HTTP request per :meth:`InfluxWriter.write`, which returns only once
the server accepted the batch (2xx) and raises otherwise, so the caller can delete its queue
entries knowing the points are stored. The client's own batching and retry threads are not used:
the mirror batches from the database queue and retries with its own backoff.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, cast

from influxdb_client import InfluxDBClient, WritePrecision
from influxdb_client.client.exceptions import InfluxDBError
from influxdb_client.client.write_api import SYNCHRONOUS
from influxdb_client.rest import ApiException
from urllib3.exceptions import HTTPError

from cloud.settings import TsdbSettings

__all__ = ["InfluxWriter", "PointWriter", "PointsRejectedError", "TsdbUnavailableError"]

# answers that refuse the data itself (a retry of the same points fails the same way)
_DATA_REJECTED = frozenset({400, 413, 422})


class TsdbUnavailableError(RuntimeError):
    """The store did not take the batch (unreachable, timeout, 5xx, auth): try again later."""


class PointsRejectedError(TsdbUnavailableError):
    """The store refused the batch as invalid (HTTP 400, 413, 422): retrying it is pointless."""


class PointWriter(Protocol):
    def write(self, lines: Sequence[str]) -> None: ...

    def close(self) -> None: ...


class InfluxWriter:
    """The InfluxDB v2 write API (``POST /api/v2/write``), millisecond precision."""

    def __init__(self, cfg: TsdbSettings) -> None:
        self._org = cfg.org
        self._bucket = cfg.bucket
        token = cfg.token.get_secret_value() if cfg.token is not None else ""  # "": no header
        self._client = InfluxDBClient(url=cfg.url, token=token, org=cfg.org, timeout=cfg.timeout_ms)
        self._write_api = self._client.write_api(write_options=SYNCHRONOUS)

    def write(self, lines: Sequence[str]) -> None:
        if not lines:
            return
        try:
            self._write_api.write(
                bucket=self._bucket,
                org=self._org,
                record=list(lines),
                write_precision=cast(Any, WritePrecision.MS),  # a str constant, typed as the class
            )
        except ApiException as exc:
            status = int(exc.status or 0)
            if status in _DATA_REJECTED:
                raise PointsRejectedError(f"HTTP {status}") from exc
            raise TsdbUnavailableError(f"HTTP {status}") from exc
        except (InfluxDBError, HTTPError, OSError) as exc:  # refused, reset, timed out...
            raise TsdbUnavailableError(type(exc).__name__) from exc

    def close(self) -> None:
        self._write_api.close()
        self._client.close()
