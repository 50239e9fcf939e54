"""Every page renders headless over seeded Delta tables, and explains an empty lake."""

from __future__ import annotations

import uuid

import pandas as pd
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from iotlake.config import Settings
from tests.support.dashboard import APP, open_page, point_app_at
from tests.support.seed import (
    POC_END,
    SCHEMAS,
    SeededSystem,
    event_log,
    seed_lake,
    seed_seismograph,
    write_table,
)

PAGES = ["views/seismograph.py", "views/aws_iot.py", "views/data_quality.py"]
# The table whose absence each page reports first.
FIRST_TABLE = {
    "views/seismograph.py": "global_stat",
    "views/aws_iot.py": "temperature_trend",
    "views/data_quality.py": "event_log",
}


@pytest.fixture
def seeded(lake: Settings) -> dict[str, SeededSystem]:
    return seed_lake(lake)


def _metrics(app: AppTest) -> dict[str, str]:
    return {metric.label: metric.value for metric in app.metric}


def test_seismograph_page_shows_global_statistics_and_four_charts(seeded):
    stat = seeded["seismograph"].tables["global_stat"].iloc[0]

    app = open_page("views/seismograph.py")

    assert _metrics(app) == {
        "Events": f"{int(stat['events']):,}",
        "Max magnitude": "231",
        "Avg magnitude": str(round(stat["avg"])),
        "Stddev": str(round(stat["stddev"])),
    }
    assert len(app.get("plotly_chart")) == 4
    assert not app.info


def test_aws_iot_page_shows_newest_fleet_temperature_and_last_24h_anomalies(seeded):
    gold = seeded["aws-iot"].tables
    newest = gold["temperature_trend"].sort_values("time_window").iloc[-1]
    critical = gold["critical_by_device"]
    last_day = critical["time_window"] > POC_END - pd.Timedelta(hours=24)
    expected_critical = int(critical.loc[last_day, "critical_count"].sum())
    assert expected_critical < int(critical["critical_count"].sum())  # the window matters

    app = open_page("views/aws_iot.py")

    assert _metrics(app) == {
        "Fleet temperature, newest minute": f"{newest['average_fleet_temp']:.2f} °C",
        "Critical readings, 24 h": f"{expected_critical:,}",
    }
    assert len(app.get("plotly_chart")) == 2


def test_data_quality_page_sums_each_systems_event_log(seeded):
    def expected(system: str) -> dict[str, str]:
        log = seeded[system].tables["event_log"]
        checks = log[log["expectation"].notna()]
        return {
            "Tables reporting": "1",
            "Failed expectation rows": f"{int(checks['failed'].sum()):,}",
            "Rows dropped": f"{int(checks.loc[checks['action'] == 'drop', 'failed'].sum()):,}",
        }

    app = open_page("views/data_quality.py")
    first = _metrics(app)
    app.selectbox(key="dq_system").select("aws-iot").run()

    assert first == expected("seismograph")
    assert _metrics(app) == expected("aws-iot")
    assert len(app.get("plotly_chart")) == 2
    assert app.dataframe[0].value["batch_id"].tolist() == [3]


@pytest.mark.parametrize("page", PAGES)
def test_page_on_an_lake_says_which_table_has_no_data_yet(lake, page):
    app = open_page(page)

    messages = [info.value for info in app.info]
    assert f"No data yet in `{FIRST_TABLE[page]}`" in messages[0]
    assert "iotlake run" in messages[0]
    assert not app.get("plotly_chart")
    assert not app.metric


def test_a_table_that_exists_without_rows_shows_the_empty_state(lake):
    empty = pd.DataFrame(columns=list(SCHEMAS["global_stat"].names))
    write_table(lake, "seismograph", "global_stat", empty)

    app = open_page("views/seismograph.py")

    assert "No data yet in `global_stat`" in app.info[0].value
    assert not app.metric


def test_a_bad_setting_is_shown_as_one_line_instead_of_a_traceback(lake, monkeypatch):
    monkeypatch.setenv("IOTLAKE_AWS__PORT", "0")
    st.cache_resource.clear()

    app = AppTest.from_file(str(APP), default_timeout=60).run()

    assert not app.exception
    assert "aws.port" in app.error[0].value
    assert "IOTLAKE_AWS__PORT" in app.error[0].value


def test_seismograph_page_reads_tables_on_s3(stack, tmp_path, monkeypatch):
    root = f"s3://{stack.lake.bucket}/dashboard-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("IOTLAKE_AWS__PORT", str(stack.aws.port))
    monkeypatch.setenv("IOTLAKE_AWS__EMULATOR", stack.aws.emulator)
    settings = point_app_at(monkeypatch, root, tmp_path)
    try:
        seeded = seed_seismograph(settings)

        app = open_page("views/seismograph.py")

        events = int(seeded.tables["global_stat"].iloc[0]["events"])
        assert _metrics(app)["Events"] == f"{events:,}"
        assert len(app.get("plotly_chart")) == 4
    finally:
        st.cache_resource.clear()


def test_an_empty_table_of_a_running_pipeline_says_it_waits_for_its_first_batch(lake):
    log = event_log("seismograph", "sensor", batches=2)
    log["timestamp"] = pd.Timestamp.now(tz="UTC").floor("s")  # batches just written
    write_table(lake, "seismograph", "event_log", log)
    written = int(log.loc[log["expectation"].isna(), "rows_out"].sum())

    app = open_page("views/seismograph.py")

    message = app.info[0].value
    assert "Waiting for the first batch of `global_stat`" in message
    assert f"{written:,} rows into its tables" in message
    assert "start the pipeline" not in message
