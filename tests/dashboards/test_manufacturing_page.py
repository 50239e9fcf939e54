"""The manufacturing page draws the original dashboard's widgets and the alert's state.

Tables are seeded with generated data carried through the pandas definitions of the pipeline
(tests/spark_jobs/manufacturing/expected.py); each widget's numbers are then computed again
with pandas from those tables and compared with what the page drew.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import streamlit as st
from deltalake import write_deltalake
from streamlit.testing.v1 import AppTest

from dashboards.queries import MANUFACTURING
from iotlake.config import Settings, load_settings
from services.producers.manufacturing_generator import BatchConfig, generate_batch
from spark_jobs.io.storage import table_uri
from tests.conftest import free_port
from tests.dashboards.test_dashboard_browser import (  # noqa: F401 (browser is a fixture)
    APP,
    REPO,
    _capture,
    _render,
    _wait_healthy,
    browser,
)
from tests.spark_jobs.manufacturing import expected

PAGE = "views/manufacturing.py"
TITLES = {"Inspections by week", "% Defect Rate by factory", "Density", "Temperature"}


def _typed(frame: pd.DataFrame, types: dict[str, str]) -> pd.DataFrame:
    """A generated frame typed as the pipeline's schema hints type it, times in UTC."""
    typed = frame.astype({name: kind for name, kind in types.items() if name in frame})
    typed["timestamp"] = pd.to_datetime(typed["timestamp"]).dt.tz_localize("UTC")
    return typed


def _numeric(frame: pd.DataFrame) -> pd.DataFrame:
    """Object columns of the pandas silver as numbers and times, as Delta stores them."""
    out = frame.copy()
    for column in out.columns:
        if column.endswith("timestamp"):
            out[column] = pd.to_datetime(out[column], utc=True)
        elif column not in ("factory_id", "model_id"):
            out[column] = pd.to_numeric(out[column])
    return out


def _seed(settings: Settings, recent_anomaly: bool) -> dict[str, pd.DataFrame]:
    batch = generate_batch(BatchConfig(rows=20_000, devices=30, seed=5))
    sensors = _typed(batch.sensors, expected.SENSOR_TYPES)
    inspections = _typed(batch.inspections, expected.INSPECTION_TYPES)
    silver = _numeric(expected.inspection_silver(inspections, sensors))
    anomalies = expected.anomaly_detected(sensors)
    if recent_anomaly:
        newest = anomalies.iloc[[0]].copy()
        newest["timestamp"] = pd.Timestamp(datetime.now(UTC) - timedelta(minutes=3))
        anomalies = pd.concat([anomalies, newest], ignore_index=True)
    tables = {
        "inspection_bronze": expected.inspection_bronze(inspections),
        "anomaly_detected": anomalies,
        "inspection_silver": silver,
        "inspection_gold": _numeric(expected.inspection_gold(silver)),
    }
    for table, frame in tables.items():
        data = pa.Table.from_pandas(frame, preserve_index=False)
        write_deltalake(table_uri(settings, MANUFACTURING, table), data, mode="overwrite")
    return tables


@pytest.fixture
def lake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("IOTLAKE_LAKE__ROOT", str(tmp_path / "lake"))
    monkeypatch.setenv("IOTLAKE_STATE_DIR", str(tmp_path))
    st.cache_resource.clear()
    yield load_settings()
    st.cache_resource.clear()


def _open() -> AppTest:
    app = AppTest.from_file(str(APP), default_timeout=90)
    app.run()
    app.switch_page(PAGE).run()
    assert not app.exception, [error.message for error in app.exception]
    return app


def _values(trace: dict, key: str) -> np.ndarray:
    """A trace's values; plotly's JSON packs numeric arrays as base64 with a dtype."""
    values = trace[key]
    if isinstance(values, dict):
        return np.frombuffer(base64.b64decode(values["bdata"]), dtype=values["dtype"])
    return np.asarray(values)


def _figures(app: AppTest) -> dict[str, dict]:
    figures = [json.loads(chart.proto.spec) for chart in app.get("plotly_chart")]
    return {figure["layout"]["title"]["text"]: figure for figure in figures}


def _weekly(bronze: pd.DataFrame) -> pd.DataFrame:
    """Inspections per week (weeks start on Monday, as DATE_TRUNC('WEEK') does)."""
    week = bronze["timestamp"].dt.tz_localize(None).dt.to_period("W-SUN").dt.start_time
    return (
        bronze.assign(week=week, flagged=bronze["defect"] > 0, fine=bronze["defect"] == 0)
        .groupby("week")[["flagged", "fine"]]
        .sum()
        .sort_index()
    )


