"""Plotly figures for the dashboard: pure functions from query results to figures.

Each builder reproduces one chart of the originals (the motion demo's notebooks and DBSQL
dashboard, the AWS PoC's two SQL visualisations) from the frame a query in `queries` returns,
so a test can check a figure's data against values computed independently.
"""

from __future__ import annotations

import math

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
from plotly.colors import hex_to_rgb, sequential

CHART_HEIGHT = 420
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


def _layout(figure: go.Figure, title: str) -> go.Figure:
    """The common frame: a title, a fixed height and tight margins."""
    figure.update_layout(title=title, height=CHART_HEIGHT, margin={"l": 40, "r": 20, "t": 50})
    return figure


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


# --- seismograph ------------------------------------------------------------------------


def max_magn_histogram(by_device: pd.DataFrame) -> go.Figure:
    """M-Histo: one bar per client, x = the full device id, y = its max magnitude."""
    figure = go.Figure(
        go.Bar(x=by_device["device"].astype(str), y=by_device["max_magn"].astype(float))
    )
    figure.update_xaxes(title="device")
    figure.update_yaxes(title="max_magn")
    return _layout(figure, "Max magnitude per client")


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
    _layout(figure, f"Heat map: max magnitude, last {bins} bins")
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
    _layout(figure, f"3D: max magnitude per device per {seconds} s")
    figure.update_layout(height=PLOT_3D_HEIGHT)
    return figure


def live_avg_magn(live: pd.DataFrame, windows: int = 30) -> go.Figure:
    """M-Magn SSS: the average magnitude of each 1-second window, the newest `windows`."""
    newest = live.sort_values("window_start").tail(windows)
    figure = go.Figure(
        go.Scatter(
            x=newest["window_start"],
            y=newest["avg_magn"].astype(float),
            mode="lines+markers",
            name="avg_magn",
        )
    )
    figure.update_xaxes(title="window start (UTC)")
    figure.update_yaxes(title="avg_magn", rangemode="tozero")
    return _layout(figure, f"Live averaged magnitude, last {windows} windows of 1 s")


# --- aws-iot ----------------------------------------------------------------------------


def temperature_trend(trend: pd.DataFrame) -> go.Figure:
    """query_for_temperature_trend: the fleet's average temperature per minute."""
    ordered = trend.sort_values("time_window")
    figure = go.Figure(
        go.Scatter(
            x=ordered["time_window"],
            y=ordered["average_fleet_temp"].astype(float),
            mode="lines+markers",
            name="average_fleet_temp",
        )
    )
    figure.update_xaxes(title="time_window (minute, UTC)")
    figure.update_yaxes(title="average_fleet_temp (°C)")
    return _layout(figure, "Fleet temperature trend")


def critical_bar(critical: pd.DataFrame, threshold_c: float = 28.0) -> go.Figure:
    """query_for_anomaly_bar_chart: critical readings per device, most first."""
    ordered = critical.sort_values(["critical_count", "device_id"], ascending=[False, True])
    figure = go.Figure(
        go.Bar(x=ordered["device_id"].astype(str), y=ordered["critical_count"].astype(int))
    )
    figure.update_xaxes(title="device_id", type="category")
    figure.update_yaxes(title="critical_count")
    return _layout(figure, f"Critical readings per device (temperature > {threshold_c:g} °C)")


# --- data quality ---------------------------------------------------------------------------


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
    return _layout(figure, "Expectations: passed and failed rows")


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
    return _layout(figure, "Dropped rows per batch")


# --- arduino --------------------------------------------------------------------------------


def _minute_line(frame: pd.DataFrame, column: str, unit: str, title: str) -> go.Figure:
    """One per-minute line of the `temp_hum` table, as the original's line charts drew it."""
    ordered = frame.sort_values("minute")
    figure = go.Figure(
        go.Scatter(x=ordered["minute"], y=ordered[column].astype(float), mode="lines", name=column)
    )
    figure.update_xaxes(title="minute (UTC)")
    figure.update_yaxes(title=f"{column} ({unit})")
    return _layout(figure, title)


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
    return _layout(figure, "SR04 distance")


# --- text-sentiment ---------------------------------------------------------------------

# The original notebook's colours are matplotlib's defaults; these keep POS green, NEG red.
LABEL_COLORS = {"POS": "#00A972", "NEU": "#9AA0A6", "NEG": "#FF3621"}
# The original's extra stopwords beside WordCloud's own list.
EXTRA_STOPWORDS = ("https", "RT", "how")


def label_pie(counts: pd.DataFrame) -> go.Figure:
    """The original's pie chart: posts per sentiment label."""
    labels = counts["label"].astype(str)
    figure = go.Figure(
        go.Pie(
            labels=labels,
            values=counts["posts"].astype(int),
            marker={"colors": [LABEL_COLORS.get(label, "#636EFA") for label in labels]},
            sort=False,
        )
    )
    return _layout(figure, "Posts per sentiment label")


