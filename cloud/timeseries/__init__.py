"""The time-series mirror: readings stored by the ingest, copied to InfluxDB 2 (or anything that
speaks its v2 write API, such as VictoriaMetrics) for charts and dashboards.

* :mod:`cloud.timeseries.points` (pure): a stored reading -> one line-protocol point.
* :mod:`cloud.timeseries.backoff` (pure): the wait before the next try after failures.
* :mod:`cloud.timeseries.writer` (IO): influxdb-client's synchronous write API.
* :mod:`cloud.timeseries.mirror` (IO): drains ``tsdb_pending`` in batches until stopped.

The ingest only inserts ``tsdb_pending`` rows in its own transaction (when ``tsdb.enabled``), so an
outage of the time-series store never blocks or loses ingest; the mirror catches up later.
"""
