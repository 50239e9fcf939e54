"""Seeded phone events through broker -> bronze -> silver -> gold, checked against pandas."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from expectations.suites import validate
from services.producers.phone_simulator import FleetConfig, generate_events, send_events
from spark_jobs.runner import load_system, location, run_once
from tests.support.lake import private_settings, read_table

START_MS = 1_700_000_000_000
SYSTEM = "seismograph"


def _expected_sensor(events: list[dict]) -> pd.DataFrame:
    frame = pd.DataFrame(events)
    frame["time"] = pd.to_datetime(frame["time"], utc=True)
    return frame.rename(columns={"magnitude": "magn"})[["device", "time", "magn"]]


def _sorted(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    return frame.sort_values(keys).reset_index(drop=True)


@pytest.mark.slow
@pytest.mark.parametrize("transport", ["kinesis", "kafka"])
def test_seeded_events_build_every_table_as_pandas_computes_it(stack, spark, tmp_path, transport):
    settings = private_settings(stack, tmp_path / "lake", SYSTEM, transport, shards=4)
    events = list(generate_events(FleetConfig(phones=24, seed=11), START_MS, duration=6))
    stats = send_events(settings, events, pack=1)
    assert stats.failed == 0

    run_once(spark, settings, SYSTEM, report=print)

    expected = _expected_sensor(events)
    raw = read_table(settings, SYSTEM, "raw_stream")
    sensor = read_table(settings, SYSTEM, "sensor")
    assert len(raw) == len(events)
    assert raw["source"].unique().tolist() == [transport]
    assert _sorted(sensor, ["device", "time"])[["device", "magn"]].equals(
        _sorted(expected, ["device", "time"])[["device", "magn"]].astype({"magn": "float32"})
    )

    stat = read_table(settings, SYSTEM, "global_stat").iloc[0]
    assert stat["events"] == len(events)
    assert stat["max"] == expected["magn"].max() and stat["min"] == expected["magn"].min()
    assert stat["avg"] == pytest.approx(expected["magn"].mean())
    assert stat["stddev"] == pytest.approx(expected["magn"].std(ddof=1))

    histo = _sorted(read_table(settings, SYSTEM, "max_magn_by_device"), ["device"])
    want_histo = expected.groupby("device", as_index=False)["magn"].max()
    assert histo["device"].tolist() == want_histo["device"].tolist()
    assert np.allclose(histo["max_magn"], want_histo["magn"])

    heat = _sorted(read_table(settings, SYSTEM, "magn_heatmap"), ["device", "time_bin"])
    binned = expected.assign(time_bin=expected["time"].dt.floor("2s"))
    want_heat = _sorted(
        binned.groupby(["device", "time_bin"], as_index=False)["magn"].max(), ["device", "time_bin"]
    )
    assert len(heat) == len(want_heat)
    assert (heat["time_bin"].dt.tz_convert("UTC") == want_heat["time_bin"]).all()
    assert np.allclose(heat["magn"], want_heat["magn"])

    live = _sorted(read_table(settings, SYSTEM, "magn_live"), ["window_start"])
    windows = expected.assign(window_start=expected["time"].dt.floor("1s"))
    want_live = windows.groupby("window_start", as_index=False)["magn"].mean()
    assert len(live) == len(want_live)
    assert np.allclose(live["avg_magn"], want_live["magn"])

    log = read_table(settings, SYSTEM, "event_log")
    flows = log[log["expectation"].isna()].groupby("table")["rows_in"].sum()
    assert flows["raw_stream"] == len(events) and flows["sensor"] == len(events)
    dropped = log[log["expectation"] == "device is set"]["failed"].sum()
    assert dropped == 0

    for spec in load_system(SYSTEM, settings):
        if spec.layer != "bronze":
            frame = spark.read.format("delta").load(location(settings, spec))
            assert all(outcome.success for outcome in validate(frame, spec)), spec.name
