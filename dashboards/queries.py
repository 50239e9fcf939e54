"""The dashboard's queries: SQL over Delta tables, answered by delta-rs into pandas.

The originals' dashboards are Databricks SQL queries over gold tables. Here the same queries
run on DataFusion through `deltalake.QueryBuilder`, so the dashboard needs neither Spark nor a
JVM. Each query names the one table it reads; a table that does not exist yet (or exists with
no rows) reads as an empty frame with the query's columns, so a page can show an empty state
instead of an error.

Time windows ("last 60 minutes", "last 24 hours") end at the newest row of the table unless an
explicit `end` is given: a demo that was stopped an hour ago still shows its last hour, and a
producer's clock that differs from the dashboard machine's does not empty the charts.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from deltalake import DeltaTable, QueryBuilder

from iotlake.config import Settings
from spark_jobs.io import storage

SEISMOGRAPH = "seismograph"
AWS_IOT = "aws-iot"
ARDUINO = "arduino"
TEXT_SENTIMENT = "text-sentiment"
# Systems whose pipelines write an event log; more join as their pipelines land.
MANUFACTURING = "manufacturing"
SYSTEMS: tuple[str, ...] = (SEISMOGRAPH, AWS_IOT, ARDUINO, TEXT_SENTIMENT, MANUFACTURING)


def open_table(settings: Settings, system: str, table: str) -> DeltaTable | None:
    """The table's newest version, or None while no pipeline has created it."""
    return storage.open_table(settings, system, table)


def query(
    settings: Settings,
    system: str,
    table: str,
    sql: str | Callable[[DeltaTable], str],
    columns: list[str],
) -> pd.DataFrame:
    """Run `sql`, in which the table is known by its own name, and return its rows.

    `sql` may be a function of the opened table, for queries whose text depends on the
    table's log (its newest time). A missing table gives an empty frame with `columns`, so
    callers treat "not created yet" and "created but empty" alike.
    """
    delta_table = open_table(settings, system, table)
    if delta_table is None:
        return pd.DataFrame(columns=columns)
    text = sql(delta_table) if callable(sql) else sql
    frame = pa.table(QueryBuilder().register(table, delta_table).execute(text)).to_pandas()
    return frame if not frame.empty else pd.DataFrame(columns=columns)


def newest(delta_table: DeltaTable, column: str) -> pd.Timestamp | None:
    """The newest value of `column` according to the file statistics in the Delta log.

    Reading it from the log costs no data scan, and a literal bound lets DataFusion skip
    every file older than the window: streaming appends leave many small files, and a
    `(SELECT max(...))` bound reads them all on every refresh (measured: 16 ms instead of
    390 ms over 400 files). None when some file has no statistics for the column.
    """
    actions = pa.table(delta_table.get_add_actions(flatten=True))
    name = f"max.{column}"
    if actions.num_rows == 0 or name not in actions.column_names or actions[name].null_count:
        return None
    return pd.Timestamp(pc.max(actions[name]).as_py())


def sql_time(instant: datetime) -> str:
    """A UTC instant as a DataFusion timestamp literal."""
    value = pd.Timestamp(instant)
    value = value.tz_localize("UTC") if value.tzinfo is None else value.tz_convert("UTC")
    return f"CAST('{value.strftime('%Y-%m-%dT%H:%M:%S.%fZ')}' AS TIMESTAMP)"


def _window(
    delta_table: DeltaTable, table: str, column: str, span: str, end: datetime | None
) -> str:
    """The WHERE condition keeping `column` within `span` (an SQL interval) before `end`.

    Without `end` the window closes at the table's newest `column` (see the module's
    docstring): the newest value from the log when it has statistics, else a subquery.
    """
    if end is not None:
        until = sql_time(end)
        return f"{column} > {until} - INTERVAL '{span}' AND {column} <= {until}"
    found = newest(delta_table, column)
    until = sql_time(found) if found is not None else f"(SELECT max({column}) FROM {table})"
    return f"{column} > {until} - INTERVAL '{span}'"


# --- seismograph ------------------------------------------------------------------------


def global_stat(settings: Settings) -> pd.DataFrame:
    """The one-row running statistics behind the "Global Statistics" counters."""
    sql = 'SELECT events, "max", "min", "avg", "stddev" FROM global_stat LIMIT 1'
    columns = ["events", "max", "min", "avg", "stddev"]
    return query(settings, SEISMOGRAPH, "global_stat", sql, columns)


def max_magn_by_device(settings: Settings) -> pd.DataFrame:
    """Max magnitude per client, for the histogram (M-Histo)."""
    sql = "SELECT device, max_magn FROM max_magn_by_device ORDER BY device"
    return query(settings, SEISMOGRAPH, "max_magn_by_device", sql, ["device", "max_magn"])


