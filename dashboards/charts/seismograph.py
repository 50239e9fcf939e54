"""The seismograph page: the DAIS 2023 motion demo's counters, histogram, heat map, 3D plot
and live average."""

from __future__ import annotations

import math

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
from plotly.colors import hex_to_rgb, sequential

from dashboards.charts.common import CHART_HEIGHT, layout, line

PLOT_3D_HEIGHT = 640
HEATMAP_MAX_HEIGHT = 2400


def _rgb_scale(colors: list[str]) -> list[list[float | str]]:
    """A continuous colour scale with `rgb(...)` stops.

    The plotly.js bundled with Streamlit misreads Magma's first stop `#000004` (the lowest
    values come out pink), so the stops go to the browser as `rgb()` strings instead.
    """
    last = len(colors) - 1
    return [
        [index / last, "rgb({}, {}, {})".format(*hex_to_rgb(color))]
        for index, color in enumerate(colors)
    ]


MAGMA = _rgb_scale(sequential.Magma)


def short_device(device: pd.Series) -> pd.Series:
    """The last three characters of each client id, as the motion notebooks label devices."""
    return device.astype(str).str[-3:]


def _whole(value: float) -> str:
    """A counter value as the DBSQL counters show it: rounded, with thousands separators."""
    return "–" if math.isnan(value) else f"{round(value):,}"


def global_counters(stat: pd.DataFrame) -> dict[str, str]:
    """Counter label -> shown value, as the "Global Statistics" dashboard shows them."""
    row = stat.iloc[0]
    return {
        "Events": f"{int(row['events']):,}",
        "Max magnitude": _whole(float(row["max"])),
        "Avg magnitude": _whole(float(row["avg"])),
        "Stddev": _whole(float(row["stddev"])),
    }


def max_magn_histogram(by_device: pd.DataFrame) -> go.Figure:
    """M-Histo: one bar per client, x = the full device id, y = its max magnitude."""
    figure = go.Figure(
        go.Bar(x=by_device["device"].astype(str), y=by_device["max_magn"].astype(float))
    )
    figure.update_xaxes(title="device")
    figure.update_yaxes(title="max_magn")
    return layout(figure, "Max magnitude per client")


def heatmap_matrix(heatmap: pd.DataFrame, bins: int = 30, bin_seconds: int = 2) -> pd.DataFrame:
    """M-Heatmap's pivot: rows = short device id, columns = the newest `bins` time bins.

    The columns are every bin from newest - (bins-1) x bin_seconds to the newest one present,
    with gaps filled by 0 (the original resamples per device and fills NaN with 0), so the x
    axis and z always describe the same bins.
    """
    if heatmap.empty:
        return pd.DataFrame()
    frame = heatmap.assign(device=short_device(heatmap["device"]))
    frame["time_bin"] = pd.to_datetime(frame["time_bin"], utc=True)
    newest = frame["time_bin"].max()
    columns = pd.date_range(end=newest, periods=bins, freq=f"{bin_seconds}s")
    pivot = frame.pivot_table(index="device", columns="time_bin", values="magn", aggfunc="max")
    return pivot.reindex(columns=columns).fillna(0.0).sort_index()


def magn_heatmap(heatmap: pd.DataFrame, bins: int = 30, bin_seconds: int = 2) -> go.Figure:
    """M-Heatmap: devices x time bins, max magnitude per cell, Magma colour scale."""
    matrix = heatmap_matrix(heatmap, bins, bin_seconds)
    figure = go.Figure(
        go.Heatmap(
            z=matrix.to_numpy(),
            x=list(matrix.columns),
            y=list(matrix.index),
            colorscale=MAGMA,
            colorbar={"title": {"text": "magn"}},
        )
    )
    figure.update_xaxes(title=f"time ({bin_seconds} s bins, UTC)")
    figure.update_yaxes(title="device", type="category")
    layout(figure, f"Heat map: max magnitude, last {bins} bins")
    # A row stays readable with the DAIS crowd (130+ phones): grow with the device count.
    figure.update_layout(height=min(HEATMAP_MAX_HEIGHT, max(CHART_HEIGHT, 14 * len(matrix) + 160)))
    return figure


def rebin_max(heatmap: pd.DataFrame, seconds: int = 10) -> pd.DataFrame:
    """M-Plot's prep: per short device id, the max magnitude per `seconds` bin, gaps as 0.

    Resampling per device covers each device's own first to last bin, as the original's
    `groupby(device).resample(...).max().fillna(0)` does.
    """
    columns = ["device", "time_bin", "magn"]
    if heatmap.empty:
        return pd.DataFrame(columns=columns)
    frame = heatmap.assign(
        device=short_device(heatmap["device"]),
        time_bin=pd.to_datetime(heatmap["time_bin"], utc=True),
        magn=heatmap["magn"].astype(float),
    )
    resampled = (
        frame.set_index("time_bin")
        .groupby("device")["magn"]
        .resample(f"{seconds}s")
        .max()
        .fillna(0.0)
        .reset_index()
    )
    return resampled[columns]


def magn_3d(heatmap: pd.DataFrame, seconds: int = 10) -> go.Figure:
    """M-Plot: x = short device id, y = time re-binned to `seconds`, z = max magnitude."""
    points = rebin_max(heatmap, seconds)
    figure = px.scatter_3d(
        points,
        x="device",
        y="time_bin",
        z="magn",
        color="magn",
        color_continuous_scale=[color for _, color in MAGMA],
    )
    figure.update_traces(marker={"size": 4})
    figure.update_scenes(
        xaxis={"type": "category", "title": {"text": "device"}},
        yaxis={
            "tickformat": "%H:%M:%S",
            "nticks": 5,
            "title": {"text": f"time ({seconds} s bins, UTC)"},
        },
        camera={"eye": {"x": 1.25, "y": -1.4, "z": 0.6}},
    )
    layout(figure, f"3D: max magnitude per device per {seconds} s")
    figure.update_layout(height=PLOT_3D_HEIGHT)
    return figure


def live_avg_magn(live: pd.DataFrame, windows: int = 30) -> go.Figure:
    """M-Magn SSS: the average magnitude of each 1-second window, the newest `windows`."""
    newest = live.sort_values("window_start").tail(windows)
    figure = line(newest, "window_start", "avg_magn")
    figure.update_xaxes(title="window start (UTC)")
    figure.update_yaxes(title="avg_magn", rangemode="tozero")
    return layout(figure, f"Live averaged magnitude, last {windows} windows of 1 s")
