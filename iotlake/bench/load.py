"""One transport of the seismograph flow under load: producers, probes, and what is measured.

For each load level the benchmark starts simulated-phone producers for a fixed time, sends
one probe event per second with a device id of its own, and samples once per second:
- produced: what the producers (and the probe sender) had acknowledged, read from their
  progress lines (`sent N events in M records`, one per second);
- committed to bronze: the rows of `raw_stream`, from the Delta log's file statistics;
- in gold: `global_stat.events`, the number of events the gold aggregates include;
- each probe's first commit of `max_magn_by_device` that holds its device, whose Delta
  commit timestamp minus the probe's event time is its event -> gold latency.
Consumer lag is produced minus committed to `raw_stream` (in records: what the consumer
reads). It is a saw-tooth: it climbs between micro-batch commits and drops at each. The lag
is bounded at a level when its peak over the second half of the level is not above its peak
over the first half by more than `BOUNDED_GROWTH_SHARE` of the records offered in a half
(a pipeline that keeps up has the same peaks all along; one that falls behind has each peak
higher than the last); the least-squares slope over the second half is reported beside it.
Gold keeps up when its events/s over the second half reach the producers' events/s there
(within the same share): bronze may keep up while silver and gold fall behind.
"""

from __future__ import annotations

import json
import math
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import boto3
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

# NewTopic is public here (confluent-kafka's docs import it so) but its stubs lack the re-export.
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]
from deltalake import DeltaTable
from deltalake.exceptions import TableNotFoundError

from iotlake.bench.processes import (
    BenchError,
    Child,
    rss_by_process,
    rss_total,
    start_child,
    wait_for_line,
)
from iotlake.config import Settings
from services.producers.phone_simulator import MIN_SPACING_MS, partition_key
from services.producers.transport import Record, Target, make_sender
from spark_jobs.io.storage import storage_options, table_uri

SYSTEM = "seismograph"
DAIS_PHONES = 130
PHONE_RATE = 1000 / MIN_SPACING_MS  # 5 events/s per phone, as the DAIS page sent
PARTITIONS = 4  # as `iotlake provision` creates dais2023
PHONES_PER_PRODUCER = 5000  # one Python producer process paces about this many phones
BOUNDED_GROWTH_SHARE = 0.05
PROBE_PREFIX = "probe-"
_SENT = re.compile(r"sent (\d+) events in (\d+) records")
_RUNNING = re.compile(r"running \d+ queries: ")
_FINAL = re.compile(r"stopped after ([\d.]+)s: sent (\d+) events in (\d+) records")

Report = Callable[[str], None]


@dataclass(frozen=True)
class Timing:
    """How long each part of a level lasts, and how often it is sampled."""

    seconds: float = 60.0
    drain_seconds: float = 30.0
    sample_every: float = 1.0
    probe_every: float = 1.0
    rss_every: float = 5.0
    pipeline_start_timeout: float = 300.0


def default_pack(factor: float) -> int:
    """Events per record: one at the DAIS load (as the page sent), more at higher loads so
    the emulator's per-record cost does not cap the producers (about 5 events a record per
    10x of load beyond the original)."""
    return max(1, round(factor / 5))


def create_stream(settings: Settings, transport: str, name: str) -> None:
    """A fresh Kafka topic or Kinesis stream with as many partitions as `dais2023` has."""
    if transport == "kafka":
        admin = AdminClient({"bootstrap.servers": settings.kafka.bootstrap_servers})
        admin.create_topics([NewTopic(name, PARTITIONS, 1)])[name].result(timeout=60)
        return
    kinesis = boto3.client("kinesis", **settings.aws.boto3_kwargs())
    kinesis.create_stream(StreamName=name, ShardCount=PARTITIONS)
    kinesis.get_waiter("stream_exists").wait(
        StreamName=name, WaiterConfig={"Delay": 0.5, "MaxAttempts": 120}
    )


