"""The pipeline page's data: each system's graph as declared, and what its event log says.

The graph is read without Spark from the pipeline's files (the tables each function reads,
the sources it opens); the numbers come from the system's `event_log` Delta table and the
tables' own Delta logs, read with delta-rs like every other dashboard query.
"""

from __future__ import annotations

import ast
import inspect
import math
import re
import textwrap
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
from deltalake import DeltaTable

from dashboards.queries import open_table, query, sql_time
from iotlake.config import Settings

# The pipeline page's recent window: rates, pass rates and activity over the last minute.
PIPELINE_WINDOW_SECONDS = 60
KEEPS_UP, FALLING_BEHIND, IDLE, NOT_STARTED = "keeps up", "falling behind", "idle", "not started"
STATUSES: tuple[str, ...] = (KEEPS_UP, FALLING_BEHIND, IDLE, NOT_STARTED)
# Source formats that read outside the lake, as the table files name them.
SOURCE_FORMATS = ("kinesis", "kafka", "cloudfiles")
# Options (and `.load` paths) that name what a source reads.
_SOURCE_OPTIONS = ("streamName", "subscribe", "subscribePattern", "path")
_SQL_READ = re.compile(r"\b(?:FROM|JOIN)\s+(?:STREAM\s*\(\s*)?([`\w.]+)", re.IGNORECASE)
_PLACEHOLDER = re.compile(r"\$\{([\w.]+)\}")
# Loading a pipeline swaps `dlt` in sys.modules: one load at a time per process.
_LOADING = threading.Lock()


@dataclass(frozen=True)
class Dataset:
    """One node of a pipeline's graph.

    `kind` is "source" (a broker stream, landing files or a table outside the pipeline),
    "streaming" (a streaming table), "materialized" (a materialized view) or "view" (a
    temporary view, computed inside its readers). `upstream` names the nodes it reads;
    `flows` the names its batches are logged under in the event log (its own, and those
    of `append_flow`s into it); `expectations` its (name, action) pairs as declared.
    """

    name: str
    kind: str
    layer: str = ""
    upstream: tuple[str, ...] = ()
    flows: tuple[str, ...] = ()
    expectations: tuple[tuple[str, str], ...] = ()


def pipeline_graph(settings: Settings, system: str) -> list[Dataset]:
    """The system's datasets as declared, with their sources, in declaration order.

    The pipeline folder is loaded without Spark (`spark_jobs.runner.load`). Lakeflow finds
    what each dataset reads by calling its function, which needs Spark; here the reads are
    found in the code instead: a Python dataset's `read`, `read_stream` and `.table("x")`
    calls with a literal name (also in helper functions of the pipeline's folder that it
    calls) and its `.format("kinesis"|"kafka"|"cloudFiles")` sources; a SQL dataset's
    `FROM`/`JOIN` names and `cloud_files`/`read_files` calls. A source is labelled with its
    format and, where the code takes it from the pipeline's configuration, what it reads.
    """
    from spark_jobs import runner

    with _LOADING:
        pipeline = runner.load(system, settings)
    specs = list(pipeline.specs.values())
    tables = {spec.target for spec in specs}
    upstream: dict[str, list[str]] = {name: [] for name in tables}
    flows: dict[str, list[str]] = {name: [] for name in tables}
    sources: dict[str, None] = {}
    streaming: set[str] = set()
    for spec in specs:
        flows[spec.target].append(spec.name)
        if spec.function is None:
            continue
        if ":" in spec.file and spec.file.rsplit(":", 1)[0].endswith(".sql"):
            names, labels = _sql_reads(pipeline, spec)
        else:
            names, labels, streams = _python_reads(pipeline, spec.function)
            if streams:
                streaming.add(spec.target)
        for name in names:
            local = pipeline.local_name(name)
            if local is None:
                labels.append(f"table {name}")
            elif local != spec.target:
                upstream[spec.target].append(pipeline.specs[local].target)
        for label in labels:
            sources.setdefault(label)
            upstream[spec.target].append(label)
    graph = [Dataset(label, "source") for label in sources]
    for spec in specs:
        if spec.target != spec.name:
            continue  # an append_flow: its reads joined its table's node
        kind = spec.kind
        if kind == "table":  # Lakeflow decides on the first run: a stream read makes it one
            kind = "streaming" if spec.name in streaming else "materialized"
        graph.append(
            Dataset(
                name=spec.name,
                kind=kind,
                layer=spec.layer,
                upstream=tuple(dict.fromkeys(upstream[spec.name])),
                flows=tuple(flows[spec.name]),
                expectations=tuple((e.name, e.action) for e in spec.expectations),
            )
        )
    return graph


