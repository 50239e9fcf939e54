"""What every dashboard page shares: settings, the live refresh, empty states, read errors."""

from __future__ import annotations

from collections.abc import Callable
from typing import Concatenate, ParamSpec

import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from deltalake.exceptions import DeltaError

from iotlake.config import Settings, load_settings

REFRESH_KEY = "refresh_seconds"
DEFAULT_REFRESH_SECONDS = 5
# No plotly toolbar: it covers the titles of half-width charts; drag still zooms or rotates
# and a double click resets.
PLOTLY_CONFIG = {"displayModeBar": False}
P = ParamSpec("P")


@st.cache_resource(show_spinner=False)
def settings() -> Settings:
    """The one Settings object of this dashboard process (iotlake.yml + IOTLAKE_* variables)."""
    return load_settings()


def refresh_interval() -> float | None:
    """Seconds between automatic refreshes, as chosen in the sidebar; None turns them off."""
    seconds = st.session_state.get(REFRESH_KEY, DEFAULT_REFRESH_SECONDS)
    return float(seconds) if seconds else None


def live(body: Callable[[], None]) -> None:
    """Run `body` as a fragment that reruns by itself every refresh interval.

    Only the fragment reruns, so the sidebar and the page's controls keep their state while
    the charts follow the tables.
    """
    st.fragment(run_every=refresh_interval())(body)()


def chart(figure: go.Figure, key: str) -> None:
    """Draw a figure across its column, the same way on every page."""
    st.plotly_chart(figure, key=key, config=PLOTLY_CONFIG)


def empty_state(system: str, table: str) -> None:
    """Say which table has no data yet, and whether its pipeline runs (the demo's job is up,
    or its event log has recent batches) or which command starts it."""
    from dashboards.queries import RECENT_MINUTES, recent_rows
    from services.embedded.stack import is_running

    written = recent_rows(settings(), system)
    if written is not None:
        st.info(
            f"Waiting for the first batch of `{table}`: the {system} pipeline runs "
            f"({written:,} rows into its tables in the last {RECENT_MINUTES} minutes)"
        )
    elif is_running(settings(), "pipelines"):
        st.info(f"Waiting for the first batch of `{table}`: the pipelines are starting")
    else:
        st.info(f"No data yet in `{table}` — start the pipeline with `iotlake run {system}`")


def read(
    system: str,
    table: str,
    query: Callable[Concatenate[Settings, P], pd.DataFrame],
    *args: P.args,
    **kwargs: P.kwargs,
) -> pd.DataFrame | None:
    """The rows `query` (one of `dashboards.queries`, reading `system`'s `table`) returns with
    this dashboard's settings, or None once the user has been told why there are none.

    An unreachable store or an unreadable table is reported on the page in one line, so one
    broken table does not hide the charts of the others.
    """
    try:
        frame = query(settings(), *args, **kwargs)
    except (DeltaError, OSError) as error:
        st.error(f"Cannot read `{system}/{table}`: {error}")
        return None
    if frame.empty:
        empty_state(system, table)
        return None
    return frame
