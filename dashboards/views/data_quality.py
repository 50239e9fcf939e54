"""Data quality: each system's event log — expectations, dropped rows, latest batches."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboards import queries
from dashboards.charts import data_quality as charts
from dashboards.views import common

TABLE = "event_log"


def counters(batches: pd.DataFrame, results: pd.DataFrame) -> None:
    """Tables reporting, rows failing any expectation, rows dropped by `drop` expectations."""
    dropped = results.loc[results["action"] == "drop", "failed"].sum() if len(results) else 0
    failed = results["failed"].sum() if len(results) else 0
    left, middle, right = st.columns(3)
    left.metric("Tables reporting", f"{batches['table'].nunique():,}")
    middle.metric("Failed expectation rows", f"{int(failed):,}")
    right.metric("Rows dropped", f"{int(dropped):,}")


def expectations(results: pd.DataFrame) -> None:
    """Passed and failed rows per expectation per table."""
    if results.empty:
        st.caption("No expectation results recorded yet.")
        return
    common.chart(charts.expectation_bars(results), key="dq-expectations")


def drops(dropped: pd.DataFrame) -> None:
    """Rows dropped by `drop` expectations, batch after batch."""
    if dropped.empty:
        st.caption("No `drop` expectation has dropped or kept rows yet.")
        return
    common.chart(charts.dropped_rows(dropped), key="dq-dropped")


def latest(batches: pd.DataFrame) -> None:
    """The newest batch of each table: rows in, rows out, duration."""
    st.subheader("Latest batch per table")
    st.dataframe(batches, hide_index=True)


def report(system: str) -> None:
    """Everything the event log of `system` says, or its empty state."""
    settings = common.settings()
    batches = common.read(system, TABLE, queries.latest_batches, system)
    if batches is None:
        return
    results = queries.expectation_results(settings, system)
    counters(batches, results)
    left, right = st.columns(2)
    with left:
        expectations(results)
    with right:
        drops(queries.dropped_by_batch(settings, system))
    latest(batches)


def page() -> None:
    """The page: a system picker, then that system's event log."""
    st.title("Data quality")
    system = st.selectbox("System", queries.SYSTEMS, key="dq_system")
    st.caption(f"From `{system}/{TABLE}`: expectation results and flow metrics per batch.")

    def body() -> None:
        report(system)

    common.live(body)


page()
