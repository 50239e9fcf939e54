"""Arduino: the original `temp_hum` dashboard (temp_trend, hum_trend), plus distance and PIR."""

from __future__ import annotations

import streamlit as st

from dashboards import queries
from dashboards.charts import arduino as charts
from dashboards.views import common

SYSTEM = queries.ARDUINO
TREND_MINUTES = 60
DISTANCE_MINUTES = 10


def trends() -> None:
    """The newest minute's readings as counters, then the two line charts side by side."""
    rows = common.read(SYSTEM, "temp_hum", queries.temp_hum, TREND_MINUTES)
    if rows is None:
        return
    newest = rows.iloc[-1]  # rows come oldest first
    left, right = st.columns(2)
    with left:
        st.metric("Temperature, newest minute", f"{float(newest['temperature']):.1f} °C")
        common.chart(charts.temp_trend(rows), key="arduino-temp-trend")
    with right:
        st.metric("Humidity, newest minute", f"{float(newest['humidity']):.1f} %")
        common.chart(charts.hum_trend(rows), key="arduino-hum-trend")


def distance() -> None:
    """The SR04's last ten minutes of readings."""
    rows = common.read(SYSTEM, "distance", queries.distance_readings, DISTANCE_MINUTES)
    if rows is None:
        return
    st.metric("Distance, newest reading", f"{float(rows['distance'].iloc[-1]):.0f} cm")
    common.chart(charts.distance_line(rows), key="arduino-distance")


def detections() -> None:
    """How many movements the PIR sensor has detected."""
    rows = common.read(SYSTEM, "pir_stream_test", queries.pir_detections)
    if rows is None:
        return
    st.metric("PIR detections", f"{int(rows['detections'].iloc[0]):,}")


def page() -> None:
    """The page: the two trends on top, distance and detections below."""
    st.title("Arduino sensors")
    st.caption(
        "DHT11, SR04 and PIR → MQTT → bridge → Kafka `dht_temp`, `dht_hum`, `sr04_distance`, "
        "`pir_test` → bronze → silver → `temp_hum`. Windows end at the newest row of each table."
    )

    def body() -> None:
        trends()
        left, right = st.columns([3, 1])
        with left:
            distance()
        with right:
            detections()

    common.live(body)


page()
