"""The pipelines page draws each system's declared graph with live rates, statuses and pass
rates computed from its event log, and says so when a pipeline has not started.

The event log is seeded with rows shaped as the runner writes them, relative to the wall
clock (the page's window ends now); expected numbers are computed here from those rows.
"""

from __future__ import annotations

import time

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from dashboards import pipeline_queries
from spark_jobs.runner import load_system
from tests.support.dashboard import open_page
from tests.support.pipelines import EXPECTED_STATUS, declared_expectations
from tests.support.seed import WATERMARK, seed_pipeline_log, seismograph_scenarios

PAGE = "views/pipelines.py"
WINDOW = pipeline_queries.PIPELINE_WINDOW_SECONDS


def _open(system: str | None = None) -> AppTest:
    return open_page(PAGE, timeout=120, system=system)


def _window(log: pd.DataFrame, now: pd.Timestamp) -> pd.DataFrame:
    return log[pd.to_datetime(log["timestamp"], utc=True) > now - pd.Timedelta(seconds=WINDOW)]


def test_page_shows_graph_rates_pass_rates_and_statuses_from_the_event_log(lake):
    seeded_at = pd.Timestamp.now(tz="UTC")
    log = seed_pipeline_log(lake, declared_expectations(lake, "seismograph"), now=seeded_at)
    scenarios = seismograph_scenarios(lake.pipelines.trigger_seconds)
    recent = _window(log, seeded_at)
    flows = recent[recent["expectation"].isna()]
    checks = recent[recent["expectation"].notna()]
    started = time.monotonic()

    app = _open()
    elapsed = time.monotonic() - started
    assert elapsed < 25, "the seeded batches' split around the window needs a quick render"

    metrics = {metric.label: metric.value for metric in app.metric}
    statuses = list(EXPECTED_STATUS.values())
    assert metrics == {s.capitalize(): str(statuses.count(s)) for s in pipeline_queries.STATUSES}

    shown = app.dataframe[0].value.set_index("table")
    assert shown["status"].to_dict() == EXPECTED_STATUS
    for table, rows in flows.groupby("table"):
        row = shown.loc[table]
        assert row["rows in/s"] == pytest.approx(rows["rows_in"].sum() / WINDOW)
        assert row["rows out/s"] == pytest.approx(rows["rows_out"].sum() / WINDOW)
        late = checks[(checks["table"] == table) & (checks["expectation"] == WATERMARK)]
        dropped = (rows["rows_in"] - rows["rows_out"]).sum() + late["failed"].sum()
        assert row["rows dropped"] == dropped
        assert row["last batch (s)"] == pytest.approx(scenarios[table].duration_ms / 1000)
        age = min(scenarios[table].ages)
        assert age <= row["since last batch (s)"] <= age + elapsed + 1
    assert shown.loc["magn_live", "rows dropped"] > 0  # late rows count as dropped
    idle = shown.loc["global_stat"]
    assert idle["rows in/s"] == 0
    assert min(scenarios["global_stat"].ages) <= idle["since last batch (s)"]
    assert pd.isna(shown.loc["magn_heatmap", "since last batch (s)"])
    # `sensor`'s newest event is 4 s older than its only file.
    assert shown.loc["sensor", "event time"] == "time"
    assert 4 <= shown.loc["sensor", "event→table (s)"] < 4 + elapsed + 5

    rates = app.dataframe[1].value.set_index(["table", "expectation"])
    for (table, name), rows in checks.groupby(["table", "expectation"]):
        passed, failed = int(rows["passed"].sum()), int(rows["failed"].sum())
        assert rates.loc[(table, name), "passed"] == passed
        assert rates.loc[(table, name), "failed"] == failed
        expected = 100 * passed / (passed + failed)
        assert rates.loc[(table, name), "pass rate (%)"] == pytest.approx(expected)
    # Declared but not checked in the window: listed without a rate.
    assert pd.isna(rates.loc[("global_stat", "max is not below min"), "pass rate (%)"])

    dot = app.get("graphviz_chart")[0].proto.spec
    for table in EXPECTED_STATUS:
        rate = flows.loc[flows["table"] == table, "rows_out"].sum() / WINDOW
        assert f'"{table}" [label="{table}\\n{rate:,.1f} rows/s\\n{EXPECTED_STATUS[table]}"' in dot
    for upstream, downstream in [
        ("kinesis: dais2023", "raw_stream"),
        ("raw_stream", "sensor"),
        ("sensor", "global_stat"),
        ("sensor", "magn_heatmap"),
        ("sensor", "magn_live"),
        ("sensor", "max_magn_by_device"),
    ]:
        assert f'"{upstream}" -> "{downstream}";' in dot
    assert not app.info


def test_page_without_an_event_log_says_the_pipeline_has_not_started(lake):
    app = _open("aws-iot")

    assert "The aws-iot pipeline has not started" in app.info[0].value
    assert "iotlake run aws-iot" in app.info[0].value
    tables = [spec.name for spec in load_system("aws-iot", lake)]
    metrics = {metric.label: metric.value for metric in app.metric}
    assert metrics["Not started"] == str(len(tables))
    assert metrics["Keeps up"] == "0"
    shown = app.dataframe[0].value
    assert sorted(shown["table"]) == sorted(tables)
    assert set(shown["status"]) == {"not started"}
    dot = app.get("graphviz_chart")[0].proto.spec
    assert '"iot_sensor_raw" -> "iot_sensor_processed";' in dot
    assert "not started" in dot