def magn_heatmap(settings: Settings, seconds: int) -> pd.DataFrame:
    """Per-device maxima per heat-map bin over the last `seconds` up to the newest bin.

    With bins of b seconds (`settings.seismograph.heatmap_bin_seconds`, 2 by default),
    `seconds` = N x b keeps exactly the newest N bins: newest - (N-1) x b ... newest.
    """

    def sql(delta_table: DeltaTable) -> str:
        where = _window(delta_table, "magn_heatmap", "time_bin", f"{int(seconds)} seconds", None)
        return (
            f"SELECT device, time_bin, magn FROM magn_heatmap WHERE {where} "
            "ORDER BY time_bin, device"
        )

    return query(settings, SEISMOGRAPH, "magn_heatmap", sql, ["device", "time_bin", "magn"])


def magn_live(settings: Settings, windows: int = 30) -> pd.DataFrame:
    """The newest `windows` 1-second averages, oldest first (M-Magn SSS: limit 30)."""
    sql = (
        "SELECT window_start, window_end, avg_magn FROM ("
        "SELECT window_start, window_end, avg_magn FROM magn_live "
        f"ORDER BY window_start DESC LIMIT {int(windows)}) ORDER BY window_start"
    )
    columns = ["window_start", "window_end", "avg_magn"]
    return query(settings, SEISMOGRAPH, "magn_live", sql, columns)


# --- aws-iot ----------------------------------------------------------------------------


def temperature_trend(
    settings: Settings, minutes: int = 60, end: datetime | None = None
) -> pd.DataFrame:
    """Fleet average per minute over the `minutes` before `end` (query_for_temperature_trend)."""

    def sql(delta_table: DeltaTable) -> str:
        span = f"{int(minutes)} minutes"
        where = _window(delta_table, "temperature_trend", "time_window", span, end)
        return (
            "SELECT time_window, average_fleet_temp FROM temperature_trend "
            f"WHERE {where} ORDER BY time_window"
        )

    columns = ["time_window", "average_fleet_temp"]
    return query(settings, AWS_IOT, "temperature_trend", sql, columns)


def critical_by_device(
    settings: Settings, hours: int = 24, end: datetime | None = None
) -> pd.DataFrame:
    """Critical readings per device over the `hours` before `end`, most first.

    The gold table holds per-minute counts; summing them per device gives the original's
    `COUNT(*) ... WHERE is_critical GROUP BY device_id` (query_for_anomaly_bar_chart).
    """

    def sql(delta_table: DeltaTable) -> str:
        span = f"{int(hours)} hours"
        where = _window(delta_table, "critical_by_device", "time_window", span, end)
        return (
            "SELECT device_id, CAST(SUM(critical_count) AS BIGINT) AS critical_count "
            f"FROM critical_by_device WHERE {where} "
            "GROUP BY device_id ORDER BY critical_count DESC, device_id"
        )

    columns = ["device_id", "critical_count"]
    return query(settings, AWS_IOT, "critical_by_device", sql, columns)


# --- data quality (every system's event_log) ---------------------------------------------


def expectation_results(settings: Settings, system: str) -> pd.DataFrame:
    """Passed and failed rows per expectation per table, over every batch."""
    sql = (
        'SELECT "table", expectation, max(action) AS action, '
        "CAST(SUM(passed) AS BIGINT) AS passed, CAST(SUM(failed) AS BIGINT) AS failed "
        "FROM event_log WHERE expectation IS NOT NULL "
        'GROUP BY "table", expectation ORDER BY "table", expectation'
    )
    columns = ["table", "expectation", "action", "passed", "failed"]
    return query(settings, system, "event_log", sql, columns)


def dropped_by_batch(settings: Settings, system: str) -> pd.DataFrame:
    """Rows dropped by `drop` expectations per table and batch, in batch order."""
    sql = (
        'SELECT "table", batch_id, CAST(SUM(failed) AS BIGINT) AS dropped FROM event_log '
        "WHERE expectation IS NOT NULL AND action = 'drop' "
        'GROUP BY "table", batch_id ORDER BY "table", batch_id'
    )
    return query(settings, system, "event_log", sql, ["table", "batch_id", "dropped"])


def latest_batches(settings: Settings, system: str) -> pd.DataFrame:
    """Each table's newest batch: rows in and out and how long it took."""
    sql = (
        'SELECT "table", batch_id, "timestamp", rows_in, rows_out, duration_ms FROM ('
        'SELECT *, ROW_NUMBER() OVER (PARTITION BY "table" '
        'ORDER BY batch_id DESC, "timestamp" DESC) AS newest '
        "FROM event_log WHERE expectation IS NULL) WHERE newest = 1 "
        'ORDER BY "table"'
    )
    columns = ["table", "batch_id", "timestamp", "rows_in", "rows_out", "duration_ms"]
    return query(settings, system, "event_log", sql, columns)


