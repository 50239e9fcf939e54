"""The manufacturing page draws the original dashboard's widgets and the alert's state.

Tables are seeded with generated data carried through the pandas definitions of the pipeline
(tests/support/manufacturing.py); each widget's numbers are then computed again
with pandas from those tables and compared with what the page drew.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from deltalake import write_deltalake
from streamlit.testing.v1 import AppTest

from dashboards.queries import MANUFACTURING
from iotlake.config import Settings
from services.producers.manufacturing_batch import BatchConfig, generate_batch
from spark_jobs.io.storage import table_uri
from tests.support import manufacturing as expected
from tests.support.browser import capture, render
from tests.support.dashboard import (
    figures,
    lake_environment,
    open_page,
    streamlit_server,
    trace_values,
)

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


def _open() -> AppTest:
    return open_page(PAGE, timeout=90)


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
    drawn = figures(app)
    assert set(drawn) == TITLES
    weekly = _weekly(bronze)
    flagged, fine = drawn["Inspections by week"]["data"]
    assert (flagged["name"], fine["name"]) == ("Defect Flagged", "Non Defect")
    assert (flagged["marker"]["color"], fine["marker"]["color"]) == ("#FF3621", "#00A972")
    assert drawn["Inspections by week"]["layout"]["barmode"] == "stack"
    assert np.array_equal(trace_values(flagged, "y"), weekly["flagged"].to_numpy())
    assert np.array_equal(trace_values(fine, "y"), weekly["fine"].to_numpy())

    rates = gold[gold["device_id"].notna()].groupby(["factory_id", "device_id", "model_id"])
    per_device = rates.apply(
        lambda rows: 100 * rows.loc[rows["defect"] == 1, "count"].sum() / rows["count"].sum(),
        include_groups=False,
    )
    by_factory = per_device.groupby(level="factory_id").mean().sort_values()
    [bars] = drawn["% Defect Rate by factory"]["data"]
    assert list(bars["y"]) == list(by_factory.index)
    assert np.allclose(trace_values(bars, "x"), by_factory.to_numpy())

    silver = tables["inspection_silver"]
    days = silver.assign(day=silver["timestamp"].dt.floor("D"))
    green = days[days["defect"] == 0].groupby("day")["sensor_temperature"].mean()
    traces = {trace["name"]: trace for trace in drawn["Temperature"]["data"]}
    assert traces["defect 0"]["marker"]["color"] == "#00A972"
    assert np.allclose(trace_values(traces["defect 0"], "y"), green.to_numpy(), equal_nan=True)

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
def test_page_renders_in_chromium_with_its_four_charts(tmp_path, browser, artifacts):
    settings, environment = lake_environment(tmp_path)
    _seed(settings, recent_anomaly=True)
    with streamlit_server(environment, tmp_path / "streamlit.log") as url:
        plots = render(browser, f"{url}/manufacturing", 4, "Defects Flagged")
        capture(browser, artifacts / "dashboard_manufacturing.png")

    assert plots >= 4
    assert (artifacts / "dashboard_manufacturing.png").stat().st_size > 10_000
