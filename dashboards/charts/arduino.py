"""The Arduino page: the original dashboard's temperature and humidity lines, and the SR04's
distance."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from dashboards.charts.common import layout, line


def _minute_line(frame: pd.DataFrame, column: str, unit: str, title: str) -> go.Figure:
    """One per-minute line of the `temp_hum` table, as the original's line charts drew it."""
    ordered = frame.sort_values("minute")
    figure = line(ordered, "minute", column, mode="lines")
    figure.update_xaxes(title="minute (UTC)")
    figure.update_yaxes(title=f"{column} ({unit})")
    return layout(figure, title)


def temp_trend(frame: pd.DataFrame) -> go.Figure:
    """The original's "temp_trend – temperature_query": average temperature per minute."""
    return _minute_line(frame, "temperature", "°C", "temp_trend – temperature_query")


def hum_trend(frame: pd.DataFrame) -> go.Figure:
    """The original's "hum_trend – humidity_query": average humidity per minute."""
    return _minute_line(frame, "humidity", "%", "hum_trend – humidity_query")


def distance_line(frame: pd.DataFrame) -> go.Figure:
    """The SR04's distance to the nearest object, reading by reading."""
    ordered = frame.sort_values("timestamp")
    figure = go.Figure(
        go.Scatter(x=ordered["timestamp"], y=ordered["distance"].astype(float), mode="lines")
    )
    figure.update_xaxes(title="timestamp (UTC)")
    figure.update_yaxes(title="distance (cm)")
    return layout(figure, "SR04 distance")
