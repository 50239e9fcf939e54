"""The frame every chart shares, and the single-line chart several pages draw."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

CHART_HEIGHT = 420


def layout(figure: go.Figure, title: str) -> go.Figure:
    """The common frame: a title, a fixed height and tight margins."""
    figure.update_layout(title=title, height=CHART_HEIGHT, margin={"l": 40, "r": 20, "t": 50})
    return figure


def line(frame: pd.DataFrame, x: str, y: str, mode: str = "lines+markers") -> go.Figure:
    """One line of column `y` over column `x` in the frame's order, named after `y`."""
    return go.Figure(go.Scatter(x=frame[x], y=frame[y].astype(float), mode=mode, name=y))
