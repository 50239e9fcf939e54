"""Each figure builder turns a small known frame into the traces the originals draw."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from plotly.colors import hex_to_rgb, sequential

from dashboards.charts import aws_iot, data_quality
from dashboards.charts import seismograph as seismograph_charts
from tests.support.seed import (
    aws_iot_gold,
    processed_readings,
    seismograph_gold,
    sensor_events,
)

T0 = pd.Timestamp("2023-05-24T18:56:00Z")


def _at(seconds: float) -> pd.Timestamp:
    return T0 + pd.Timedelta(seconds=seconds)


def _times(values) -> list[pd.Timestamp]:
    """Plotly may keep datetimes as Timestamps, numpy datetimes or strings: compare as UTC."""
    return list(pd.to_datetime(list(values), utc=True))


@pytest.fixture(scope="module")
def seismograph() -> dict[str, pd.DataFrame]:
    return seismograph_gold(sensor_events())


def test_global_counters_show_whole_numbers_like_the_dbsql_dashboard():
    stat = pd.DataFrame(
        {"events": [111208], "max": [231.0], "min": [0.0], "avg": [4.31], "stddev": [12.4]}
    )

    assert seismograph_charts.global_counters(stat) == {
        "Events": "111,208",
        "Max magnitude": "231",
        "Avg magnitude": "4",
        "Stddev": "12",
    }


def test_histogram_has_one_bar_per_full_device_id_at_its_max(seismograph):
    sensor = sensor_events()
    expected = sensor.groupby("device")["magn"].max()

    figure = seismograph_charts.max_magn_histogram(seismograph["max_magn_by_device"])

    (bars,) = figure.data
    assert bars.type == "bar"
    assert dict(zip(bars.x, bars.y, strict=True)) == expected.to_dict()
    assert all(device.startswith("client-") and len(device) == 19 for device in bars.x)


def test_heatmap_z_is_the_pivot_of_short_ids_by_bin_with_gaps_as_zero():
    cells = pd.DataFrame(
        {
            "device": ["client-aaaaaaaaa001", "client-aaaaaaaaa001", "client-bbbbbbbbb002"],
            "time_bin": [_at(0), _at(6), _at(2)],
            "magn": [5.0, 7.0, 3.0],
        }
    )
    # Rows 001 and 002; columns the four 2 s bins 0, 2, 4, 6 (4 has no data anywhere).
    expected = np.array([[5.0, 0.0, 0.0, 7.0], [0.0, 3.0, 0.0, 0.0]])

    figure = seismograph_charts.magn_heatmap(cells, bins=4, bin_seconds=2)

    (heatmap,) = figure.data
    assert heatmap.type == "heatmap"
    np.testing.assert_array_equal(np.asarray(heatmap.z), expected)
    assert list(heatmap.y) == ["001", "002"]
    assert _times(heatmap.x) == [_at(0), _at(2), _at(4), _at(6)]
    magma = [f"rgb({r}, {g}, {b})" for r, g, b in map(hex_to_rgb, sequential.Magma)]
    assert [color for _, color in heatmap.colorscale] == magma


def test_heatmap_x_and_z_cover_the_same_newest_bins(seismograph):
    cells = seismograph["magn_heatmap"]
    frame = cells.assign(device=cells["device"].str[-3:])
    newest = frame["time_bin"].max()
    kept = frame[frame["time_bin"] > newest - pd.Timedelta(seconds=20)]
    independent = kept.pivot(index="device", columns="time_bin", values="magn").sort_index()

    (heatmap,) = seismograph_charts.magn_heatmap(cells, bins=10, bin_seconds=2).data

    z = np.asarray(heatmap.z)
    assert z.shape == (6, 10)
    assert len(heatmap.x) == z.shape[1]
    assert _times(heatmap.x) == list(independent.columns)
    np.testing.assert_array_equal(z, independent.to_numpy())


def test_rebin_max_keeps_each_devices_10s_maximum_and_fills_empty_bins_with_zero():
    cells = pd.DataFrame(
        {
            "device": ["client-x01", "client-x01", "client-x01", "client-y02"],
            "time_bin": [_at(0), _at(8), _at(24), _at(12)],
            "magn": [1.0, 9.0, 4.0, 6.0],
        }
    )

    points = seismograph_charts.rebin_max(cells, seconds=10)

    assert points.to_dict("records") == [
        {"device": "x01", "time_bin": _at(0), "magn": 9.0},
        {"device": "x01", "time_bin": _at(10), "magn": 0.0},
        {"device": "x01", "time_bin": _at(20), "magn": 4.0},
        {"device": "y02", "time_bin": _at(10), "magn": 6.0},
    ]


def test_3d_plot_places_rebinned_maxima_at_device_time_and_magnitude(seismograph):
    cells = seismograph["magn_heatmap"]
    sensor = sensor_events()
    expected = (
        sensor.assign(device=sensor["device"].str[-3:], time_bin=sensor["time"].dt.floor("10s"))
        .groupby(["device", "time_bin"])["magn"]
        .max()
    )

    (points,) = seismograph_charts.magn_3d(cells, seconds=10).data

    assert points.type == "scatter3d"
    shown = pd.Series(
        list(points.z),
        index=pd.MultiIndex.from_arrays([list(points.x), _times(points.y)]),
    )
    assert len(shown) == len(expected)
    assert shown.sort_index().to_dict() == expected.sort_index().to_dict()


def test_live_average_shows_the_newest_windows_oldest_first():
    starts = [_at(second) for second in range(40)]
    live = pd.DataFrame(
        {
            "window_start": starts,
            "window_end": [start + pd.Timedelta(seconds=1) for start in starts],
            "avg_magn": [float(second) for second in range(40)],
        }
    ).sample(frac=1.0, random_state=1)

    (line,) = seismograph_charts.live_avg_magn(live, windows=30).data

    assert _times(line.x) == starts[10:]
    assert list(line.y) == [float(second) for second in range(10, 40)]


def test_temperature_trend_draws_the_fleet_average_per_minute():
    trend = aws_iot_gold(processed_readings(hours=1))["temperature_trend"]

    (line,) = aws_iot.temperature_trend(trend.iloc[::-1]).data

    assert _times(line.x) == list(trend["time_window"])
    np.testing.assert_allclose(list(line.y), trend["average_fleet_temp"])


def test_anomaly_bars_are_sorted_by_critical_count_descending():
    critical = pd.DataFrame({"device_id": ["a", "b", "c", "d"], "critical_count": [3, 9, 1, 9]})

    figure = aws_iot.critical_bar(critical, threshold_c=28.5)

    (bars,) = figure.data
    assert list(bars.x) == ["b", "d", "a", "c"]
    assert list(bars.y) == [9, 9, 3, 1]
    assert "temperature > 28.5 °C" in figure.layout.title.text


def test_expectation_bars_stack_passed_and_failed_per_table_and_expectation():
    results = pd.DataFrame(
        {
            "table": ["sensor", "sensor"],
            "expectation": ["device is set", "magn is positive"],
            "action": ["drop", "warn"],
            "passed": [90, 95],
            "failed": [10, 5],
        }
    )

    figure = data_quality.expectation_bars(results)

    assert figure.layout.barmode == "stack"
    by_name = {trace.name: trace for trace in figure.data}
    assert list(by_name["passed"].x) == ["sensor: device is set", "sensor: magn is positive"]
    assert list(by_name["passed"].y) == [90, 95]
    assert list(by_name["failed"].y) == [10, 5]


def test_dropped_rows_draw_one_line_per_table_in_batch_order():
    dropped = pd.DataFrame(
        {"table": ["b", "a", "a", "b"], "batch_id": [1, 1, 0, 0], "dropped": [4, 2, 1, 3]}
    )

    figure = data_quality.dropped_rows(dropped)

    assert [trace.name for trace in figure.data] == ["a", "b"]
    assert [list(trace.x) for trace in figure.data] == [[0, 1], [0, 1]]
    assert [list(trace.y) for trace in figure.data] == [[1, 2], [3, 4]]