class Lake:
    """Reads of the seismograph tables with delta-rs, cheap enough to repeat every second."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._tables: dict[str, DeltaTable] = {}
        self._probe_version = -1
        self._probes_seen: set[str] = set()

    def _table(self, name: str) -> DeltaTable | None:
        table = self._tables.get(name)
        if table is not None:
            table.update_incremental()
            return table
        uri = table_uri(self.settings, SYSTEM, name)
        try:
            table = DeltaTable(uri, storage_options=storage_options(self.settings, uri) or None)
        except TableNotFoundError:
            return None
        self._tables[name] = table
        return table

    def raw_records(self) -> int:
        """Rows committed to bronze `raw_stream`, summed from the log's file statistics."""
        table = self._table("raw_stream")
        if table is None:
            return 0
        actions = pa.table(table.get_add_actions(flatten=True))
        return int(pc.sum(actions["num_records"]).as_py() or 0) if actions.num_rows else 0

    def gold_events(self) -> int:
        """How many events the gold aggregates include: `global_stat.events`."""
        table = self._table("global_stat")
        if table is None:
            return 0
        events = table.to_pyarrow_table(columns=["events"])["events"].to_pylist()
        return int(events[0] or 0) if events else 0

    def new_probes(self) -> dict[str, int]:
        """Probe devices that appeared in `max_magn_by_device` since the last call, each with
        the commit timestamp (epoch ms) of the first version that holds it."""
        table = self._table("max_magn_by_device")
        if table is None:
            return {}
        newest = table.version()
        if newest <= self._probe_version:
            return {}
        stamps = {
            entry["version"]: int(entry["timestamp"])
            for entry in table.history(limit=newest - self._probe_version)
        }
        found: dict[str, int] = {}
        for version in range(self._probe_version + 1, newest + 1):
            holding = self._seen_probes(table.table_uri, version)
            for device in holding - self._probes_seen:
                found.setdefault(device, stamps[version])
            self._probes_seen |= holding
        self._probe_version = newest
        return found

    def _seen_probes(self, uri: str, version: int) -> set[str]:
        snapshot = DeltaTable(
            uri, version=version, storage_options=storage_options(self.settings, uri) or None
        )
        devices = snapshot.to_pyarrow_table(columns=["device"])["device"]
        probes = pc.filter(devices, pc.starts_with(devices, PROBE_PREFIX))
        return set(probes.to_pylist())


@dataclass
class Producer:
    """One phone-simulator process and the counts its progress lines report."""

    child: Child
    events: int = 0
    records: int = 0
    elapsed: float | None = None

    def read(self) -> None:
        for line in self.child.new_lines():
            final = _FINAL.search(line)
            if final:
                self.elapsed = float(final.group(1))
            sent = _SENT.search(line)
            if sent:
                self.events, self.records = int(sent.group(1)), int(sent.group(2))


@dataclass
class Ledger:
    """What went into the stream so far, over every level on one pipeline."""

    records: int = 0
    events: int = 0


@dataclass
class Probes:
    """Probe events: one record each, a device id of their own, their send time."""

    settings: Settings
    transport: Target
    stream: str
    label: str
    sent_ms: dict[str, int] = field(default_factory=dict)
    gold_ms: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._sender = make_sender(
            self.settings,
            self.transport,
            self.stream,
            linger=0.0,
            retry_sleep=0.5,
            report=lambda line: None,
        )

    def send_one(self) -> None:
        device = f"{PROBE_PREFIX}{self.label}-{len(self.sent_ms):05d}"
        now_ms = round(time.time() * 1000)
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now_ms / 1000))
        event = {"magnitude": 0, "time": f"{stamp}.{now_ms % 1000:03d}Z", "device": device}
        data = json.dumps(event, separators=(",", ":")).encode()
        self._sender.send([Record(partition_key(device), data)])
        self._sender.poll(time.time())
        self.sent_ms[device] = now_ms

    def poll(self) -> None:
        self._sender.poll(time.time())

    def close(self) -> None:
        self._sender.close(30.0)

    @property
    def acknowledged(self) -> int:
        return self._sender.stats.records

    def latencies(self) -> list[float]:
        """Seconds from each probe's event time to the gold commit that first held it."""
        return [
            (self.gold_ms[device] - sent) / 1000
            for device, sent in self.sent_ms.items()
            if device in self.gold_ms
        ]


def _slope(times: list[float], values: list[float]) -> float:
    """Least-squares slope of `values` over `times` (0 with fewer than two points)."""
    if len(times) < 2 or max(times) == min(times):
        return 0.0
    return float(np.polyfit(np.array(times), np.array(values, dtype=float), 1)[0])


def _peak_growth(samples: list[dict[str, Any]], seconds: float, ahead: str, behind: str) -> int:
    """How much higher the gap `ahead - behind` peaks in the second half of a level than in
    the first: about zero when a pipeline keeps up, growing when it falls behind."""
    first = [s[ahead] - s[behind] for s in samples if s["t"] < seconds / 2]
    second = [s[ahead] - s[behind] for s in samples if seconds / 2 <= s["t"] <= seconds]
    return max(second, default=0) - max(first, default=0)


