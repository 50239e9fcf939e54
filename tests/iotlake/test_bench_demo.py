"""`iotlake bench demo`: the backlog rule, the latency of commits, and one real short run.

The rule and the latency are checked on hand-made series and on small Delta tables written
with delta-rs; the end-to-end test runs the command on its own private stack and checks
that its JSON holds what a speaker reads off it, never how fast anything was.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake

from iotlake.bench.demo_backlog import (
    TableLog,
    checkpoint_position,
    commit_latencies,
    event_time_column,
)
from iotlake.bench.demo_report import (
    GRACE_SECONDS,
    SLOPE_SHARE,
    backlog_verdict,
    expected,
    slope,
)
from spark_jobs import runner
from spark_jobs.io.autoloader import SchemaEvolutionError

REPO = Path(__file__).resolve().parents[2]
SYSTEMS = ("arduino", "aws-iot", "manufacturing", "seismograph", "text-sentiment")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
TIMES = [float(t) for t in range(0, 600, 10)]
INFLOW = [100.0 * t for t in TIMES]  # 100 rows/s arrive upstream


def test_a_backlog_that_levels_off_after_start_up_is_bounded():
    # Start-up burst, then a saw-tooth of micro-batches well above a minute of input.
    backlog = [20_000 - 30 * t if t < 300 else 11_000 + (t % 20) * 50 for t in TIMES]
    verdict = backlog_verdict(TIMES, backlog, INFLOW)
    assert verdict["bounded"] is True
    assert verdict["inflow_rows_per_s"] == pytest.approx(100.0)
    assert verdict["allowance_rows"] == pytest.approx(100.0 * GRACE_SECONDS)
    assert verdict["max"] == 20_000 and verdict["end"] == backlog[-1]
    assert verdict["last_quarter_low"] == 11_000


def test_a_backlog_that_keeps_growing_is_not_bounded():
    backlog = [20.0 * t for t in TIMES]  # a fifth of the input is never reflected
    verdict = backlog_verdict(TIMES, backlog, INFLOW)
    assert verdict["second_half_slope_rows_per_s"] == pytest.approx(20.0)
    assert verdict["second_half_slope_rows_per_s"] > SLOPE_SHARE * verdict["inflow_rows_per_s"]
    assert verdict["last_quarter_low"] > max(verdict["first_half_peak"], verdict["allowance_rows"])
    assert verdict["bounded"] is False
    # Twice as fast, the trend alone adds more than a minute of input over the second half.
    assert backlog_verdict(TIMES, [2 * value for value in backlog], INFLOW)["bounded"] is False


def test_a_backlog_within_a_minute_of_input_is_bounded_whatever_its_trend():
    backlog = [min(t, 5_000.0) for t in TIMES]  # rising, but never a minute of input
    assert backlog_verdict(TIMES, backlog, INFLOW)["bounded"] is True


def test_a_backlog_that_jumps_and_stays_up_is_not_bounded():
    # Flat in each half, so no slope in the second; but it never comes back down.
    backlog = [100.0 if t < 300 else 50_000.0 for t in TIMES]
    verdict = backlog_verdict(TIMES, backlog, INFLOW)
    assert verdict["second_half_slope_rows_per_s"] == pytest.approx(0.0)
    assert verdict["first_half_peak"] == 100.0
    assert verdict["bounded"] is False


def test_a_table_that_drains_every_chunk_it_gets_is_bounded_however_big_the_chunks():
    # Its upstream commits a chunk a minute, bigger in the second half; each is drained.
    backlog = [(5_000.0 if t < 300 else 30_000.0) if t % 60 == 30 else 0.0 for t in TIMES]
    verdict = backlog_verdict(TIMES, backlog, INFLOW)
    assert verdict["last_quarter_low"] == 0.0
    assert verdict["bounded"] is True


def test_slope_is_the_least_squares_fit():
    assert slope([0, 1, 2, 3], [1, 3, 5, 7]) == pytest.approx(2.0)
    assert slope([5], [9]) == 0.0


def _readings(event_times: list[dt.datetime], device: str) -> pa.Table:
    stamps = pa.timestamp("us", tz="UTC")
    return pa.table(
        {
            # A TIMESTAMP column not named like an event time comes first.
            "loaded": pa.array([dt.datetime(2020, 1, 1, tzinfo=dt.UTC)] * len(event_times), stamps),
            "device": [device] * len(event_times),
            "event_time": pa.array(event_times, stamps),
        }
    )


def test_restarts_for_a_schema_change_are_expected_and_others_are_not():
    """The runner's own wording: a source or an upstream table that gained columns restarts
    its query on purpose; any other restart counts against the demo."""
    evolved = (
        f"text_sentiment.bronze: {SchemaEvolutionError.__name__}: cloudFiles: new column(s) user"
    )
    assert expected(evolved + "; restarting")
    assert expected(f"text_sentiment.languages: {runner.UPSTREAM_GAINED_COLUMNS}; restarting")
    assert not expected("seismograph.raw_stream: a Python worker did not connect back; restarting")


def test_latency_is_each_commit_time_minus_the_newest_event_it_added(tmp_path):
    uri = str(tmp_path / "readings")
    now = dt.datetime.now(dt.UTC)
    newest = [now - dt.timedelta(seconds=7), now - dt.timedelta(seconds=2, milliseconds=250)]
    write_deltalake(uri, _readings([newest[0] - dt.timedelta(seconds=30), newest[0]], "a"))
    write_deltalake(
        uri, _readings([newest[1], newest[1] - dt.timedelta(seconds=1)], "b"), mode="append"
    )

    log = TableLog(uri)
    log.refresh()
    assert event_time_column(uri) == "event_time"
    commits = {entry["version"]: entry["timestamp"] for entry in DeltaTable(uri).history()}
    expected = [
        (commits[version] - round(newest[version].timestamp() * 1000)) / 1000 for version in (0, 1)
    ]
    found = commit_latencies(log, "event_time", 0, commits[1])
    assert found == pytest.approx(expected, abs=0.002)
    assert 7 <= found[0] < 60 and 2.25 <= found[1] < 60
    # Only commits inside the window count.
    assert commit_latencies(log, "event_time", commits[1], commits[1]) == pytest.approx(
        expected[1:], abs=0.002
    )


def test_a_table_without_an_event_time_column_has_no_latency(tmp_path):
    uri = str(tmp_path / "counts")
    write_deltalake(uri, pa.table({"device": ["a"], "count": [3]}))
    assert event_time_column(uri) is None


def test_rows_a_streaming_query_has_not_read_follow_its_checkpoint(tmp_path):
    uri = tmp_path / "silver"
    for rows in (3, 5, 7):  # versions 0, 1, 2 add 3, 5 and 7 rows
        write_deltalake(str(uri), pa.table({"n": list(range(rows))}), mode="append")
    log = TableLog(str(uri))
    log.refresh()
    assert [sum(commit.rows) for commit in log.commits] == [3, 5, 7]
    assert log.rows_total() == 15
    assert log.rows_after(1, -1, False) == 12  # version 1 not begun: 1 and 2 unread
    assert log.rows_after(1, 0, False) == 7  # the one file of version 1 read
    assert log.rows_after(2, 2**63 - 1, False) == 0  # version 2 read to its end
    assert log.rows_after(1, -1, True) == 15  # the starting snapshot not read at all
    assert log.rows_since(log.commits[0].timestamp_ms) == log.rows_after(0, 0, False)

    reader = tmp_path / "gold"
    (reader / "_checkpoint" / "offsets").mkdir(parents=True)
    (reader / "_checkpoint" / "commits").mkdir()
    assert checkpoint_position(str(tmp_path / "chained")) is None  # no query of its own
    assert checkpoint_position(str(reader)) == {}  # its query has completed no batch yet
    offset = {"sourceVersion": 1, "reservoirId": log.table_id, "reservoirVersion": 1}
    for batch, index in ((0, -1), (1, 0)):
        lines = ["v1", json.dumps({"batchWatermarkMs": 0}), json.dumps(offset | {"index": index})]
        (reader / "_checkpoint" / "offsets" / str(batch)).write_text("\n".join(lines))
    (reader / "_checkpoint" / "commits" / "0").write_text("v1\n{}")
    # Batch 1 is planned but not committed: the position is batch 0's.
    assert checkpoint_position(str(reader)) == {log.table_id: (1, -1, False)}
    (reader / "_checkpoint" / "commits" / "1").write_text("v1\n{}")
    position = checkpoint_position(str(reader))
    assert position == {log.table_id: (1, 0, False)}
    assert log.rows_after(*position[log.table_id]) == 7


def test_too_short_a_run_stops_the_command_with_one_line(tmp_path):
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "iotlake",
            "bench",
            "demo",
            "--minutes",
            "0.1",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "iotlake: --minutes must cover at least two samples of --sample-seconds"
    ]
    assert not any(tmp_path.iterdir())


def _numeric(values: list) -> bool:
    return all(
        isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in values
    )


@pytest.mark.slow
def test_one_minute_of_the_demo_gives_backlogs_memory_and_a_verdict(tmp_path):
    out = tmp_path / "out"
    env = {name: value for name, value in os.environ.items() if not name.startswith("IOTLAKE_")}
    done = subprocess.run(
        [sys.executable, "-m", "iotlake", "bench", "demo", "--minutes", "1"]
        + ["--sample-seconds", "5", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=1800,
        cwd=REPO,
        env=env,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (json_path,) = out.glob("bench-demo-*.json")
    (png_path,) = out.glob("bench-demo-*.png")
    assert png_path.read_bytes()[:8] == PNG_SIGNATURE
    results = json.loads(json_path.read_text())

    times = results["times_s"]
    assert len(times) >= 2 and times[-1] >= 60
    assert set(results["systems"]) == set(SYSTEMS)
    for system, tables in results["systems"].items():
        sampled = [t for t in tables.values() if len(t["backlog"]) == len(times)]
        assert sampled, f"{system}: no table with samples"
        for table in sampled:
            assert _numeric(table["backlog"]) and _numeric(table["inflow"])
            assert isinstance(table["verdict"]["bounded"], bool)
    # The producers' records were counted where they landed: broker, emulator, files.
    assert results["systems"]["seismograph"]["raw_stream"]["inflow"][-1] > 0
    assert results["systems"]["text-sentiment"]["bronze"]["inflow"][-1] > 0

    rss = results["rss"]
    assert len(rss["total_mb"]) == len(times) and _numeric(rss["total_mb"])
    assert rss["peak_total_mb"] == max(rss["total_mb"]) > 0
    assert {"kafka", "aws", "pipelines", "producer-seismograph"} <= set(rss["peak_by_process"])
    # Shared pages count once in PSS and in every process in RSS.
    assert len(rss["pss_total_mb"]) == len(times) and _numeric(rss["pss_total_mb"])
    assert 0 < rss["peak_pss_mb"] <= rss["peak_total_mb"]
    verdict = results["verdict"]
    for key in ("all_bounded", "restarted", "memory_within_budget", "keeps_up"):
        assert isinstance(verdict[key], bool)
    assert verdict["all_bounded"] == (verdict["unbounded_tables"] == [])
    assert rss["within_budget"] == (rss["peak_total_mb"] <= rss["budget_mb"] == 4096)
    assert verdict["memory_within_budget"] == (rss["peak_pss_mb"] <= 4096)

    lines = done.stdout.splitlines()
    assert any(line.startswith("seismograph    raw_stream") for line in lines)
    assert any(line.startswith("verdict: ") for line in lines)
    assert results["left_running_killed"] == []
