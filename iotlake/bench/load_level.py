"""One load level on one transport: its plan, its samples, and the figures drawn from them.

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

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from iotlake.bench.load_measure import Ledger, Probes
from iotlake.bench.processes import rss_total
from services.producers.phone_simulator import MIN_SPACING_MS
from services.producers.transport import Target

DAIS_PHONES = 130
PHONE_RATE = 1000 / MIN_SPACING_MS  # 5 events/s per phone, as the DAIS page sent
BOUNDED_GROWTH_SHARE = 0.05


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


@dataclass(frozen=True)
class Timing:
    """How long each part of a level lasts, and how often it is sampled."""

    seconds: float = 60.0
    drain_seconds: float = 30.0
    sample_every: float = 1.0
    probe_every: float = 1.0
    rss_every: float = 5.0
    pipeline_start_timeout: float = 300.0


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