def _python_reads(pipeline: Any, function: Callable) -> tuple[list[str], list[str], bool]:
    """Dataset names a Python dataset function reads, labels of the sources it reads, and
    whether it reads anything as a stream (`read_stream`, `readStream`)."""
    root = Path(pipeline.definition.root).resolve()
    names: list[str] = [
        parameter for parameter in inspect.signature(function).parameters if parameter != "spark"
    ]
    formats: list[str] = []
    targets: list[str] = []
    keys: list[str] = []
    streams = False
    pending, seen = [function], set()
    while pending:
        current = pending.pop()
        if current in seen:
            continue
        seen.add(current)
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(current)))
        except (OSError, TypeError, SyntaxError):
            continue
        body = tree.body[0].body if tree.body and hasattr(tree.body[0], "body") else tree.body
        for node in (found for statement in body for found in ast.walk(statement)):
            if isinstance(node, ast.Attribute) and node.attr in ("readStream", "read_stream"):
                streams = True
            if not isinstance(node, ast.Call):
                continue
            called = node.func
            if isinstance(called, ast.Name):
                helper = getattr(current, "__globals__", {}).get(called.id)
                if inspect.isfunction(helper) and _inside(helper, root):
                    pending.append(helper)
                continue
            if not isinstance(called, ast.Attribute):
                continue
            first = _literal(node.args[0]) if node.args else None
            if called.attr in ("table", "read_stream", "read") and first:
                names.append(first)
            elif called.attr == "format" and first and first.lower() in SOURCE_FORMATS:
                formats.append(first)
            elif called.attr == "option" and first in _SOURCE_OPTIONS and len(node.args) > 1:
                targets.append(_configured(pipeline, node.args[1]))
            elif called.attr == "load" and node.args:
                targets.append(_configured(pipeline, node.args[0]))
            elif called.attr == "get" and first and _is_conf(called.value):
                keys.append(first)
    if not formats:
        return names, [], streams
    chosen = [f for f in formats if f in {pipeline.configuration.get(key) for key in keys}]
    shown = " or ".join(dict.fromkeys(chosen[:1] or formats))
    what = ", ".join(dict.fromkeys(target for target in targets if target))
    return names, [f"{shown}: {what}" if what else f"{shown} ({function.__name__})"], streams


def _sql_reads(pipeline: Any, spec: Any) -> tuple[list[str], list[str]]:
    """Dataset names a SQL dataset reads, and labels of the files it loads."""
    from spark_jobs.lakeflow import sql

    path = Path(spec.file.rsplit(":", 1)[0])

    def value(match: re.Match) -> str:
        return str(pipeline.configuration.get(match[1], match[0]))

    parsed = sql.parse_text(_PLACEHOLDER.sub(value, path.read_text()), str(path))
    for dataset in parsed.datasets:
        if dataset.name.split(".")[-1] != spec.name:
            continue
        views = {source.view for source in dataset.file_sources}
        names = [
            name.replace("`", "")
            for name in _SQL_READ.findall(dataset.query)
            if name not in views and (pipeline.local_name(name) or "." in name)
        ]
        labels = [f"{source.format} files: {source.path}" for source in dataset.file_sources]
        return names, labels
    return [], []


def _inside(function: Callable, root: Path) -> bool:
    """Whether `function` is defined in a file of the pipeline's folder (a helper of it)."""
    try:
        return Path(inspect.getfile(function)).resolve().is_relative_to(root)
    except (TypeError, OSError):
        return False


def _literal(node: ast.AST) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _is_conf(node: ast.AST) -> bool:
    """`spark.conf` (or any `<x>.conf`): the receiver of `.get("key")` configuration reads."""
    return isinstance(node, ast.Attribute) and node.attr == "conf"


def _configured(pipeline: Any, node: ast.AST) -> str:
    """A literal, or the configuration's value of a `spark.conf.get("key")`; else ""."""
    if (text := _literal(node)) is not None:
        return text
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.args:
        key = _literal(node.args[0])
        if node.func.attr == "get" and _is_conf(node.func.value) and key:
            return str(pipeline.configuration.get(key, ""))
    return ""