def _percentiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p95": None, "p99": None}
    found = np.percentile(np.array(values), [50, 95, 99])
    return {"p50": float(found[0]), "p95": float(found[1]), "p99": float(found[2])}


@dataclass
class Level:
    """One load level on one transport: its plan, its samples, and the probes' fate."""

    transport: Target
    factor: float
    pack: int
    producers: int
    timing: Timing
    samples: list[dict[str, Any]] = field(default_factory=list)
    rss_peak: dict[str, float] = field(default_factory=dict)
    producer_rates: list[float] = field(default_factory=list)
    produced_events: int = 0
    produced_records: int = 0
    probes: Probes | None = None
    drained: bool = False
    pipeline_restarts: list[str] = field(default_factory=list)

    @property
    def phones(self) -> int:
        return max(1, round(DAIS_PHONES * self.factor))

    @property
    def offered_events_per_s(self) -> float:
        return self.phones * PHONE_RATE

    def summary(self, ledger_before: Ledger) -> dict[str, Any]:
        """The level's figures, all computed from its samples and the producers' counts."""
        seconds = self.timing.seconds
        steady = [s for s in self.samples if seconds / 2 <= s["t"] <= seconds]
        times = [s["t"] for s in steady]
        lag = [s["produced_records"] - s["raw_records"] for s in self.samples]
        steady_lag = [s["produced_records"] - s["raw_records"] for s in steady]
        lag_slope = _slope(times, steady_lag)
        offered_records = self.offered_events_per_s / self.pack
        growth = _peak_growth(self.samples, seconds, "produced_records", "raw_records")
        half = seconds / 2
        produced_steady = _slope(times, [s["produced_events"] for s in steady])
        gold_steady = _slope(times, [s["gold_events"] for s in steady])
        latencies = self.probes.latencies() if self.probes else []
        sent_probes = len(self.probes.sent_ms) if self.probes else 0
        last = self.samples[-1] if self.samples else {}
        return {
            "transport": self.transport,
            "load": self.factor,
            "phones": self.phones,
            "pack": self.pack,
            "producer_processes": self.producers,
            "seconds": seconds,
            "offered_events_per_s": self.offered_events_per_s,
            "producer_events": self.produced_events,
            "producer_records": self.produced_records,
            "producer_events_per_s": sum(self.producer_rates),
            "producer_events_per_s_steady": produced_steady,
            "raw_records_per_s": _slope(times, [s["raw_records"] for s in steady]),
            "gold_events_per_s": gold_steady,
            "lag_records_max": max(lag, default=0),
            "lag_records_end": lag[-1] if lag else 0,
            "lag_records_slope_per_s": lag_slope,
            "lag_seconds_max": max(lag, default=0) / offered_records if offered_records else 0,
            "lag_peak_growth_records": growth,
            "lag_bounded": growth <= BOUNDED_GROWTH_SHARE * offered_records * half,
            # Bronze can keep up while silver and gold fall behind: judged apart.
            "gold_keeps_up": gold_steady >= (1 - BOUNDED_GROWTH_SHARE) * produced_steady,
            "drained": self.drained,
            "pipeline_restarts": self.pipeline_restarts,
            "produced_total_events": last.get("produced_events", ledger_before.events),
            "gold_total_events": last.get("gold_events", 0),
            "raw_total_records": last.get("raw_records", 0),
            "probes_sent": sent_probes,
            "probes_in_gold": len(latencies),
            "latency_s": _percentiles(latencies),
            "latencies_s": sorted(latencies),
            "rss_mb": self.rss_peak,
            "rss_total_mb": rss_total(self.rss_peak),
            "samples": self.samples,
            "probe_points": self._probe_points(),
        }

    def _probe_points(self) -> list[tuple[float, float]]:
        """(seconds into the level the probe was sent, its latency) for the plot."""
        if not self.probes or not self.samples:
            return []
        start_ms = self.samples[0]["at_ms"] - self.samples[0]["t"] * 1000
        return [
            ((sent - start_ms) / 1000, (self.probes.gold_ms[device] - sent) / 1000)
            for device, sent in self.probes.sent_ms.items()
            if device in self.probes.gold_ms
        ]


