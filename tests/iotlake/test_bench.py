"""`iotlake bench`: a tiny run writes a table, JSON and a plot that agree with the lake.

These tests check what the benchmark reports against what actually landed in its Delta
tables, recomputed independently; they never assert a speed.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from iotlake.bench import BenchConfig, Timing, run_bench
from iotlake.bench.processes import descendants, private_settings
from tests.support.lake import read_table
from tests.support.settings import settings_for

SYSTEM = "seismograph"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _events_in(data: str) -> int:
    """Events one raw record carries: a JSON object, or an array of packed events."""
    parsed = json.loads(data)
    return len(parsed) if isinstance(parsed, list) else 1


def _slope(samples: list[dict], key: str, seconds: float) -> float:
    steady = [s for s in samples if seconds / 2 <= s["t"] <= seconds]
    times = [s["t"] for s in steady]
    return float(np.polyfit(times, [s[key] for s in steady], 1)[0])


@pytest.fixture(scope="module")
def tiny_run(spark, tmp_path_factory):
    """Half the DAIS load on Kafka for 16 s, packed two events a record; no cold start."""
    root = tmp_path_factory.mktemp("bench")
    lines: list[str] = []
    config = BenchConfig(
        loads=(0.5,),
        transports=("kafka",),
        pack=2,
        # Generous: on a shared machine the driver may need a restart to catch up.
        timing=Timing(seconds=16, drain_seconds=240),
        out_dir=root / "out",
        cold_start=False,
        baseline_kafka_rows=5_000,
        baseline_kinesis_rows=500,
        state_dir=root / "state",
    )
    base = settings_for(root / "base")
    results, json_path, png_path = run_bench(base, config, spark=spark, report=lines.append)
    lake = base.model_copy(
        update={"lake": base.lake.model_copy(update={"root": str(root / "state/stack/lake/kafka")})}
    )
    return results, json_path, png_path, lines, lake, root


@pytest.mark.slow
def test_tiny_run_counts_match_what_landed_in_the_tables(tiny_run):
    results, _, _, _, lake, _ = tiny_run
    (transport,) = results["transports"]
    assert transport["error"] is None
    (level,) = transport["levels"]
    assert level["drained"], "the pipeline should catch up with half the DAIS load"

    raw = read_table(lake, SYSTEM, "raw_stream")
    events_in_raw = int(raw["data"].map(_events_in).sum())
    # Every acknowledged event (the phones' and the probes') is in bronze, silver and gold.
    assert level["producer_events"] + level["probes_sent"] == events_in_raw
    assert level["producer_records"] + level["probes_sent"] == len(raw)
    assert level["raw_total_records"] == len(raw)
    assert len(read_table(lake, SYSTEM, "sensor")) == events_in_raw
    stat = read_table(lake, SYSTEM, "global_stat").iloc[0]
    assert stat["events"] == level["gold_total_events"] == level["produced_total_events"]
    assert level["pack"] == 2 and level["producer_records"] < level["producer_events"]

    devices = read_table(lake, SYSTEM, "max_magn_by_device")["device"]
    probes = devices[devices.str.startswith("probe-")]
    assert len(probes) == level["probes_in_gold"] == level["probes_sent"] > 0


@pytest.mark.slow
def test_tiny_run_figures_are_computed_from_its_own_samples(tiny_run):
    results, _, _, _, _, _ = tiny_run
    level = results["transports"][0]["levels"][0]
    samples, seconds = level["samples"], level["seconds"]

    assert level["gold_events_per_s"] == pytest.approx(_slope(samples, "gold_events", seconds))
    lag = [s["produced_records"] - s["raw_records"] for s in samples]
    assert level["lag_records_max"] == max(lag)
    steady_lag = [
        s["produced_records"] - s["raw_records"]
        for s in samples
        if seconds / 2 <= s["t"] <= seconds
    ]
    times = [s["t"] for s in samples if seconds / 2 <= s["t"] <= seconds]
    assert level["lag_records_slope_per_s"] == pytest.approx(np.polyfit(times, steady_lag, 1)[0])
    first_half = [s["produced_records"] - s["raw_records"] for s in samples if s["t"] < seconds / 2]
    assert level["lag_peak_growth_records"] == max(steady_lag) - max(first_half)
    offered_in_half = level["offered_events_per_s"] / level["pack"] * seconds / 2
    assert level["lag_bounded"] == (level["lag_peak_growth_records"] <= 0.05 * offered_in_half)
    produced = _slope(samples, "produced_events", seconds)
    assert level["gold_keeps_up"] == (level["gold_events_per_s"] >= 0.95 * produced)

    latencies = level["latencies_s"]
    assert len(latencies) == level["probes_in_gold"]
    assert all(value > 0 for value in latencies)  # a gold commit comes after its event
    p50, p95, p99 = np.percentile(latencies, [50, 95, 99])
    assert level["latency_s"] == pytest.approx({"p50": p50, "p95": p95, "p99": p99})

    bare = results["baseline"]["kafka"]["bare_client_to_delta_rows_per_s"]
    assert level["ratio_to_bare"] == pytest.approx(level["gold_events_per_s"] / bare)
    assert results["baseline"]["kafka"]["complete"]

    rss = level["rss_mb"]
    whole = {name: size for name, size in rss.items() if ": " not in name}
    assert {"aws", "kafka"} <= set(whole)
    assert any(name.startswith("producer-kafka-") for name in whole)
    # The driver (named `-restartN` if it had to be started again) with its JVM inside.
    (driver,) = [name for name in whole if name.startswith("pipeline-kafka")]
    assert 0 < rss[f"{driver}: jvm"] < whole[driver]
    assert level["rss_total_mb"] == pytest.approx(sum(whole.values()))


@pytest.mark.slow
def test_tiny_run_writes_json_plot_and_table_that_agree(tiny_run):
    results, json_path, png_path, lines, _, _ = tiny_run
    assert json.loads(json_path.read_text()) == json.loads(json.dumps(results, default=str))
    assert png_path.read_bytes()[:8] == PNG_SIGNATURE

    level = results["transports"][0]["levels"][0]
    (row,) = [line for line in lines if line.startswith("kafka") and " 0.5x " in line]
    cells = row.split()
    assert cells[2] == str(level["phones"])
    assert cells[5].replace(",", "") == f"{level['producer_events_per_s']:.0f}"
    assert cells[6].replace(",", "") == f"{level['gold_events_per_s']:.0f}"
    assert cells[-1] == f"{level['probes_in_gold']}/{level['probes_sent']}"
    assert any(line.startswith("bare kafka client -> delta-rs") for line in lines)


@pytest.mark.slow
def test_tiny_run_leaves_no_process_running(tiny_run):
    results, _, _, _, _, root = tiny_run
    stack = private_settings(settings_for(root / "base"), root / "state" / "stack")
    assert results["left_running_killed"] == []
    assert descendants(stack) == []
    assert not list(stack.run_dir.glob("*.pid"))


def test_bad_loads_stop_the_command_with_one_line(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "iotlake", "bench", "--loads", "1,ten", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "iotlake: --loads '1,ten': give numbers separated by commas, e.g. 1,10,100"
    ]
    assert not any(tmp_path.iterdir())