def test_page_draws_the_originals_widgets_as_pandas_computes_them(lake):
    tables = _seed(lake, recent_anomaly=True)
    bronze, gold = tables["inspection_bronze"], tables["inspection_gold"]
    assert (bronze["defect"] == 1).sum() > 0 and (gold["defect"] == 1).sum() > 0

    app = _open()

    metrics = {metric.label: metric.value for metric in app.metric}
    assert metrics == {
        "Defects Flagged": f"{int((bronze['defect'] == 1).sum()):,}",
        "Non Defects": f"{int((bronze['defect'] == 0).sum()):,}",
    }
    figures = _figures(app)
    assert set(figures) == TITLES
    weekly = _weekly(bronze)
    flagged, fine = figures["Inspections by week"]["data"]
    assert (flagged["name"], fine["name"]) == ("Defect Flagged", "Non Defect")
    assert (flagged["marker"]["color"], fine["marker"]["color"]) == ("#FF3621", "#00A972")
    assert figures["Inspections by week"]["layout"]["barmode"] == "stack"
    assert np.array_equal(_values(flagged, "y"), weekly["flagged"].to_numpy())
    assert np.array_equal(_values(fine, "y"), weekly["fine"].to_numpy())

    rates = gold[gold["device_id"].notna()].groupby(["factory_id", "device_id", "model_id"])
    per_device = rates.apply(
        lambda rows: 100 * rows.loc[rows["defect"] == 1, "count"].sum() / rows["count"].sum(),
        include_groups=False,
    )
    by_factory = per_device.groupby(level="factory_id").mean().sort_values()
    [bars] = figures["% Defect Rate by factory"]["data"]
    assert list(bars["y"]) == list(by_factory.index)
    assert np.allclose(_values(bars, "x"), by_factory.to_numpy())

    silver = tables["inspection_silver"]
    days = silver.assign(day=silver["timestamp"].dt.floor("D"))
    green = days[days["defect"] == 0].groupby("day")["sensor_temperature"].mean()
    traces = {trace["name"]: trace for trace in figures["Temperature"]["data"]}
    assert traces["defect 0"]["marker"]["color"] == "#00A972"
    assert np.allclose(_values(traces["defect 0"], "y"), green.to_numpy(), equal_nan=True)

    [alert] = app.error
    assert "Defects detected" in alert.value and "1 anomaly in the last 10 minutes" in alert.value


def test_model_filter_narrows_every_widget_to_that_models_devices(lake):
    tables = _seed(lake, recent_anomaly=False)
    bronze, gold = tables["inspection_bronze"], tables["inspection_gold"]
    model = gold["model_id"].value_counts().index[0]
    devices = set(gold.loc[gold["model_id"] == model, "device_id"])

    app = _open()
    app.selectbox(key="manufacturing-model").set_value(model).run()

    mine = bronze[bronze["device_id"].isin(devices)]
    metrics = {metric.label: metric.value for metric in app.metric}
    assert metrics["Defects Flagged"] == f"{int((mine['defect'] == 1).sum()):,}"
    assert metrics["Non Defects"] == f"{int((mine['defect'] == 0).sum()):,}"
    [success] = app.success
    assert "no anomalies in the last 10 minutes" in success.value


def test_page_on_an_empty_lake_says_which_tables_have_no_data_yet(lake):
    app = _open()

    messages = [info.value for info in app.info]
    assert len(messages) == 4
    for table in ("inspection_bronze", "inspection_gold", "inspection_silver"):
        assert any(f"No data yet in `{table}`" in message for message in messages)
    assert all("iotlake run manufacturing" in message for message in messages)
    assert not app.get("plotly_chart")


@pytest.mark.slow
def test_page_renders_in_chromium_with_its_four_charts(tmp_path, browser, artifacts):  # noqa: F811
    environment = {
        **os.environ,
        "IOTLAKE_LAKE__ROOT": str(tmp_path / "lake"),
        "IOTLAKE_STATE_DIR": str(tmp_path),
    }
    settings = load_settings(lake={"root": str(tmp_path / "lake")}, state_dir=str(tmp_path))
    _seed(settings, recent_anomaly=True)
    port = free_port()
    log = tmp_path / "streamlit.log"
    command = [
        sys.executable, "-m", "streamlit", "run", str(APP),
        "--server.headless", "true",
        "--server.address", "127.0.0.1",
        "--server.port", str(port),
        "--browser.gatherUsageStats", "false",
        "--server.fileWatcherType", "none",
    ]  # fmt: skip
    with log.open("wb") as output:
        server = subprocess.Popen(
            command, cwd=REPO, env=environment, stdout=output, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, server, log)
        plots = _render(browser, f"{url}/manufacturing", 4, "Defects Flagged")
        _capture(browser, artifacts / "dashboard_manufacturing.png")
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=10)

    assert plots >= 4
    assert (artifacts / "dashboard_manufacturing.png").stat().st_size > 10_000
