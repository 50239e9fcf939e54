"""AWS IoT: the fleet temperature trend and the anomaly bar chart of the AWS PoC."""

from __future__ import annotations

import streamlit as st

from dashboards import queries
from dashboards.charts import aws_iot as charts
from dashboards.views import common

SYSTEM = queries.AWS_IOT
TREND_MINUTES = 60  # query_for_temperature_trend: the last 60 minutes
CRITICAL_HOURS = 24  # query_for_anomaly_bar_chart: the last 24 hours


def trend() -> None:
    """The newest minute's fleet average as a counter, then the hour's trend line."""
    rows = common.read(SYSTEM, "temperature_trend", queries.temperature_trend, TREND_MINUTES)
    if rows is None:
        return
    newest = rows.iloc[-1]  # rows come oldest first
    st.metric(
        "Fleet temperature, newest minute",
        f"{float(newest['average_fleet_temp']):.2f} °C",
        help=f"Minute starting {newest['time_window']:%Y-%m-%d %H:%M} UTC",
    )
    common.chart(charts.temperature_trend(rows), key="aws-iot-trend")


def anomalies() -> None:
    """The number of critical readings in 24 hours, then the per-device bar chart."""
    rows = common.read(SYSTEM, "critical_by_device", queries.critical_by_device, CRITICAL_HOURS)
    if rows is None:
        return
    threshold = common.settings().aws_iot.critical_temperature_c
    st.metric(
        "Critical readings, 24 h",
        f"{int(rows['critical_count'].sum()):,}",
        help=f"Readings above {threshold:g} °C, {len(rows)} devices",
    )
    common.chart(charts.critical_bar(rows, threshold), key="aws-iot-critical")


def page() -> None:
    """The page: trend on the left, anomalies on the right."""
    st.title("AWS IoT")
    st.caption(
        "Producer → Kinesis `iot-sensor-data-stream` → `iot_sensor_raw` → "
        "`iot_sensor_processed` → gold. The last 60 minutes and 24 hours end at the newest "
        "minute in each table (not the wall clock), so a stopped demo keeps its charts."
    )

    def body() -> None:
        left, right = st.columns(2)
        with left:
            trend()
        with right:
            anomalies()

    common.live(body)


page()
