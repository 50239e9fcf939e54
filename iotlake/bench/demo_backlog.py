"""What `iotlake bench demo` measures in the lake: each table's backlog and latency.

A table's backlog is the rows its upstream holds that the table does not reflect yet:
- bronze: records the broker or emulator holds (Kafka end offsets; Kinesis records counted
  with GetRecords; rows of the files in the landing folder) minus the table's rows in (the
  sum of `rows_in` of its flow rows in the system's `event_log`, `expectation IS NULL`).
- a table with a streaming query of its own (rule `checkpoint`): rows its upstream tables
  committed after the position the query's last completed micro-batch read up to (the Delta
  source's `reservoirVersion`/`index` in `_checkpoint/offsets/<batch>`, `commits/<batch>`
  present; all of them before its first batch). `rows_in` cannot stand for this: an
  aggregate logs the groups it wrote, a filter the rows it kept.
- a table written inside its upstream's micro-batch (rule `same batch`), and a
  materialized view (rule `refresh`): rows its upstream tables committed after its own
  latest commit (a view refreshed whole reflects what was there when it refreshed).
Rows of a Delta commit are the `numRecords` of the files it added. Each sample reads the
reflected side before the upstream side, so a backlog is never understated by the race.

Each table's event -> table latency is, per commit during the run, the commit timestamp
minus the newest value of its event-time column (the first TIMESTAMP column named like
`time`, `timestamp` or `event`) in the files the commit added. delta-rs opens tables and
the event logs; which files a commit added is read from that commit's file in
`_delta_log/`, since a delta-rs snapshot does not say which commit added a file.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow.compute as pc
import pyarrow.parquet as pq

from iotlake.config import Settings
from spark_jobs.io.storage import local_path, table_uri, volume_uri

if TYPE_CHECKING:
    from confluent_kafka import Consumer
    from deltalake import DeltaTable

EVENT_TIME = re.compile(r"time|event", re.IGNORECASE)
_READS = re.compile(r"""(?:read_stream|read|table)\(\s*["']([\w.]+)["']""")
_SQL_READS = re.compile(r"\b(?:LIVE\.|STREAM\s*\(\s*(?:LIVE\.)?)(\w+)", re.IGNORECASE)
LAYERS = {"gold": 0, "silver": 1, "bronze": 2}
KINESIS_CALLS_PER_SHARD = 20


@dataclass
class Commit:
    version: int
    timestamp_ms: int
    rows: list[int] = field(default_factory=list)  # numRecords of each file added, in order
    maxima: list[dict[str, Any]] = field(default_factory=list)  # maxValues of each file added


class TableLog:
    """The commits of one local Delta table, read from its `_delta_log/` as they appear."""

    def __init__(self, uri: str) -> None:
        self.log_dir = Path(local_path(uri)) / "_delta_log"
        self.commits: list[Commit] = []
        self.table_id: str | None = None

    def refresh(self) -> None:
        while True:
            path = self.log_dir / f"{len(self.commits):020d}.json"
            try:
                actions = [json.loads(line) for line in path.read_text().splitlines() if line]
            except (FileNotFoundError, json.JSONDecodeError):
                return  # not there yet, or caught while being written: read it next time
            commit = Commit(len(self.commits), round(path.stat().st_mtime * 1000))
            for action in actions:
                if "commitInfo" in action:
                    info = action["commitInfo"]
                    commit.timestamp_ms = info.get("inCommitTimestamp", info.get("timestamp"))
                elif "metaData" in action:
                    self.table_id = action["metaData"]["id"]
                elif "add" in action and action["add"].get("dataChange", True):
                    stats = json.loads(action["add"].get("stats") or "{}")
                    commit.rows.append(int(stats.get("numRecords", 0)))
                    commit.maxima.append(stats.get("maxValues", {}))
            self.commits.append(commit)

    def rows_total(self) -> int:
        return sum(sum(commit.rows) for commit in self.commits)

    def rows_since(self, timestamp_ms: int) -> int:
        """Rows of the commits made after `timestamp_ms`."""
        return sum(sum(c.rows) for c in self.commits if c.timestamp_ms > timestamp_ms)

    def last_timestamp(self) -> int:
        return self.commits[-1].timestamp_ms if self.commits else 0

    def rows_after(self, version: int, index: int, starting: bool) -> int:
        """Rows a Delta streaming source positioned at (`version`, `index`) has not read: the
        files after `index` in that version (in the snapshot up to it, for a starting
        version; index -1: none of them read), and every later version."""
        later = sum(sum(c.rows) for c in self.commits[version + 1 :])
        first = 0 if starting else version
        files = [rows for c in self.commits[first : version + 1] for rows in c.rows]
        return later + sum(files[index + 1 :])


def event_time_column(uri: str) -> str | None:
    """The table's first TIMESTAMP column named like time, timestamp or event (delta-rs)."""
    from deltalake import DeltaTable

    for column in DeltaTable(uri).schema().fields:
        kind = getattr(column.type, "type", "")
        if kind in ("timestamp", "timestamp_ntz") and EVENT_TIME.search(column.name):
            return column.name
    return None


def _epoch_ms(value: str) -> int:
    stamp = dt.datetime.fromisoformat(value)
    stamp = stamp if stamp.tzinfo else stamp.replace(tzinfo=dt.UTC)
    return round(stamp.timestamp() * 1000)


def commit_latencies(log: TableLog, column: str, since_ms: int, until_ms: int) -> list[float]:
    """Seconds from the newest `column` value a commit added to the commit, for each commit
    made in [since_ms, until_ms] whose added files have statistics for `column`."""
    found = []
    for commit in log.commits:
        if not since_ms <= commit.timestamp_ms <= until_ms:
            continue
        newest = [_epoch_ms(m[column]) for m in commit.maxima if m.get(column) is not None]
        if newest:
            found.append((commit.timestamp_ms - max(newest)) / 1000)
    return found


def checkpoint_position(uri: str) -> dict[str, tuple[int, int, bool]] | None:
    """Per upstream Delta table id, (version, index, starting) read up to by the query's
    last completed micro-batch (empty before its first); None when the table has no
    streaming query of its own (no `_checkpoint/`)."""
    folder = Path(local_path(uri)) / "_checkpoint"
    if not folder.is_dir():
        return None
    done = [int(p.name) for p in (folder / "commits").glob("*") if p.name.isdigit()]
    try:
        lines = (folder / "offsets" / str(max(done))).read_text().splitlines() if done else []
    except FileNotFoundError:
        lines = []
    position = {}
    for line in lines[2:]:
        offset = json.loads(line) if line.startswith("{") else {}
        if "reservoirId" in offset:
            position[offset["reservoirId"]] = (
                int(offset["reservoirVersion"]),
                int(offset["index"]),
                bool(offset.get("isStartingVersion")),
            )
    return position


class EventLog:
    """Per table, the sum of `rows_in` and `rows_out` of the flow rows of one system's
    `event_log`, reading with delta-rs only the files added since the last call."""

    def __init__(self, uri: str) -> None:
        self.uri = uri
        self.table: DeltaTable | None = None
        self.read: set[str] = set()
        self.rows_in: Counter[str] = Counter()
        self.rows_out: Counter[str] = Counter()

    def refresh(self) -> None:
        from deltalake import DeltaTable

        if self.table is None:
            if not DeltaTable.is_deltatable(self.uri):
                return
            self.table = DeltaTable(self.uri)
        else:
            self.table.update_incremental()
        fresh = [uri for uri in self.table.file_uris() if uri not in self.read]
        for uri in fresh:
            rows = pq.read_table(uri, columns=["table", "expectation", "rows_in", "rows_out"])
            flows = rows.filter(pc.is_null(rows["expectation"])).to_pylist()
            for row in flows:
                self.rows_in[row["table"]] += row["rows_in"] or 0
                self.rows_out[row["table"]] += row["rows_out"] or 0
            self.read.add(uri)


class Sources:
    """What the demo's producers put upstream of each bronze table, counted at the source."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._consumer: Consumer | None = None
        self._kinesis: Any = None  # a boto3 Kinesis client (boto3 is untyped)
        self._after: dict[tuple[str, str], str] = {}
        self._records: Counter[tuple[str, str]] = Counter()
        self._file_rows: dict[Path, int] = {}

    def count(self, kind: str, name: str) -> int:
        if kind == "kafka":
            return self._kafka(name)
        if kind == "kinesis":
            return self._kinesis_records(name)
        return self._landed_rows(Path(local_path(volume_uri(self.settings, name))))

    def _kafka(self, topic: str) -> int:
        """Records the topic holds: end minus start offset of each partition."""
        from confluent_kafka import Consumer, TopicPartition

        if self._consumer is None:
            servers = self.settings.kafka.bootstrap_servers
            self._consumer = Consumer({"bootstrap.servers": servers, "group.id": "bench-demo"})
        found = self._consumer.list_topics(topic, timeout=10).topics.get(topic)
        if found is None or found.error is not None:
            return 0
        total = 0
        for partition in found.partitions:
            low, high = self._consumer.get_watermark_offsets(
                TopicPartition(topic, partition), timeout=10, cached=False
            )
            total += high - low
        return total

    def _kinesis_records(self, stream: str) -> int:
        """Records the stream holds, read from where the last call stopped, shard by shard."""
        import boto3

        if self._kinesis is None:
            self._kinesis = boto3.client("kinesis", **self.settings.aws.boto3_kwargs())
        client = self._kinesis
        try:
            shards = client.list_shards(StreamName=stream)["Shards"]
        except client.exceptions.ResourceNotFoundException:
            return 0
        for shard in shards:
            key = (stream, shard["ShardId"])
            start = {"ShardIteratorType": "TRIM_HORIZON"}
            if key in self._after:
                start = {
                    "ShardIteratorType": "AFTER_SEQUENCE_NUMBER",
                    "StartingSequenceNumber": self._after[key],
                }
            iterator = client.get_shard_iterator(StreamName=stream, ShardId=key[1], **start)
            iterator = iterator["ShardIterator"]
            for _ in range(KINESIS_CALLS_PER_SHARD):
                reply = client.get_records(ShardIterator=iterator, Limit=10_000)
                if not reply["Records"]:
                    break
                self._records[key] += len(reply["Records"])
                self._after[key] = reply["Records"][-1]["SequenceNumber"]
                iterator = reply.get("NextShardIterator")
                if not iterator:
                    break
        return sum(count for (name, _), count in self._records.items() if name == stream)

    def _landed_rows(self, folder: Path) -> int:
        """Rows of the landed files Auto Loader reads (CSV: lines after the header; JSON:
        lines); files are renamed into place whole, so each is counted once."""
        for path in folder.rglob("*"):
            hidden = any(part.startswith((".", "_")) for part in path.relative_to(folder).parts)
            if hidden or path in self._file_rows or not path.is_file():
                continue
            lines = sum(1 for line in path.read_bytes().splitlines() if line.strip())
            self._file_rows[path] = lines - 1 if path.suffix == ".csv" else lines
        return sum(rows for path, rows in self._file_rows.items() if path.is_relative_to(folder))

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()


def bronze_sources(settings: Settings) -> dict[tuple[str, str], tuple[str, str]]:
    """Where the demo's producers write what each bronze table reads: (kind, name)."""
    arduino, factory = settings.arduino, settings.manufacturing
    return {
        ("seismograph", "raw_stream"): (
            settings.seismograph.transport,
            settings.seismograph.stream,
        ),
        ("aws-iot", "iot_sensor_raw"): (settings.aws_iot.transport, settings.aws_iot.stream),
        ("arduino", "dht_temp_raw"): ("kafka", arduino.temperature_topic),
        ("arduino", "dht_hum_raw"): ("kafka", arduino.humidity_topic),
        ("arduino", "sr04_distance_raw"): ("kafka", arduino.distance_topic),
        ("arduino", "pir_test_raw"): ("kafka", arduino.pir_topic),
        ("manufacturing", "sensor_bronze"): ("files", factory.sensor_landing),
        ("manufacturing", "inspection_bronze"): ("files", factory.inspection_landing),
        ("text-sentiment", "bronze"): ("files", settings.text_sentiment.landing_path),
    }


@dataclass(frozen=True)
class TablePlan:
    """One table of one system: where it is, what it reads, and how its backlog is taken."""

    system: str
    name: str
    layer: str
    uri: str
    materialized: bool
    upstream: tuple[str, ...] = ()
    source: tuple[str, str] | None = None


def _upstream(file: str, name: str, names: set[str]) -> tuple[str, ...]:
    """Tables of the system the table's file reads (`read_stream("x")`, `LIVE.x`, ...)."""
    text = Path(re.sub(r":\d+$", "", file)).read_text()
    found = {read.rsplit(".", 1)[-1] for read in _READS.findall(text)}
    found |= set(_SQL_READS.findall(text))
    return tuple(sorted((found & names) - {name}))


def plan_tables(settings: Settings) -> list[TablePlan]:
    """Every table of every system, as the pipelines declare them (no Spark needed)."""
    from spark_jobs.runner import SYSTEMS, load_system, location

    sources = bronze_sources(settings)
    plans = []
    for system in SYSTEMS:
        specs = [spec for spec in load_system(system, settings) if not spec.is_flow]
        names = {spec.target for spec in specs}
        for spec in specs:
            plans.append(
                TablePlan(
                    system=system,
                    name=spec.target,
                    layer=spec.layer,
                    uri=location(settings, spec),
                    materialized=spec.materialized,
                    upstream=_upstream(spec.file, spec.target, names),
                    source=sources.get((system, spec.target)),
                )
            )
    return plans


class Backlogs:
    """Each sample's backlog of every table, by the rules of the module docstring."""

    def __init__(self, settings: Settings, plans: list[TablePlan]) -> None:
        # Downstream first, so a table's upstream is read after the table itself.
        self.plans = sorted(plans, key=lambda plan: LAYERS.get(plan.layer, 1))
        self.logs = {(p.system, p.name): TableLog(p.uri) for p in self.plans}
        systems = {plan.system for plan in plans}
        self.events = {s: EventLog(table_uri(settings, s, "event_log")) for s in systems}
        self.sources = Sources(settings)

    def sample(self) -> dict[str, dict[str, Any]]:
        positions = {
            (plan.system, plan.name): checkpoint_position(plan.uri)
            for plan in self.plans
            if plan.source is None and not plan.materialized
        }
        for events in self.events.values():
            events.refresh()
        for log in self.logs.values():
            log.refresh()
        return {
            f"{plan.system}.{plan.name}": self._one(plan, positions.get((plan.system, plan.name)))
            for plan in self.plans
        }

    def _one(self, plan: TablePlan, position: dict[str, Any] | None) -> dict[str, Any]:
        if plan.source is not None:
            inflow = self.sources.count(*plan.source)
            rows_in = self.events[plan.system].rows_in[plan.name]
            return {"rule": "source", "inflow": inflow, "backlog": inflow - rows_in}
        upstream = [self.logs[(plan.system, name)] for name in plan.upstream]
        inflow = sum(log.rows_total() for log in upstream)
        if position is not None:
            backlog = sum(
                log.rows_after(*position[log.table_id])
                if log.table_id in position
                else log.rows_total()
                for log in upstream
            )
            return {"rule": "checkpoint", "inflow": inflow, "backlog": backlog}
        since = self.logs[(plan.system, plan.name)].last_timestamp()
        backlog = sum(log.rows_since(since) for log in upstream)
        rule = "refresh" if plan.materialized else "same batch"
        return {"rule": rule, "inflow": inflow, "backlog": backlog}
