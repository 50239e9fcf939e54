"""One transport of the seismograph flow under load: its load levels, run in turn.

For each load level the benchmark starts simulated-phone producers for a fixed time, sends
one probe event per second with a device id of its own, and samples once per second what
was produced, committed to bronze and counted in gold (`load_measure`); the level's figures
are computed from those samples (`load_level`). Every level of a transport runs on one
fresh stream and one pipeline driver (`load_stack`).
"""

from __future__ import annotations

import math
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from iotlake.bench.load_level import DAIS_PHONES, Level, Timing
from iotlake.bench.load_measure import Lake, Ledger, Probes, Producer, take_sample
from iotlake.bench.load_stack import Pipeline, Report, create_stream
from iotlake.bench.processes import BenchError, rss_by_process, rss_total, start_child
from iotlake.config import Settings
from services.producers.transport import Target

PHONES_PER_PRODUCER = 5000  # one Python producer process paces about this many phones


def default_pack(factor: float) -> int:
    """Events per record: one at the DAIS load (as the page sent), more at higher loads so
    the emulator's per-record cost does not cap the producers (about 5 events a record per
    10x of load beyond the original)."""
    return max(1, round(factor / 5))


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
            sample = take_sample(now - began, producers, level.probes, before, lake)
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
