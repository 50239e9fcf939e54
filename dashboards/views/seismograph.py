"""Seismograph: the DAIS 2023 motion demo's counters and charts over its gold tables."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboards import queries
from dashboards.charts import seismograph as charts
from dashboards.views import common

SYSTEM = queries.SEISMOGRAPH


def counters() -> None:
    """The "Global Statistics" counters: events, max, avg and stddev of the magnitude."""
    stat = common.read(SYSTEM, "global_stat", queries.global_stat)
    if stat is None:
        return
    for column, (label, value) in zip(
        st.columns(4), charts.global_counters(stat).items(), strict=True
    ):
        column.metric(label, value)


def histogram() -> None:
    """M-Histo: max magnitude per client."""
    by_device = common.read(SYSTEM, "max_magn_by_device", queries.max_magn_by_device)
    if by_device is not None:
        common.chart(charts.max_magn_histogram(by_device), key="seismograph-histogram")


def live_average(windows: int) -> None:
    """M-Magn SSS: the averaged magnitude of the newest 1-second windows."""
    live = common.read(SYSTEM, "magn_live", queries.magn_live, windows)
    if live is not None:
        common.chart(charts.live_avg_magn(live, windows), key="seismograph-live")


def heatmap_and_3d(heat_bins: int, bins_3d: int) -> None:
    """M-Heatmap (newest heat-map bins) and M-Plot (newest 3D bins), from one table read.

    Bin sizes come from the settings the pipeline uses: 2 s and 10 s by default, as in the
    databricks/delta-live-tables-notebooks copy of the original.
    """
    settings = common.settings()
    heat_seconds = settings.seismograph.heatmap_bin_seconds
    seconds_3d = settings.seismograph.plot3d_bin_seconds
    span_3d = bins_3d * seconds_3d
    span = max(heat_bins * heat_seconds, span_3d)
    cells = common.read(SYSTEM, "magn_heatmap", queries.magn_heatmap, span)
    if cells is None:
        return
    common.chart(charts.magn_heatmap(cells, heat_bins, heat_seconds), key="seismograph-heatmap")
    # The `bins_3d` 3D bins ending with the one that holds the newest heat-map bin.
    newest = cells["time_bin"].max().floor(f"{seconds_3d}s")
    recent = cells[cells["time_bin"] >= newest - pd.Timedelta(seconds=span_3d - seconds_3d)]
    common.chart(charts.magn_3d(recent, seconds_3d), key="seismograph-3d")


def controls() -> tuple[int, int, int]:
    """How much history each chart shows; outside the live fragment so choices persist."""
    shown = common.settings().seismograph.live_windows_shown
    with st.sidebar.expander("Seismograph charts"):
        heat_bins = st.number_input("Heat map: bins shown", 5, 600, 30, key="heat_bins")
        bins_3d = st.number_input("3D plot: bins shown", 1, 360, 30, key="bins_3d")
        windows = st.number_input("Live average: windows shown", 5, 600, shown, key="windows")
    return int(heat_bins), int(bins_3d), int(windows)


def page() -> None:
    """The page: counters, then histogram and live average, then heat map and 3D plot."""
    st.title("Seismograph")
    st.caption(
        "Phone accelerometers → Kinesis or Kafka → bronze `raw_stream` → silver `sensor` → "
        "gold tables. Times are UTC; windows end at the newest data."
    )
    heat_bins, bins_3d, windows = controls()

    def body() -> None:
        counters()
        left, right = st.columns(2)
        with left:
            histogram()
        with right:
            live_average(windows)
        heatmap_and_3d(heat_bins, bins_3d)

    common.live(body)


page()
