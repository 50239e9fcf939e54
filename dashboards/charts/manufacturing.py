"""The manufacturing page: the original dashboard's inspections, defect rates and features."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from dashboards.charts.common import layout

# The original dashboard's colours: defects red, non-defects green, unknown blue.
DEFECT_COLOR, NON_DEFECT_COLOR, UNKNOWN_COLOR = "#FF3621", "#00A972", "#077A9D"


def week_start(timestamps: pd.Series) -> pd.Series:
    """DATE_TRUNC('WEEK', ts) as Databricks SQL computes it: the Monday 00:00 of the week."""
    days = pd.to_datetime(timestamps).dt.floor("D")
    return days - pd.to_timedelta(days.dt.weekday, unit="D")


def inspections_by_week(daily: pd.DataFrame) -> go.Figure:
    """The original's stacked bar: defect-flagged and non-defect inspections per week."""
    weekly = (
        daily.assign(week=week_start(daily["timestamp_hour"]))
        .groupby("week", as_index=False)[["defect_count", "not_defect_count"]]
        .sum()
        .sort_values("week")
    )
    figure = go.Figure(
        [
            go.Bar(
                x=weekly["week"],
                y=weekly["defect_count"].astype(int),
                name="Defect Flagged",
                marker_color=DEFECT_COLOR,
            ),
            go.Bar(
                x=weekly["week"],
                y=weekly["not_defect_count"].astype(int),
                name="Non Defect",
                marker_color=NON_DEFECT_COLOR,
            ),
        ]
    )
    figure.update_layout(barmode="stack")
    figure.update_xaxes(title="week")
    figure.update_yaxes(title="Inspections")
    return layout(figure, "Inspections by week")


def factory_defect_rate(rates: pd.DataFrame) -> go.Figure:
    """% Defect Rate by factory: the mean of the devices' defect rates, sorted by it."""
    by_factory = (
        rates.groupby("factory_id", as_index=False)["defect_rate"].mean().sort_values("defect_rate")
    )
    figure = go.Figure(
        go.Bar(
            x=by_factory["defect_rate"].astype(float),
            y=by_factory["factory_id"].astype(str),
            orientation="h",
            marker_color=DEFECT_COLOR,
        )
    )
    figure.update_xaxes(title="avg(defect_rate) %")
    figure.update_yaxes(title="factory_id")
    return layout(figure, "% Defect Rate by factory")


def _defect_name(defect: object) -> str:
    return "unknown" if pd.isna(defect) else f"{float(defect):g}"


def feature_scatter(features: pd.DataFrame, column: str, title: str) -> go.Figure:
    """Mean `column` per day, one colour per inspection outcome (1 red, 0 green, null blue)."""
    colors = {"1": DEFECT_COLOR, "0": NON_DEFECT_COLOR, "unknown": UNKNOWN_COLOR}
    outcomes = features["defect"].map(_defect_name)
    traces = []
    for name in ("0", "1", "unknown"):
        rows = features[outcomes == name]
        if rows.empty:
            continue
        traces.append(
            go.Scatter(
                x=rows["day"],
                y=rows[column].astype(float),
                mode="markers",
                name=f"defect {name}",
                marker={"color": colors[name], "size": 7},
            )
        )
    figure = go.Figure(traces)
    figure.update_xaxes(title="day")
    figure.update_yaxes(title=f"avg(sensor_{column})")
    return layout(figure, title)
