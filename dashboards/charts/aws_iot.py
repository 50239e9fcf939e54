"""The AWS IoT page: the PoC's two SQL visualisations, fleet temperature and critical readings."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from dashboards.charts.common import layout, line


def temperature_trend(trend: pd.DataFrame) -> go.Figure:
    """query_for_temperature_trend: the fleet's average temperature per minute."""
    ordered = trend.sort_values("time_window")
    figure = line(ordered, "time_window", "average_fleet_temp")
    figure.update_xaxes(title="time_window (minute, UTC)")
    figure.update_yaxes(title="average_fleet_temp (°C)")
    return layout(figure, "Fleet temperature trend")


def critical_bar(critical: pd.DataFrame, threshold_c: float = 28.0) -> go.Figure:
    """query_for_anomaly_bar_chart: critical readings per device, most first."""
    ordered = critical.sort_values(["critical_count", "device_id"], ascending=[False, True])
    figure = go.Figure(
        go.Bar(x=ordered["device_id"].astype(str), y=ordered["critical_count"].astype(int))
    )
    figure.update_xaxes(title="device_id", type="category")
    figure.update_yaxes(title="critical_count")
    return layout(figure, f"Critical readings per device (temperature > {threshold_c:g} °C)")