def languages_bar(languages: pd.DataFrame) -> go.Figure:
    """Posts per language as ingested, before silver keeps only English."""
    figure = go.Figure(go.Bar(x=languages["lang"].astype(str), y=languages["count"].astype(int)))
    figure.update_xaxes(title="lang")
    figure.update_yaxes(title="count")
    return _layout(figure, "Posts per language (bronze, before the EN filter)")


def wordcloud_stopwords() -> set[str]:
    """WordCloud's STOPWORDS plus the original's "https", "RT" and "how"."""
    from wordcloud import STOPWORDS

    return set(STOPWORDS) | set(EXTRA_STOPWORDS)


def word_cloud(texts: pd.Series, max_words: int = 100, seed: int = 1):
    """A word cloud of `texts` (a `wordcloud.WordCloud`, drawn with `.to_array()`).

    URL fragments ("t.co" codes) are dropped with the stopwords' "https"; the seed fixes the
    layout, so the same texts draw the same picture.
    """
    from wordcloud import WordCloud

    text = " ".join(texts.dropna().astype(str))
    text = " ".join(word for word in text.split() if not word.startswith("https://"))
    cloud = WordCloud(
        width=1000,
        height=420,
        background_color="white",
        max_words=max_words,
        stopwords=wordcloud_stopwords(),
        random_state=seed,
    )
    return cloud.generate(text)


# --- manufacturing ----------------------------------------------------------------------

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
    return _layout(figure, "Inspections by week")


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
    return _layout(figure, "% Defect Rate by factory")


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
    return _layout(figure, title)


# --- pipelines --------------------------------------------------------------------------

# Fill and border per status, as the page's legend names them.
STATUS_COLORS = {
    "keeps up": ("#d9f2e3", "#2e8b57"),
    "falling behind": ("#fde2d8", "#d62728"),
    "idle": ("#eeeeee", "#7f7f7f"),
    "not started": ("#ffffff", "#9aa0a6"),
}
SOURCE_COLORS = ("#e8f0fe", "#077a9d")


def _dot_text(text: str) -> str:
    """A DOT string literal."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _rate(rows_per_second: float) -> str:
    return f"{rows_per_second:,.1f} rows/s"


def pipeline_dot(graph: list, activity: pd.DataFrame) -> str:
    """The pipeline's graph in DOT, left to right, as the Lakeflow pipeline view draws it.

    `graph` is `pipeline_queries.pipeline_graph`'s list, `activity`
    `pipeline_queries.table_activity`'s frame.
    Each table is labelled with the rows it wrote per second over the window and coloured
    by its status; a source with the rows per second its readers took in (the busiest
    reader's count when several read it). Sources are cylinders, materialized views have
    a double border, temporary views are dashed ellipses; edges run upstream -> downstream.
    """
    by_table = activity.set_index("table") if not activity.empty else pd.DataFrame()
    readers: dict[str, float] = {}
    for dataset in graph:
        if dataset.name not in by_table.index:
            continue
        rate = float(by_table.loc[dataset.name, "rows_in_per_s"])
        for upstream in dataset.upstream:
            readers[upstream] = max(readers.get(upstream, 0.0), rate)
    lines = [
        "digraph pipeline {",
        "  rankdir=LR;",
        '  graph [bgcolor="transparent", nodesep=0.25, ranksep=0.6];',
        '  node [fontname="Helvetica", fontsize=11, penwidth=1.5];',
        '  edge [color="#5f6368", arrowsize=0.7];',
    ]
    for dataset in graph:
        if dataset.kind == "source":
            fill, border = SOURCE_COLORS
            label = [dataset.name, _rate(readers.get(dataset.name, 0.0))]
            attributes = {"shape": "cylinder", "style": "filled"}
        elif dataset.kind == "view":
            fill, border = "#ffffff", "#5f6368"
            label = [dataset.name, "view"]
            attributes = {"shape": "ellipse", "style": "dashed"}
        else:
            row = by_table.loc[dataset.name] if dataset.name in by_table.index else None
            status = str(row["status"]) if row is not None else "not started"
            fill, border = STATUS_COLORS.get(status, STATUS_COLORS["not started"])
            rate = float(row["rows_out_per_s"]) if row is not None else 0.0
            label = [dataset.name, _rate(rate), status]
            style = "rounded,filled" + (",dashed" if status == "not started" else "")
            attributes = {"shape": "box", "style": style}
            if dataset.kind == "materialized":
                attributes["peripheries"] = "2"
        attributes |= {"fillcolor": fill, "color": border, "tooltip": dataset.name}
        text = "\\n".join(part.replace("\\", "\\\\").replace('"', '\\"') for part in label)
        rendered = ", ".join(f"{key}={_dot_text(value)}" for key, value in attributes.items())
        lines.append(f'  {_dot_text(dataset.name)} [label="{text}", {rendered}];')
    for dataset in graph:
        for upstream in dataset.upstream:
            lines.append(f"  {_dot_text(upstream)} -> {_dot_text(dataset.name)};")
    lines.append("}")
    return "\n".join(lines)
