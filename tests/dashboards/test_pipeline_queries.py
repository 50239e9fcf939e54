"""The pipelines page's data: each system's declared graph read from its pipeline folder
without Spark, and the status rule applied to event-log rows shaped as the runner writes
them."""

from __future__ import annotations

import pandas as pd
import pytest

from dashboards import pipeline_queries, queries
from dashboards.charts import pipelines as charts
from iotlake.config import load_settings
from spark_jobs.runner import load_system
from tests.support.seed import FlowScenario, flow_log

# Edges of each system as its README row and table files describe it.
EDGES = {
    "seismograph": [
        ("raw_stream", "sensor"),
        ("sensor", "global_stat"),
        ("sensor", "max_magn_by_device"),
        ("sensor", "magn_heatmap"),
        ("sensor", "magn_live"),
    ],
    "aws-iot": [
        ("iot_sensor_raw", "iot_sensor_processed"),
        ("iot_sensor_processed", "temperature_trend"),
        ("iot_sensor_processed", "critical_by_device"),
    ],
    "arduino": [
        ("dht_temp_raw", "temperature"),
        ("dht_hum_raw", "humidity"),
        ("sr04_distance_raw", "distance"),
        ("pir_test_raw", "pir_stream_test"),
        ("temperature", "temp_hum"),
        ("humidity", "temp_hum"),
    ],
    "text-sentiment": [
        ("bronze", "silver"),
        ("bronze", "languages"),
        ("silver", "sentiment"),
        ("sentiment", "top_posts"),
    ],
    "manufacturing": [
        ("sensor_bronze", "anomaly_detected"),
        ("sensor_bronze", "inspection_silver"),
        ("inspection_bronze", "inspection_silver"),
        ("inspection_silver", "inspection_gold"),
    ],
}
BRONZE = {
    "seismograph": ["raw_stream"],
    "aws-iot": ["iot_sensor_raw"],
    "arduino": ["dht_temp_raw", "dht_hum_raw", "sr04_distance_raw", "pir_test_raw"],
    "text-sentiment": ["bronze"],
    "manufacturing": ["sensor_bronze", "inspection_bronze"],
}


@pytest.fixture(scope="module")
def settings():
    return load_settings(profile="embedded", target="dev")


@pytest.mark.parametrize("system", queries.SYSTEMS)
def test_graph_has_every_declared_table_its_edges_and_a_source_per_bronze_table(settings, system):
    graph = {dataset.name: dataset for dataset in pipeline_queries.pipeline_graph(settings, system)}
    declared = load_system(system, settings)

    tables = {name for name, dataset in graph.items() if dataset.kind != "source"}
    assert tables == {spec.name for spec in declared}
    edges = {(up, name) for name, dataset in graph.items() for up in dataset.upstream}
    assert set(EDGES[system]) == {(up, down) for up, down in edges if up in tables}
    for table in BRONZE[system]:
        (source,) = graph[table].upstream
        assert graph[source].kind == "source"
    for spec in declared:
        expected = tuple((e.name, e.action) for e in spec.expectations)
        assert graph[spec.name].expectations == expected
    assert all(graph[name].flows == (name,) for name in tables)


def test_sources_name_the_configured_stream_topic_or_landing_path(settings):
    seismograph = pipeline_queries.pipeline_graph(settings, "seismograph")
    over_kafka = load_settings(profile="embedded", target="dev", seismograph={"transport": "kafka"})
    kafka = pipeline_queries.pipeline_graph(over_kafka, "seismograph")
    sentiment = pipeline_queries.pipeline_graph(settings, "text-sentiment")
    manufacturing = pipeline_queries.pipeline_graph(settings, "manufacturing")

    stream = settings.seismograph.stream
    assert seismograph[0] == pipeline_queries.Dataset(f"kinesis: {stream}", "source")
    assert kafka[0] == pipeline_queries.Dataset(f"kafka: {stream}", "source")
    assert [d.name for d in sentiment if d.kind == "source"] == [
        "json files: /Volumes/main/tweets/landing/posts"
    ]
    kinds = {d.name: d.kind for d in manufacturing}
    assert kinds["inspection_silver"] == kinds["inspection_gold"] == "materialized"
    assert {d.name for d in manufacturing if d.kind == "source"} == {
        "cloudFiles: /Volumes/default/iot_anomaly_detection/sensor_bronze",
        "cloudFiles: /Volumes/default/iot_anomaly_detection/inspection_bronze",
    }


def test_a_materialized_view_is_judged_against_the_refresh_interval_not_the_trigger(settings):
    graph = pipeline_queries.pipeline_graph(settings, "text-sentiment")
    now = pd.Timestamp.now(tz="UTC")
    trigger, refresh = settings.pipelines.trigger_seconds, settings.pipelines.refresh_seconds
    slow = int((trigger + refresh) / 2 * 1000)  # longer than the trigger, within a refresh
    log = pd.concat(
        [
            flow_log("text-sentiment", "sentiment", [], FlowScenario((20.0, 5.0), 50, slow), now),
            flow_log("text-sentiment", "top_posts", [], FlowScenario((20.0, 5.0), 30, slow), now),
            flow_log("text-sentiment", "bronze", [], FlowScenario((90.0,), 50, 100), now),
        ],
        ignore_index=True,
    )
    newest = log[log["timestamp"] < now - pd.Timedelta(seconds=60)]
    recent = log.drop(newest.index)

    activity = pipeline_queries.table_activity(graph, recent, newest, now, trigger, refresh)

    status = activity.set_index("table")["status"].to_dict()
    assert status == {
        "sentiment": "falling behind",
        "top_posts": "keeps up",
        "bronze": "idle",
        "silver": "not started",
        "languages": "not started",
    }
    dot = charts.pipeline_dot(graph, activity)
    assert '"top_posts" [label="top_posts\\n' in dot and 'peripheries="2"' in dot
