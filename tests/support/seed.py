"""Small, known Delta tables for the dashboard tests, written with delta-rs like the pipelines'.

The gold tables are derived from generated silver rows with pandas, independently of the
dashboard's code, so tests can compare what the dashboard shows with numbers computed here.
Timestamps are fixed in the past (the DAIS 2023 day, the AWS PoC's sample day): the dashboard
must anchor its windows on the data, not on the wall clock.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
from deltalake import write_deltalake

from dashboards.queries import AWS_IOT, SEISMOGRAPH
from iotlake.config import Settings
from spark_jobs.io.storage import table_uri

# The Arrow type delta-rs writes for each SQL type of a table contract.
ARROW_TYPES = {
    "STRING": pa.string(),
    "INT": pa.int32(),
    "BIGINT": pa.int64(),
    "FLOAT": pa.float32(),
    "DOUBLE": pa.float64(),
    "TIMESTAMP": pa.timestamp("us", tz="UTC"),
}


def contract(columns: str) -> pa.Schema:
    """The Arrow schema of a table contract written as SQL columns: `name TYPE, ...`."""
    pairs = (column.split() for column in columns.split(","))
    return pa.schema([(name, ARROW_TYPES[kind.upper()]) for name, kind in pairs])


# The column types of every table the dashboard tests write, by table name.
SCHEMAS: dict[str, pa.Schema] = {
    # seismograph
    "sensor": contract("device STRING, time TIMESTAMP, magn FLOAT"),
    "global_stat": contract("events BIGINT, max FLOAT, min FLOAT, avg DOUBLE, stddev DOUBLE"),
    "max_magn_by_device": contract("device STRING, max_magn FLOAT"),
    "magn_heatmap": contract("device STRING, time_bin TIMESTAMP, magn FLOAT"),
    "magn_live": contract("window_start TIMESTAMP, window_end TIMESTAMP, avg_magn DOUBLE"),
    # aws-iot
    "temperature_trend": contract("time_window TIMESTAMP, average_fleet_temp DOUBLE"),
    "critical_by_device": contract(
        "device_id STRING, time_window TIMESTAMP, critical_count BIGINT"
    ),
    # arduino
    "temp_hum": contract(
        "minute TIMESTAMP, temperature DOUBLE, humidity DOUBLE,"
        " temperature_readings BIGINT, humidity_readings BIGINT"
    ),
    "distance": contract("timestamp TIMESTAMP, distance DOUBLE"),
    "pir_stream_test": contract("timestamp STRING, movement STRING"),
    # text-sentiment
    "silver": contract("id BIGINT, geo STRING, lang STRING, text STRING"),
    "sentiment": contract(
        "id BIGINT, geo STRING, lang STRING, text STRING, label STRING, score DOUBLE"
    ),
    "languages": contract("lang STRING, count BIGINT"),
    "top_posts": contract("label STRING, rank INT, id BIGINT, text STRING, score DOUBLE"),
    # every system's event log
    "event_log": contract(
        "timestamp TIMESTAMP, system STRING, table STRING, batch_id BIGINT, expectation STRING,"
        " action STRING, passed BIGINT, failed BIGINT, rows_in BIGINT, rows_out BIGINT,"
        " duration_ms BIGINT"
    ),
}

DAIS_START = pd.Timestamp("2023-05-24T18:56:00Z")
POC_END = pd.Timestamp("2024-05-24T17:00:00Z")


@dataclass
class SeededSystem:
    """The frames written for one system, keyed by table name."""

    system: str
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)


def sensor_events(devices: int = 6, seconds: int = 120, seed: int = 7) -> pd.DataFrame:
    """Silver `sensor` rows: each phone sends 5 events/s, mostly small, a few big shakes."""
    rng = np.random.default_rng(seed)
    ids = [f"client-{rng.integers(16**12):012x}" for _ in range(devices)]
    times = DAIS_START + pd.to_timedelta(np.arange(seconds * 5) * 200, unit="ms")
    frames = []
    for number, device in enumerate(ids):
        magn = rng.poisson(2 + number, size=len(times)).astype(float)
        magn[rng.integers(len(times), size=3)] = rng.integers(20, 30 * (number + 1), size=3)
        frames.append(pd.DataFrame({"device": device, "time": times, "magn": magn}))
    events = pd.concat(frames, ignore_index=True)
    events.loc[events["magn"].idxmax(), "magn"] = 231.0  # the DAIS record
    return events


def seismograph_gold(sensor: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The four gold tables as the pipeline defines them, computed with pandas."""
    magn = sensor["magn"]
    heatmap = (
        sensor.assign(time_bin=sensor["time"].dt.floor("2s"))
        .groupby(["device", "time_bin"], as_index=False)["magn"]
        .max()
    )
    live = (
        sensor.assign(window_start=sensor["time"].dt.floor("1s"))
        .groupby("window_start", as_index=False)["magn"]
        .mean()
        .rename(columns={"magn": "avg_magn"})
    )
    live["window_end"] = live["window_start"] + pd.Timedelta(seconds=1)
    return {
        "global_stat": pd.DataFrame(
            {
                "events": [len(magn)],
                "max": [magn.max()],
                "min": [magn.min()],
                "avg": [magn.mean()],
                "stddev": [magn.std()],
            }
        ),
        "max_magn_by_device": sensor.groupby("device", as_index=False)["magn"]
        .max()
        .rename(columns={"magn": "max_magn"}),
        "magn_heatmap": heatmap,
        "magn_live": live[["window_start", "window_end", "avg_magn"]],
    }


