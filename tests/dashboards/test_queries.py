"""The dashboard's SQL over real Delta tables: windows, newest rows, missing tables."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake

from dashboards import queries
from iotlake.config import Settings, load_settings
from spark_jobs.io.storage import table_uri
from tests.support.seed import POC_END, SCHEMAS, SeededSystem, seed_lake


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, dict[str, SeededSystem]]:
    root = tmp_path_factory.mktemp("queries") / "lake"
    settings = load_settings(profile="embedded", target="dev", lake={"root": str(root)})
    return settings, seed_lake(settings)


def test_trend_covers_the_60_minutes_up_to_the_newest_minute_not_the_wall_clock(lake):
    settings, _ = lake

    trend = queries.temperature_trend(settings)

    assert len(trend) == 60
    assert trend["time_window"].max() == POC_END
    assert trend["time_window"].min() == POC_END - pd.Timedelta(minutes=59)


def test_an_explicit_end_moves_both_windows_back(lake):
    settings, seeded = lake
    end = POC_END - pd.Timedelta(hours=2)
    critical = seeded["aws-iot"].tables["critical_by_device"]
    inside = critical[
        (critical["time_window"] > end - pd.Timedelta(hours=24)) & (critical["time_window"] <= end)
    ]

    trend = queries.temperature_trend(settings, end=end.to_pydatetime())
    by_device = queries.critical_by_device(settings, end=end.to_pydatetime())

    assert trend["time_window"].max() == end
    assert len(trend) == 60
    expected = inside.groupby("device_id")["critical_count"].sum().to_dict()
    assert dict(zip(by_device["device_id"], by_device["critical_count"], strict=True)) == expected
    assert by_device["critical_count"].is_monotonic_decreasing


def test_heatmap_query_keeps_exactly_the_newest_bins(lake):
    settings, seeded = lake
    heatmap = seeded["seismograph"].tables["magn_heatmap"]
    newest_bins = sorted(heatmap["time_bin"].unique())[-10:]

    cells = queries.magn_heatmap(settings, seconds=10 * settings.seismograph.heatmap_bin_seconds)

    assert sorted(cells["time_bin"].unique()) == newest_bins
    assert len(cells) == heatmap["time_bin"].isin(newest_bins).sum()


def test_newest_time_from_log_statistics_equals_the_datas_maximum(lake):
    settings, seeded = lake
    table = queries.open_table(settings, "aws-iot", "temperature_trend")

    assert queries.newest(table, "time_window") == POC_END
    assert seeded["aws-iot"].tables["temperature_trend"]["time_window"].max() == POC_END


def test_window_falls_back_to_a_subquery_when_files_carry_no_statistics(tmp_path: Path):
    settings = load_settings(profile="embedded", target="dev", lake={"root": str(tmp_path)})
    minutes = pd.date_range(end=POC_END, periods=90, freq="min")
    frame = pd.DataFrame({"time_window": minutes, "average_fleet_temp": range(90)})
    uri = table_uri(settings, "aws-iot", "temperature_trend")
    data = pa.Table.from_pandas(frame, schema=SCHEMAS["temperature_trend"], preserve_index=False)
    write_deltalake(uri, data, configuration={"delta.dataSkippingNumIndexedCols": "0"})

    assert queries.newest(DeltaTable(uri), "time_window") is None
    trend = queries.temperature_trend(settings)
    assert list(trend["time_window"]) == list(minutes[-60:])


def test_a_missing_table_reads_as_an_empty_frame_with_the_querys_columns(tmp_path: Path):
    settings = load_settings(profile="embedded", target="dev", lake={"root": str(tmp_path)})

    stat = queries.global_stat(settings)

    assert stat.empty
    assert list(stat.columns) == ["events", "max", "min", "avg", "stddev"]
