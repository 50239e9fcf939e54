"""Pipelines: each system's graph with live rates and a status per table, as the Lakeflow
pipeline view shows them.

The graph is the pipeline as declared (`pipeline_queries.pipeline_graph`, no Spark); the
numbers come from the system's `event_log` over the last minute (`pipeline_queries.table_activity`,
`pipeline_queries.expectation_pass_rates`) and from the tables' Delta logs (event -> table latency).
The page follows the tables at the sidebar's refresh interval, like every other page.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import streamlit as st
from deltalake.exceptions import DeltaError

from dashboards import pipeline_queries, queries
from dashboards.charts import pipelines as charts
from dashboards.views import common

TABLE = "event_log"
WINDOW = pipeline_queries.PIPELINE_WINDOW_SECONDS
KINDS = {"streaming": "streaming table", "materialized": "materialized view"}
RULE = (
    f"**not started**: no batch in the event log · **idle**: no batch in the last {WINDOW} s "
    "(nothing arrives, or the pipeline stopped) · **falling behind**: the newest batch, or "
    "the median batch of the last minute, took longer than the trigger interval "
    "(`pipelines.trigger_seconds`; `pipelines.refresh_seconds` for a materialized view) · "
    "**keeps up**: recent batches, each within that interval."
)


@st.cache_resource(show_spinner=False)
def declared(system: str) -> list[pipeline_queries.Dataset]:
    """The system's graph, loaded once per dashboard process (its files do not change)."""
    return pipeline_queries.pipeline_graph(common.settings(), system)


def not_started(system: str) -> None:
    """Say that no batch of the system is logged, and how to start it."""
    from services.embedded.stack import is_running

    if is_running(common.settings(), "pipelines"):
        st.info(f"The pipelines are starting: no batch of {system} is logged yet")
    else:
        st.info(
            f"The {system} pipeline has not started: its `{TABLE}` has no batch yet — "
            f"start it with `iotlake run {system}`"
        )


def counters(activity: pd.DataFrame) -> None:
    """How many tables are in each status."""
    for column, status in zip(
        st.columns(len(pipeline_queries.STATUSES)), pipeline_queries.STATUSES, strict=True
    ):
        column.metric(status.capitalize(), f"{int((activity['status'] == status).sum()):,}")


def latencies(system: str, activity: pd.DataFrame, since: datetime) -> pd.DataFrame:
    """The activity with each started table's event -> table latency and its column."""
    settings = common.settings()
    columns, seconds = [], []
    for table, status in zip(activity["table"], activity["status"], strict=True):
        found = None
        if status != pipeline_queries.NOT_STARTED:
            try:
                found = pipeline_queries.event_time_latency(settings, system, table, since)
            except (DeltaError, OSError):
                found = None  # the table's own page reports a table it cannot read
        column, lag = found if found is not None else ("", float("nan"))
        columns.append(column)
        seconds.append(lag)
    return activity.assign(latency_s=seconds, latency_column=columns)


def tables(activity: pd.DataFrame) -> None:
    """Per table: status, rows in and out per second, drops, the newest batch, latency."""
    st.subheader("Tables")
    shown = pd.DataFrame(
        {
            "table": activity["table"],
            "layer": activity["layer"],
            "type": activity["kind"].map(KINDS).fillna(activity["kind"]),
            "status": activity["status"],
            "rows in/s": activity["rows_in_per_s"],
            "rows out/s": activity["rows_out_per_s"],
            "rows dropped": activity["dropped"],
            "last batch (s)": activity["last_batch_s"],
            "since last batch (s)": activity["since_last_batch_s"],
            "event→table (s)": activity["latency_s"],
            "event time": activity["latency_column"],
        }
    )
    decimals = {
        "rows in/s": "%.1f",
        "rows out/s": "%.1f",
        "last batch (s)": "%.2f",
        "since last batch (s)": "%.0f",
        "event→table (s)": "%.1f",
    }
    config = {name: st.column_config.NumberColumn(format=fmt) for name, fmt in decimals.items()}
    st.dataframe(shown, hide_index=True, column_config=config, key="pipelines-tables")


def expectations(rates: pd.DataFrame) -> None:
    """Per expectation: rows passed and failed over the window and the pass rate."""
    st.subheader("Expectations")
    if rates.empty:
        st.caption("No table of this pipeline declares an expectation.")
        return
    shown = rates.rename(columns={"pass_rate": "pass rate (%)"})[
        ["table", "expectation", "action", "pass rate (%)", "passed", "failed"]
    ]
    config = {"pass rate (%)": st.column_config.NumberColumn(format="%.2f")}
    st.dataframe(shown, hide_index=True, column_config=config, key="pipelines-expectations")


def report(system: str) -> None:
    """The graph, the counters and both tables for `system`, as the event log has them now."""
    settings = common.settings()
    try:
        graph = declared(system)
    except Exception as error:  # noqa: BLE001 - a pipeline file that does not load: say so
        st.error(f"Cannot load the {system} pipeline: {error}")
        return
    now = datetime.now(UTC)
    since = now - timedelta(seconds=WINDOW)
    try:
        recent = pipeline_queries.event_log_since(settings, system, since)
        logged = set(recent.loc[recent["expectation"].isna(), "table"])
        older = [flow for dataset in graph for flow in dataset.flows if flow not in logged]
        newest = pipeline_queries.newest_batches(settings, system, older)
    except (DeltaError, OSError) as error:
        st.error(f"Cannot read `{system}/{TABLE}`: {error}")
        return
    pipelines = settings.pipelines
    activity = pipeline_queries.table_activity(
        graph, recent, newest, now, pipelines.trigger_seconds, pipelines.refresh_seconds, WINDOW
    )
    if (activity["status"] == pipeline_queries.NOT_STARTED).all():
        not_started(system)
    counters(activity)
    st.graphviz_chart(charts.pipeline_dot(graph, activity), width="stretch")
    tables(latencies(system, activity, since))
    expectations(pipeline_queries.expectation_pass_rates(graph, recent))


def page() -> None:
    """The page: a system picker, then that system's live pipeline."""
    st.title("Pipelines")
    system = st.selectbox("System", queries.SYSTEMS, key="pipelines_system")
    st.caption(
        f"The `{system}` pipeline as declared, sources → bronze → silver → gold; rates over "
        f"the last {WINDOW} s from `{system}/{TABLE}`. Status: {RULE}"
    )

    def body() -> None:
        report(system)

    common.live(body)


page()