def _start_producers(settings: Settings, level: Level, stream: str) -> list[Producer]:
    """Split the level's phones over its producer processes, each with its own seed."""
    share, extra = divmod(level.phones, level.producers)
    producers = []
    for index in range(level.producers):
        phones = share + (index < extra)
        name = f"producer-{level.transport}-{level.factor:g}x-{index}"
        args = [
            "-m",
            "services.producers.phone_simulator",
            "--phones",
            str(phones),
            "--pack",
            str(level.pack),
            "--target",
            level.transport,
            "--stream",
            stream,
            "--seed",
            str(1000 * index + round(level.factor * 10)),
            "--duration",
            str(level.timing.seconds),
            "--progress-every",
            "1",
        ]
        producers.append(Producer(start_child(settings, name, args)))
    return producers


@dataclass
class Pipeline:
    """The `iotlake run seismograph --continuous` driver of one transport.

    On a loaded machine a query can die (a Python worker that does not connect back in
    time); the driver is then started again, resuming from its checkpoints, and the restart
    is reported with the level instead of ending the benchmark.
    """

    settings: Settings
    transport: Target
    max_restarts: int = 3
    child: Child | None = None
    restarts: list[str] = field(default_factory=list)

    def start(self) -> None:
        suffix = f"-restart{len(self.restarts)}" if self.restarts else ""
        self.child = start_child(
            self.settings,
            f"pipeline-{self.transport}{suffix}",
            ["-m", "iotlake", "run", SYSTEM, "--continuous"],
        )

    def wait_ready(self, timeout: float, report: Report) -> None:
        """Wait until every query runs; a driver that dies while starting is started again."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                wait_for_line(
                    self._started(),
                    # Spark's progress bar may share the line (it ends in \r, not \n).
                    lambda line: _RUNNING.search(line) is not None,
                    max(1.0, deadline - time.monotonic()),
                    "running queries",
                )
                return
            except BenchError:
                if self._started().running() or time.monotonic() >= deadline:
                    raise
                self.keep_running(report)

    def keep_running(self, report: Report) -> None:
        """Start the driver again if it stopped; give up after `max_restarts`."""
        child = self._started()
        if child.running():
            return
        reason = child.last_line()
        if len(self.restarts) >= self.max_restarts:
            raise BenchError(
                f"the {self.transport} pipeline stopped {len(self.restarts) + 1} times; "
                f"last: {reason}"
            )
        self.restarts.append(reason)
        report(f"{self.transport}: pipeline stopped ({reason}); starting it again")
        child.stop()
        self.start()

    def _started(self) -> Child:
        if self.child is None:
            raise BenchError(f"the {self.transport} pipeline has not been started")
        return self.child

    def stop(self) -> None:
        if self.child is not None:
            self.child.stop()


def run_level(
    settings: Settings,
    stream: str,
    level: Level,
    ledger: Ledger,
    lake: Lake,
    pipeline: Pipeline,
    report: Report,
) -> dict[str, Any]:
    """Drive one load level and return its summary; `ledger` then includes its records.

    Producers run for `seconds`; sampling goes on until gold holds every produced event and
    every probe (drained), or `drain_seconds` after the producers stopped, whichever is
    first: a load the pipeline cannot sustain ends the level with its backlog reported.
    """
    before = Ledger(ledger.records, ledger.events)
    timing = level.timing
    producers = _start_producers(settings, level, stream)
    level.probes = Probes(settings, level.transport, stream, f"{level.transport}-{level.factor:g}x")
    began = time.monotonic()
    next_probe = next_rss = began
    producing_until = began + timing.seconds
    # Producers stop themselves after `seconds`; a minute more covers their flush.
    hard_stop = producing_until + 60 + timing.drain_seconds
    drain_began: float | None = None
    restarts_before = len(pipeline.restarts)
    try:
        while True:
            now = time.monotonic()
            pipeline.keep_running(report)
            if now < producing_until and now >= next_probe:
                level.probes.send_one()
                next_probe += timing.probe_every
            level.probes.poll()
            running = [p for p in producers if p.child.running()]
            for producer in producers:
                producer.read()
            if not running and drain_began is None:
                drain_began = now
            sample = _sample(now - began, producers, level.probes, before, lake)
            level.samples.append(sample)
            if now < producing_until and now >= next_rss:
                _keep_peak(level, rss_by_process(settings))
                next_rss += timing.rss_every
            if drain_began is not None:
                caught_up = sample["gold_events"] >= sample["produced_events"]
                level.drained = caught_up and _probes_all_seen(level.probes)
                if level.drained or now >= drain_began + timing.drain_seconds:
                    break
            if now >= hard_stop:
                break
            time.sleep(max(0.0, timing.sample_every - (time.monotonic() - now)))
    finally:
        for producer in producers:
            if producer.child.running():
                producer.child.stop()
            producer.read()
        level.probes.close()
    level.produced_events = sum(p.events for p in producers)
    level.produced_records = sum(p.records for p in producers)
    level.producer_rates = [p.events / p.elapsed for p in producers if p.elapsed]
    level.pipeline_restarts = pipeline.restarts[restarts_before:]
    ledger.records += level.produced_records + level.probes.acknowledged
    ledger.events += level.produced_events + level.probes.acknowledged
    summary = level.summary(before)
    report(
        f"{level.transport} {level.factor:g}x: {summary['gold_events_per_s']:,.0f} events/s "
        f"to gold, producers {summary['producer_events_per_s']:,.0f}/s, lag "
        f"{'bounded' if summary['lag_bounded'] else 'GROWING'}, gold "
        f"{'keeps up' if summary['gold_keeps_up'] else 'BEHIND'}"
    )
    return summary


def _probes_all_seen(probes: Probes) -> bool:
    return all(device in probes.gold_ms for device in probes.sent_ms)


def _keep_peak(level: Level, rows: dict[str, float]) -> None:
    if rss_total(rows) > rss_total(level.rss_peak):
        level.rss_peak = rows


def _sample(
    t: float, producers: list[Producer], probes: Probes, before: Ledger, lake: Lake
) -> dict[str, Any]:
    """One point of the series: produced (cumulative over levels), bronze, gold."""
    probes.gold_ms |= {
        device: stamp for device, stamp in lake.new_probes().items() if device in probes.sent_ms
    }
    return {
        "t": round(t, 3),
        "at_ms": round(time.time() * 1000),
        "produced_records": before.records
        + sum(p.records for p in producers)
        + probes.acknowledged,
        "produced_events": before.events + sum(p.events for p in producers) + probes.acknowledged,
        "raw_records": lake.raw_records(),
        "gold_events": lake.gold_events(),
    }


@dataclass(frozen=True)
class TransportPlan:
    transport: Target
    loads: tuple[float, ...]
    timing: Timing
    packs: dict[float, int] = field(default_factory=dict)


def run_transport(settings: Settings, plan: TransportPlan, report: Report) -> dict[str, Any]:
    """Start a seismograph pipeline on a fresh stream, run each load level on it in turn.

    A failure part-way keeps the levels measured so far, with the error beside them.
    """
    stream = f"bench-{plan.transport}-{uuid.uuid4().hex[:6]}"
    result: dict[str, Any] = {
        "transport": plan.transport,
        "stream": stream,
        "levels": [],
        "error": None,
    }
    create_stream(settings, plan.transport, stream)
    seismograph = settings.seismograph.model_copy(
        update={"transport": plan.transport, "stream": stream}
    )
    lake_root = str(settings.state_dir / "lake" / plan.transport)
    settings = settings.model_copy(
        update={
            "seismograph": seismograph,
            "lake": settings.lake.model_copy(update={"root": lake_root}),
        }
    )
    began = time.monotonic()
    pipeline = Pipeline(settings, plan.transport)
    pipeline.start()
    try:
        pipeline.wait_ready(plan.timing.pipeline_start_timeout, report)
        result["pipeline_start_s"] = round(time.monotonic() - began, 1)
        result["pipeline_start_restarts"] = list(pipeline.restarts)
        report(
            f"{plan.transport}: pipeline running in {result['pipeline_start_s']:.0f}s "
            f"(stream {stream})"
        )
        ledger, lake = Ledger(), Lake(settings)
        for factor in plan.loads:
            level = Level(
                transport=plan.transport,
                factor=factor,
                pack=plan.packs.get(factor, default_pack(factor)),
                producers=max(1, math.ceil(DAIS_PHONES * factor / PHONES_PER_PRODUCER)),
                timing=plan.timing,
            )
            report(
                f"{plan.transport} {factor:g}x: {level.phones} phones, pack {level.pack}, "
                f"{level.producers} producer process(es), {plan.timing.seconds:g}s"
            )
            summary = run_level(settings, stream, level, ledger, lake, pipeline, report)
            result["levels"].append(summary)
    except BenchError as error:
        result["error"] = str(error)
        report(f"{plan.transport}: {error}")
    finally:
        pipeline.stop()
    return result
