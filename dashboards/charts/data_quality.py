"""The data quality page: expectation results and the rows they dropped."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from dashboards.charts.common import layout


def expectation_bars(results: pd.DataFrame) -> go.Figure:
    """Passed and failed rows per expectation, stacked, one bar per table and expectation."""
    labels = (results["table"].astype(str) + ": " + results["expectation"].astype(str)).tolist()
    figure = go.Figure(
        [
            go.Bar(
                name="passed", x=labels, y=results["passed"].astype(int), marker_color="#2e8b57"
            ),
            go.Bar(
                name="failed", x=labels, y=results["failed"].astype(int), marker_color="#d62728"
            ),
        ]
    )
    figure.update_layout(barmode="stack")
    figure.update_yaxes(title="rows")
    return layout(figure, "Expectations: passed and failed rows")


def dropped_rows(dropped: pd.DataFrame) -> go.Figure:
    """Rows dropped by expectations in each batch, one line per table."""
    figure = go.Figure()
    for table, rows in dropped.groupby("table", sort=True):
        ordered = rows.sort_values("batch_id")
        figure.add_trace(
            go.Scatter(
                x=ordered["batch_id"].astype(int),
                y=ordered["dropped"].astype(int),
                mode="lines+markers",
                name=str(table),
            )
        )
    figure.update_xaxes(title="batch_id")
    figure.update_yaxes(title="dropped rows", rangemode="tozero")
    return layout(figure, "Dropped rows per batch")