def processed_readings(devices: int = 5, hours: int = 26, seed: int = 11) -> pd.DataFrame:
    """Silver `iot_sensor_processed` essentials: one reading per device per minute."""
    rng = np.random.default_rng(seed)
    ids = [str(uuid.UUID(bytes=rng.bytes(16), version=4)) for _ in range(devices)]
    minutes = pd.date_range(end=POC_END, periods=hours * 60, freq="min")
    rows = pd.DataFrame(
        {
            "device_id": np.repeat(ids, len(minutes)),
            "event_timestamp": np.tile(minutes, devices),
            "temperature_c": rng.uniform(18.0, 30.0, size=devices * len(minutes)).round(2),
        }
    )
    rows["is_critical"] = rows["temperature_c"] > 28.0
    return rows


def aws_iot_gold(readings: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """`temperature_trend` and `critical_by_device`, per minute, computed with pandas."""
    minute = readings["event_timestamp"].dt.floor("min")
    trend = (
        readings.assign(time_window=minute)
        .groupby("time_window", as_index=False)["temperature_c"]
        .mean()
        .rename(columns={"temperature_c": "average_fleet_temp"})
    )
    critical = (
        readings[readings["is_critical"]]
        .assign(time_window=minute)
        .groupby(["device_id", "time_window"], as_index=False)
        .size()
        .rename(columns={"size": "critical_count"})
    )
    return {"temperature_trend": trend, "critical_by_device": critical}


def event_log(system: str, table: str, batches: int = 6, seed: int = 3) -> pd.DataFrame:
    """An event log: per batch, one flow row and one row per expectation of `table`."""
    rng = np.random.default_rng(seed)
    rows = []
    for batch in range(batches):
        at = DAIS_START + pd.Timedelta(seconds=10 * batch)
        rows_in = int(rng.integers(200, 400))
        dropped = int(rng.integers(0, 10))
        warned = int(rng.integers(0, 5))
        rows.append(_log_row(at, system, table, batch, "device is set", "drop", rows_in, dropped))
        rows.append(_log_row(at, system, table, batch, "magn is positive", "warn", rows_in, warned))
        flow = _log_row(at, system, table, batch, None, None, None, None)
        flow |= {"rows_in": rows_in, "rows_out": rows_in - dropped, "duration_ms": 100 + batch}
        rows.append(flow)
    return pd.DataFrame(rows)


def _log_row(
    at: pd.Timestamp,
    system: str,
    table: str,
    batch: int,
    expectation: str | None,
    action: str | None,
    rows_in: int | None,
    failed: int | None,
) -> dict[str, object]:
    """One event_log row; flow rows carry no expectation and no pass/fail counts."""
    return {
        "timestamp": at,
        "system": system,
        "table": table,
        "batch_id": batch,
        "expectation": expectation,
        "action": action,
        "passed": None if rows_in is None else rows_in - failed,
        "failed": failed,
        "rows_in": None,
        "rows_out": None,
        "duration_ms": None,
    }


def write_table(settings: Settings, system: str, table: str, frame: pd.DataFrame) -> None:
    """Overwrite one table at the contract's location with the contract's column types."""
    uri = table_uri(settings, system, table)
    options = settings.aws.object_store_options() if uri.startswith("s3://") else None
    data = pa.Table.from_pandas(frame, schema=SCHEMAS[table], preserve_index=False)
    write_deltalake(uri, data, mode="overwrite", storage_options=options)


def seed_seismograph(settings: Settings) -> SeededSystem:
    """Write the seismograph's gold tables and event log; return what was written."""
    seeded = SeededSystem(SEISMOGRAPH, seismograph_gold(sensor_events()))
    seeded.tables["event_log"] = event_log(SEISMOGRAPH, "sensor")
    for table, frame in seeded.tables.items():
        write_table(settings, SEISMOGRAPH, table, frame)
    return seeded


def seed_aws_iot(settings: Settings) -> SeededSystem:
    """Write the aws-iot gold tables and event log; return what was written."""
    seeded = SeededSystem(AWS_IOT, aws_iot_gold(processed_readings()))
    seeded.tables["event_log"] = event_log(AWS_IOT, "iot_sensor_processed", batches=4, seed=5)
    for table, frame in seeded.tables.items():
        write_table(settings, AWS_IOT, table, frame)
    return seeded


def seed_lake(settings: Settings) -> dict[str, SeededSystem]:
    """Every table the dashboard reads, for both systems."""
    return {SEISMOGRAPH: seed_seismograph(settings), AWS_IOT: seed_aws_iot(settings)}


# --- a live pipeline's event log (the pipelines page) -------------------------------------

# Spark's own drops logged as an expectation (spark_jobs/late_rows.py writes this name).
WATERMARK = "within watermark"


@dataclass(frozen=True)
class FlowScenario:
    """How one table's batches are logged: ages (seconds before now, oldest first), rows
    read per batch, how long each batch took, and the most rows an expectation fails."""

    ages: tuple[float, ...]
    rows_in: int
    duration_ms: int
    max_failed: int = 12
    late_rows: int = 0


def flow_log(
    system: str,
    table: str,
    expectations: list[tuple[str, str]],
    scenario: FlowScenario,
    now: pd.Timestamp,
    seed: int = 0,
) -> pd.DataFrame:
    """Event-log rows as the runner writes them (spark_jobs/event_log.py `rows`): per batch a
    flow row, then one row per expectation, all carrying the batch's rows in and out and its
    duration; rows failing a `drop` expectation leave the batch (the largest such count,
    as if every row failing one rule failed the others too). With `late_rows`, each batch
    also gets a watermark row as `late_rows.record` writes it (no rows out, no duration)."""
    rng = np.random.default_rng(seed)
    rows = []
    for batch, age in enumerate(scenario.ages):
        at = (now - pd.Timedelta(seconds=age)).floor("ms")
        rows_in = int(scenario.rows_in + rng.integers(0, scenario.rows_in // 10 + 1))
        failed = {name: int(rng.integers(0, scenario.max_failed + 1)) for name, _ in expectations}
        dropped = max([failed[name] for name, action in expectations if action == "drop"] or [0])
        common = {
            "timestamp": at,
            "system": system,
            "table": table,
            "batch_id": batch,
            "rows_in": rows_in,
            "rows_out": rows_in - dropped,
            "duration_ms": scenario.duration_ms,
        }
        rows.append(common | {"expectation": None, "action": None, "passed": None, "failed": None})
        for name, action in expectations:
            outcome = {"passed": rows_in - failed[name], "failed": failed[name]}
            rows.append(common | {"expectation": name, "action": action} | outcome)
        if scenario.late_rows:
            rows.append(
                common
                | {
                    "expectation": WATERMARK,
                    "action": "drop",
                    "passed": rows_in - scenario.late_rows,
                    "failed": scenario.late_rows,
                    "rows_out": None,
                    "duration_ms": None,
                }
            )
    return pd.DataFrame(rows)


def seismograph_scenarios(trigger_seconds: float) -> dict[str, FlowScenario]:
    """One seismograph table per status: `raw_stream`, `sensor` (written in raw_stream's
    batches) and `max_magn_by_device` keep up, `magn_live` takes longer than the trigger,
    `global_stat` logged its last batch minutes ago, `magn_heatmap` never ran. Recent
    batches are at most 30 s old and old ones at least 200 s, so a test that reads them
    within half a minute sees the same split around the page's one-minute window."""
    quick = int(trigger_seconds * 1000 * 0.4)
    steady = (300.0, 260.0, 220.0, *(float(age) for age in range(30, 3, -2)))
    return {
        "raw_stream": FlowScenario(steady, rows_in=1300, duration_ms=quick),
        "sensor": FlowScenario(steady, rows_in=1290, duration_ms=quick // 2),
        "max_magn_by_device": FlowScenario(steady[::2], rows_in=2600, duration_ms=quick),
        "magn_live": FlowScenario(
            (240.0, 28.0, 19.0, 10.0, 4.0),
            rows_in=4000,
            duration_ms=int(trigger_seconds * 1000 * 1.5),
            late_rows=3,
        ),
        "global_stat": FlowScenario((420.0, 400.0, 380.0), rows_in=1300, duration_ms=quick),
    }


def seed_pipeline_log(
    settings: Settings,
    declared: dict[str, list[tuple[str, str]]],
    now: pd.Timestamp | None = None,
    event_lag_seconds: float = 4.0,
) -> pd.DataFrame:
    """Write the seismograph's event log per `seismograph_scenarios` (expectations as
    `declared`, table -> (name, action)), and a `sensor` table whose newest event is
    `event_lag_seconds` old when it is written; return the event log's rows."""
    now = now if now is not None else pd.Timestamp.now(tz="UTC")
    scenarios = seismograph_scenarios(settings.pipelines.trigger_seconds)
    frames = [
        flow_log(SEISMOGRAPH, table, declared.get(table, []), scenario, now, seed=number)
        for number, (table, scenario) in enumerate(scenarios.items())
    ]
    log = pd.concat(frames, ignore_index=True)
    write_table(settings, SEISMOGRAPH, "event_log", log)
    newest = pd.Timestamp.now(tz="UTC") - pd.Timedelta(seconds=event_lag_seconds)
    events = sensor_events(devices=3, seconds=20)
    events["time"] = events["time"] + (newest - events["time"].max())
    write_table(settings, SEISMOGRAPH, "sensor", events)
    return log