def event_log_since(settings: Settings, system: str, since: datetime) -> pd.DataFrame:
    """Every event-log row written after `since`, oldest first.

    A literal bound on `timestamp` lets DataFusion skip the files of older batches (one
    small file per batch and flow), so a long-running demo's log stays cheap to read.
    """
    columns = [
        "timestamp",
        "table",
        "batch_id",
        "expectation",
        "action",
        "passed",
        "failed",
        "rows_in",
        "rows_out",
        "duration_ms",
    ]
    quoted = ", ".join(f'"{column}"' for column in columns)
    sql = (
        f'SELECT {quoted} FROM event_log WHERE "timestamp" > {sql_time(since)} '
        'ORDER BY "timestamp", "table", batch_id'
    )
    return query(settings, system, "event_log", sql, columns)


def newest_batches(settings: Settings, system: str, flows: list[str]) -> pd.DataFrame:
    """The newest logged batch of each of `flows` (by the time it was logged), at any age."""
    if not flows:
        return pd.DataFrame(columns=["table", "timestamp", "duration_ms"])
    names = ", ".join("'" + flow.replace("'", "''") + "'" for flow in flows)
    sql = (
        'SELECT "table", "timestamp", duration_ms FROM ('
        'SELECT "table", "timestamp", duration_ms, ROW_NUMBER() OVER (PARTITION BY "table" '
        'ORDER BY "timestamp" DESC, batch_id DESC) AS newest FROM event_log '
        f'WHERE expectation IS NULL AND "table" IN ({names})) WHERE newest = 1 '
        'ORDER BY "table"'
    )
    return query(settings, system, "event_log", sql, ["table", "timestamp", "duration_ms"])


def event_time_column(delta_table: DeltaTable) -> str | None:
    """The table's event-time column: its first TIMESTAMP column named like an event time
    (containing "event"), else its first TIMESTAMP column; None when it has none."""
    found = [
        field.name
        for field in delta_table.schema().fields
        if str(getattr(field.type, "type", "")) in ("timestamp", "timestamp_ntz")
    ]
    named = [name for name in found if "event" in name.lower()]
    return (named or found or [None])[0]


def event_time_latency(
    settings: Settings, system: str, table: str, since: datetime
) -> tuple[str, float] | None:
    """(column, seconds): how long after its newest event each recent file was written.

    Per data file added after `since` (or, when none was, the newest file): the file's
    write time minus the newest value of the event-time column in it, both read from the
    Delta log (file statistics), so no data is scanned; the median over those files. None
    for a missing table, or one without an event-time column or its statistics.
    """
    delta_table = open_table(settings, system, table)
    column = event_time_column(delta_table) if delta_table is not None else None
    if delta_table is None or column is None:
        return None
    actions = pa.table(delta_table.get_add_actions(flatten=True))
    statistic = f"max.{column}"
    if actions.num_rows == 0 or statistic not in actions.column_names:
        return None
    files = actions.select(["modification_time", statistic]).to_pandas().dropna()
    if files.empty:
        return None
    written = pd.to_datetime(files["modification_time"], unit="ms", utc=True)
    newest_event = pd.to_datetime(files[statistic], utc=True)
    recent = written > pd.Timestamp(since)
    chosen = recent if recent.any() else written == written.max()
    lags = (written[chosen] - newest_event[chosen]).dt.total_seconds()
    return column, float(lags.median())