# --- arduino ----------------------------------------------------------------------------


def temp_hum(settings: Settings, minutes: int = 60, end: datetime | None = None) -> pd.DataFrame:
    """Average temperature and humidity per minute over the `minutes` before `end`.

    One gold table answers both of the original `temp_hum` dashboard's queries
    (temperature_query, humidity_query).
    """

    def sql(delta_table: DeltaTable) -> str:
        where = _window(delta_table, "temp_hum", "minute", f"{int(minutes)} minutes", end)
        return f"SELECT minute, temperature, humidity FROM temp_hum WHERE {where} ORDER BY minute"

    return query(settings, ARDUINO, "temp_hum", sql, ["minute", "temperature", "humidity"])


def distance_readings(
    settings: Settings, minutes: int = 10, end: datetime | None = None
) -> pd.DataFrame:
    """The SR04's distance readings over the `minutes` before `end`, oldest first."""

    def sql(delta_table: DeltaTable) -> str:
        # `timestamp` is quoted in SQL, so the window's bound comes from the log here.
        found = end if end is not None else newest(delta_table, "timestamp")
        until = sql_time(found) if found is not None else '(SELECT max("timestamp") FROM distance)'
        where = f"\"timestamp\" > {until} - INTERVAL '{int(minutes)} minutes'"
        if end is not None:
            where += f' AND "timestamp" <= {until}'
        return f'SELECT "timestamp", distance FROM distance WHERE {where} ORDER BY "timestamp"'

    return query(settings, ARDUINO, "distance", sql, ["timestamp", "distance"])


def pir_detections(settings: Settings) -> pd.DataFrame:
    """How many movements the PIR sensor detected (rows of `pir_stream_test`)."""
    sql = "SELECT CAST(COUNT(*) AS BIGINT) AS detections FROM pir_stream_test HAVING COUNT(*) > 0"
    return query(settings, ARDUINO, "pir_stream_test", sql, ["detections"])


# --- text-sentiment ---------------------------------------------------------------------


def top_posts(settings: Settings, label: str) -> pd.DataFrame:
    """The ranked most positive (`POS`) or most negative (`NEG`) posts of `top_posts`."""
    if label not in ("POS", "NEG"):
        raise ValueError(f"label must be POS or NEG, not {label!r}")
    sql = (
        'SELECT "rank", text, score, CAST(id AS STRING) AS id FROM top_posts '
        f"WHERE label = '{label}' ORDER BY \"rank\""
    )
    return query(settings, TEXT_SENTIMENT, "top_posts", sql, ["rank", "text", "score", "id"])


def label_counts(settings: Settings) -> pd.DataFrame:
    """Posts per sentiment label, for the original's pie chart."""
    sql = (
        "SELECT label, CAST(COUNT(*) AS BIGINT) AS posts FROM sentiment "
        "GROUP BY label ORDER BY label"
    )
    return query(settings, TEXT_SENTIMENT, "sentiment", sql, ["label", "posts"])


def languages(settings: Settings) -> pd.DataFrame:
    """Posts per language before the English-only filter, most first (`languages`)."""
    sql = 'SELECT lang, "count" FROM languages ORDER BY "count" DESC, lang'
    return query(settings, TEXT_SENTIMENT, "languages", sql, ["lang", "count"])


def positive_texts(settings: Settings, limit: int = 100) -> pd.DataFrame:
    """The texts of the `limit` highest-scoring POS posts: what the word cloud is made of."""
    top = int(limit)
    sql = f"SELECT text FROM sentiment WHERE label = 'POS' ORDER BY score DESC, id LIMIT {top}"
    return query(settings, TEXT_SENTIMENT, "sentiment", sql, ["text"])


def silver_languages(settings: Settings) -> pd.DataFrame:
    """The notebook's first check: posts per language in silver (only `en` is expected)."""
    sql = 'SELECT lang, CAST(COUNT(*) AS BIGINT) AS "count" FROM silver GROUP BY lang ORDER BY lang'
    return query(settings, TEXT_SENTIMENT, "silver", sql, ["lang", "count"])


def silver_geo(settings: Settings, limit: int = 25) -> pd.DataFrame:
    """The notebook's second check: `limit` silver posts that carry a `geo` value."""
    sql = (
        "SELECT CAST(id AS STRING) AS id, geo FROM silver WHERE geo IS NOT NULL "
        f"ORDER BY id LIMIT {int(limit)}"
    )
    return query(settings, TEXT_SENTIMENT, "silver", sql, ["id", "geo"])


# --- manufacturing ----------------------------------------------------------------------


