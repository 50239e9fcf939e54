"""The Arduino page draws the original's temp_trend and hum_trend, distance and PIR counts."""

from __future__ import annotations

import numpy as np
import pandas as pd
from streamlit.testing.v1 import AppTest

from dashboards.queries import ARDUINO
from iotlake.config import Settings
from tests.support.dashboard import figures, open_page, trace_values
from tests.support.seed import write_table

PAGE = "views/arduino.py"
START = pd.Timestamp("2023-09-18 09:10:00", tz="UTC")  # the replay's first day


def _seed(settings: Settings) -> dict[str, pd.DataFrame]:
    """90 minutes of trends, 15 minutes of distances at 5 Hz, 7 detections."""
    rng = np.random.default_rng(3)
    minutes = pd.date_range(START, periods=90, freq="min")
    tables = {
        "temp_hum": pd.DataFrame(
            {
                "minute": minutes,
                "temperature": rng.uniform(18, 30, len(minutes)),
                "humidity": rng.uniform(23, 65, len(minutes)),
                "temperature_readings": 300,
                "humidity_readings": 300,
            }
        ),
        "distance": pd.DataFrame(
            {
                "timestamp": pd.date_range(START, periods=15 * 60 * 5, freq="200ms"),
                "distance": rng.integers(2, 400, 15 * 60 * 5).astype(float),
            }
        ),
        "pir_stream_test": pd.DataFrame(
            {
                "timestamp": [f"18/09/2023 09:{m:02d}:00" for m in range(10, 17)],
                "movement": "new detection",
            }
        ),
    }
    for table, frame in tables.items():
        write_table(settings, ARDUINO, table, frame)
    return tables


def _open() -> AppTest:
    return open_page(PAGE, timeout=60)


def _figures(app: AppTest) -> dict[str, np.ndarray]:
    """The y values of each drawn plotly figure, by its title."""
    return {
        title: trace_values(figure["data"][0], "y").astype(float)
        for title, figure in figures(app).items()
    }


def test_arduino_page_draws_the_last_hour_of_temp_and_hum_trends_distance_and_detections(lake):
    tables = _seed(lake)
    trends = tables["temp_hum"]
    newest = trends.iloc[-1]

    app = _open()

    metrics = {metric.label: metric.value for metric in app.metric}
    assert metrics == {
        "Temperature, newest minute": f"{newest['temperature']:.1f} °C",
        "Humidity, newest minute": f"{newest['humidity']:.1f} %",
        "Distance, newest reading": f"{tables['distance']['distance'].iloc[-1]:.0f} cm",
        "PIR detections": "7",
    }
    figures = _figures(app)
    assert set(figures) == {
        "temp_trend – temperature_query",
        "hum_trend – humidity_query",
        "SR04 distance",
    }
    last_hour = trends.iloc[-60:]
    assert np.allclose(figures["temp_trend – temperature_query"], last_hour["temperature"])
    assert np.allclose(figures["hum_trend – humidity_query"], last_hour["humidity"])
    # Ten minutes at 5 Hz, ending at the newest reading.
    assert np.array_equal(figures["SR04 distance"], tables["distance"]["distance"].iloc[-3000:])
    assert not app.info


def test_arduino_page_on_an_empty_lake_says_which_tables_have_no_data_yet(lake):
    app = _open()

    messages = [info.value for info in app.info]
    assert len(messages) == 3
    for table, message in zip(["temp_hum", "distance", "pir_stream_test"], messages, strict=True):
        assert f"No data yet in `{table}`" in message and "iotlake run arduino" in message
    assert not app.get("plotly_chart")
    assert not app.metric