def table_activity(
    graph: list[Dataset],
    recent: pd.DataFrame,
    newest: pd.DataFrame,
    now: datetime,
    trigger_seconds: float,
    refresh_seconds: float,
    window_seconds: int = PIPELINE_WINDOW_SECONDS,
) -> pd.DataFrame:
    """Per table of `graph`: its status and its rates over the window, from the event log.

    `recent` holds the event-log rows of the last `window_seconds` (`event_log_since`),
    `newest` the newest batch of flows with no row in `recent` (`newest_batches`). Rows
    in and out per second are the flow rows' sums over the window divided by its length;
    rows dropped are those the table's `drop` expectations removed (rows in minus rows out)
    plus rows Spark itself dropped and logged as an undeclared `drop` expectation (late
    rows behind a watermark). The status rule:

    - not started: the event log holds no batch of the table;
    - idle: its newest batch is older than the window (or than two of its intervals, if
      longer): no input arrived, or its pipeline has stopped;
    - falling behind: it had batches in the window, and its newest batch, or the median
      of the window's batches, took longer than its interval (the trigger interval of a
      streaming table, the refresh interval of a materialized view): the next batch
      starts late and input piles up;
    - keeps up: batches in the window, each done within its interval.
    """
    moment = pd.Timestamp(now)
    moment = moment.tz_localize("UTC") if moment.tzinfo is None else moment.tz_convert("UTC")
    log = recent.assign(timestamp=pd.to_datetime(recent["timestamp"], utc=True))
    flow_rows = log[log["expectation"].isna()]
    checks = log[log["expectation"].notna()]
    older = newest.assign(timestamp=pd.to_datetime(newest["timestamp"], utc=True))
    rows = []
    for dataset in graph:
        if dataset.kind in ("source", "view"):
            continue
        mine = flow_rows[flow_rows["table"].isin(dataset.flows)]
        declared = {name for name, _ in dataset.expectations}
        spark_drops = checks[
            checks["table"].isin(dataset.flows)
            & (checks["action"] == "drop")
            & ~checks["expectation"].isin(declared)
        ]
        last = mine if not mine.empty else older[older["table"].isin(dataset.flows)]
        interval = refresh_seconds if dataset.kind == "materialized" else trigger_seconds
        durations = mine["duration_ms"].dropna().astype(float) / 1000.0
        row: dict[str, object] = {
            "table": dataset.name,
            "layer": dataset.layer,
            "kind": dataset.kind,
            "batches": len(mine),
            "rows_in_per_s": float(mine["rows_in"].fillna(0).sum()) / window_seconds,
            "rows_out_per_s": float(mine["rows_out"].fillna(0).sum()) / window_seconds,
            "dropped": int(
                (mine["rows_in"].fillna(0) - mine["rows_out"].fillna(0)).clip(lower=0).sum()
                + spark_drops["failed"].fillna(0).sum()
            ),
            "last_batch_s": float("nan"),
            "since_last_batch_s": float("nan"),
            "interval_s": interval,
        }
        if last.empty:
            row["status"] = NOT_STARTED
        else:
            newest_row = last.sort_values("timestamp").iloc[-1]
            duration = newest_row["duration_ms"]
            row["last_batch_s"] = float(duration) / 1000.0 if pd.notna(duration) else math.nan
            row["since_last_batch_s"] = (moment - newest_row["timestamp"]).total_seconds()
            slow = row["last_batch_s"] > interval or (
                not durations.empty and float(durations.median()) > interval
            )
            if mine.empty or row["since_last_batch_s"] > max(window_seconds, 2 * interval):
                row["status"] = IDLE
            else:
                row["status"] = FALLING_BEHIND if slow else KEEPS_UP
        rows.append(row)
    columns = [
        "table",
        "layer",
        "kind",
        "status",
        "batches",
        "rows_in_per_s",
        "rows_out_per_s",
        "dropped",
        "last_batch_s",
        "since_last_batch_s",
        "interval_s",
    ]
    return pd.DataFrame(rows, columns=columns)


def expectation_pass_rates(graph: list[Dataset], recent: pd.DataFrame) -> pd.DataFrame:
    """Per table and expectation: rows passed and failed in the window and the pass rate (%).

    Every declared expectation is listed, with no rate (NaN) while no batch in the window
    checked it; an expectation the log holds but the code does not declare (rows Spark
    dropped behind a watermark) is listed too.
    """
    checks = recent[recent["expectation"].notna()]
    rows = []
    for dataset in graph:
        mine = checks[checks["table"].isin(dataset.flows)]
        logged = {
            name: str(group["action"].dropna().iloc[-1]) if group["action"].notna().any() else ""
            for name, group in mine.groupby("expectation", sort=False)
        }
        merged = dict(dataset.expectations)
        for name, action in logged.items():
            merged.setdefault(name, action)
        for name, action in merged.items():
            counted = mine[mine["expectation"] == name]
            passed = int(counted["passed"].fillna(0).sum())
            failed = int(counted["failed"].fillna(0).sum())
            checked = passed + failed
            rows.append(
                {
                    "table": dataset.name,
                    "expectation": name,
                    "action": action,
                    "passed": passed,
                    "failed": failed,
                    "pass_rate": 100.0 * passed / checked if checked else math.nan,
                }
            )
    columns = ["table", "expectation", "action", "passed", "failed", "pass_rate"]
    return pd.DataFrame(rows, columns=columns)