def _devices_in(devices: list[int] | None, column: str = "device_id") -> str:
    """A WHERE condition for the page's device filter; None means every device."""
    if devices is None:
        return "TRUE"
    if not devices:
        return "FALSE"
    return f"{column} IN ({', '.join(str(int(device)) for device in devices)})"


def device_models(settings: Settings) -> pd.DataFrame:
    """Each device and its model, from the gold table, for the Device ID and Model ID filters."""
    sql = (
        "SELECT DISTINCT device_id, model_id FROM inspection_gold "
        "WHERE device_id IS NOT NULL AND model_id IS NOT NULL ORDER BY device_id"
    )
    return query(settings, MANUFACTURING, "inspection_gold", sql, ["device_id", "model_id"])


def defect_counts(settings: Settings, devices: list[int] | None = None) -> pd.DataFrame:
    """The Defect Count and Non Defect Count datasets: inspections per device, by outcome."""
    sql = (
        "SELECT device_id, CAST(SUM(CASE WHEN defect = 1 THEN 1 ELSE 0 END) AS BIGINT) AS defects, "
        "CAST(SUM(CASE WHEN defect = 0 THEN 1 ELSE 0 END) AS BIGINT) AS non_defects "
        f"FROM inspection_bronze WHERE {_devices_in(devices)} GROUP BY device_id ORDER BY device_id"
    )
    columns = ["device_id", "defects", "non_defects"]
    return query(settings, MANUFACTURING, "inspection_bronze", sql, columns)


def inspections_by_day(settings: Settings, devices: list[int] | None = None) -> pd.DataFrame:
    """The Bronze Inspection Data dataset: defect and non-defect counts per device and day."""
    sql = (
        "SELECT device_id, date_trunc('day', \"timestamp\") AS timestamp_hour, "
        "CAST(SUM(CASE WHEN defect > 0 THEN 1 ELSE 0 END) AS BIGINT) AS defect_count, "
        "CAST(SUM(CASE WHEN defect = 0 THEN 1 ELSE 0 END) AS BIGINT) AS not_defect_count "
        f"FROM inspection_bronze WHERE {_devices_in(devices)} "
        "GROUP BY device_id, date_trunc('day', \"timestamp\") ORDER BY timestamp_hour, device_id"
    )
    columns = ["device_id", "timestamp_hour", "defect_count", "not_defect_count"]
    return query(settings, MANUFACTURING, "inspection_bronze", sql, columns)


def factory_defect_rates(settings: Settings, devices: list[int] | None = None) -> pd.DataFrame:
    """The Factory Defect Rates dataset: % of inspections with a defect per device, from gold."""
    sql = (
        "SELECT factory_id, device_id, model_id, CAST(100.0 * "
        'SUM(CASE WHEN defect = 1 THEN "count" ELSE 0 END) / SUM("count") AS DOUBLE) '
        "AS defect_rate FROM inspection_gold "
        f"WHERE device_id IS NOT NULL AND {_devices_in(devices)} "
        "GROUP BY factory_id, device_id, model_id ORDER BY factory_id, device_id"
    )
    columns = ["factory_id", "device_id", "model_id", "defect_rate"]
    return query(settings, MANUFACTURING, "inspection_gold", sql, columns)


def sensor_features_by_day(settings: Settings, devices: list[int] | None = None) -> pd.DataFrame:
    """Mean sensor density and temperature of inspected readings per day and defect (silver)."""
    sql = (
        "SELECT date_trunc('day', \"timestamp\") AS day, defect, "
        "avg(sensor_density) AS density, avg(sensor_temperature) AS temperature "
        f"FROM inspection_silver WHERE {_devices_in(devices)} "
        "GROUP BY date_trunc('day', \"timestamp\"), defect ORDER BY day, defect"
    )
    columns = ["day", "defect", "density", "temperature"]
    return query(settings, MANUFACTURING, "inspection_silver", sql, columns)


# A pipeline whose event log has batches this recent is running.
RECENT_MINUTES = 10


def recent_rows(settings: Settings, system: str, now: datetime | None = None) -> int | None:
    """Rows the system's pipeline wrote into its tables in the last RECENT_MINUTES, by its
    event log; None when it logged no batch in that time (it is not running)."""
    table = open_table(settings, system, "event_log")
    if table is None:
        return None
    log = table.to_pandas(columns=["timestamp", "expectation", "rows_out"])
    if log.empty:
        return None
    stamps = pd.to_datetime(log["timestamp"], utc=True)
    since = pd.Timestamp(now or datetime.now().astimezone()) - pd.Timedelta(minutes=RECENT_MINUTES)
    recent = log[stamps >= since]
    if recent.empty:
        return None
    return int(recent.loc[recent["expectation"].isna(), "rows_out"].fillna(0).sum())
