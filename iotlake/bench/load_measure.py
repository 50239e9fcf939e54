"""What is measured while a load level runs, once per second.

- produced: what the producers (and the probe sender) had acknowledged, read from their
  progress lines (`sent N events in M records`, one per second);
- committed to bronze: the rows of `raw_stream`, from the Delta log's file statistics;
- in gold: `global_stat.events`, the number of events the gold aggregates include;
- each probe's first commit of `max_magn_by_device` that holds its device, whose Delta
  commit timestamp minus the probe's event time is its event -> gold latency.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import DeltaTable
from deltalake.exceptions import TableNotFoundError

from iotlake.bench.load_stack import SYSTEM
from iotlake.bench.processes import Child
from iotlake.config import Settings
from services.producers.phone_simulator import partition_key
from services.producers.transport import Record, Target, make_sender
from spark_jobs.io.storage import storage_options, table_uri

PROBE_PREFIX = "probe-"
_SENT = re.compile(r"sent (\d+) events in (\d+) records")
_FINAL = re.compile(r"stopped after ([\d.]+)s: sent (\d+) events in (\d+) records")


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


def take_sample(
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
