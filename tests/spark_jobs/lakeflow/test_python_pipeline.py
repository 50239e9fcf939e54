"""A Python pipeline, both imports (`import dlt`, `from pyspark import pipelines as dp`), runs
end to end: every read form, temporary views, every expectation form, append flows, declared
table settings and streaming aggregates.

The pipeline is run once (a module fixture) and each test looks at what that run left: the
tables, the Delta metadata and the event log.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from deltalake import DeltaTable
from pyspark.sql import SparkSession

from spark_jobs import runner
from spark_jobs.flows import WriteMode, write_mode
from spark_jobs.io.storage import table_uri, volume_uri
from tests.support.lakeflow import (
    Run,
    failed,
    land_json,
    records,
    run_pipeline,
    spark_pipeline_yml,
    write_folder,
)
from tests.support.settings import settings_for

PY = "lakeflow_py"
MAX_READING = 100
EVENTS_LANDING = "/Volumes/lf/py/files/events"
BACKFILL_LANDING = "/Volumes/lf/py/files/backfill"
EVENTS = [
    [
        {"id": 1, "device": "a", "reading": 10.5},
        {"id": 2, "device": "b", "reading": 20.5},
        {"id": 3, "device": None, "reading": 5.5},
        {"id": 4, "device": "a", "reading": None},
    ],
    [
        {"id": 5, "device": "b", "reading": 150.5},
        {"id": 6, "device": "a", "reading": -1.5},
        {"id": 7, "device": "c", "reading": 30.5},
        {"id": 8, "device": "a", "reading": 12.5},
    ],
]
BACKFILL = [{"id": 100, "device": "z", "reading": 1.5}, {"id": 101, "device": "a", "reading": 2.5}]
ALL_EVENTS = [row for rows in EVENTS for row in rows]
# What the `positive` view passes to `clean`, and what `clean`'s drop rules keep.
POSITIVE = [row for row in ALL_EVENTS if row["reading"] is not None and row["reading"] > 0]
CLEAN = [row for row in POSITIVE if row["device"] is not None and row["reading"] < MAX_READING]

# Listed downstream first (libraries are read in name order): the graph, not the file
# order, decides what runs first.
PY_FILES = {
    "transformations/1_gold.py": """
        import dlt
        from pyspark import pipelines as dp
        from pyspark.sql import functions as F


        @dlt.table(
            comment="Readings per device",
            spark_conf={"spark.sql.shuffle.partitions": "3"},
        )
        def device_stats():
            return (
                spark.readStream.option("maxFilesPerTrigger", 1)
                .table("lf.py.clean")
                .groupBy("device")
                .agg(F.count("*").alias("n"), F.max("reading").alias("top"))
            )


        @dlt.table(schema="n BIGINT COMMENT 'rows in clean', total DOUBLE")
        def totals():
            return spark.readStream.table("LIVE.clean").agg(
                F.count("*").alias("n"), F.sum("reading").alias("total")
            )


        @dlt.table
        def device_totals():
            return dlt.read("clean").groupBy("device").agg(F.sum("reading").alias("total"))


        @dp.materialized_view
        def busiest():
            return spark.read.table("device_stats").orderBy(F.desc("n"), "device").limit(1)
        """,
    "transformations/2_silver.py": """
        from pyspark import pipelines as dp

        MAX_READING = float(spark.conf.get("max_reading"))


        @dp.temporary_view
        def positive():
            return spark.readStream.table("events").where("reading > 0")


        @dp.table(cluster_by=["device"])
        @dp.expect_or_drop("reading in range", f"reading < {MAX_READING}")
        @dp.expect_all_or_drop({"device named": "device IS NOT NULL"})
        @dp.expect_all_or_fail({"id positive": "id > 0"})
        def clean():
            return dp.read_stream("positive").select("id", "device", "reading")
        """,
    "transformations/3_bronze.py": """
        import dlt
        from pyspark.sql import functions as F

        HINTS = "id int, device string, reading double"


        @dlt.table(
            comment="Events as they landed",
            table_properties={"quality": "bronze"},
            partition_cols=["device"],
        )
        @dlt.expect("reading present", "reading IS NOT NULL")
        @dlt.expect_or_fail("id present", "id IS NOT NULL")
        @dlt.expect_all({"device named": "device IS NOT NULL", "id small": "id < 1000"})
        def events():
            return (
                spark.readStream.format("cloudFiles")
                .option("cloudFiles.format", "json")
                .option("cloudFiles.schemaHints", HINTS)
                .option("cloudFiles.maxFilesPerTrigger", 1)
                .load(spark.conf.get("events_landing"))
                .drop("_file_path", "_rescued_data")
            )


        @dlt.view
        def backfill_files():
            return (
                spark.readStream.format("cloudFiles")
                .option("cloudFiles.format", "json")
                .option("cloudFiles.schemaHints", HINTS)
                .load(spark.conf.get("backfill_landing"))
                .select("id", "device", "reading")
            )


        dlt.create_streaming_table("all_readings", comment="Events and backfilled readings")


        @dlt.append_flow(target="all_readings")
        def from_events():
            return dlt.read_stream("events").withColumn("origin", F.lit("events"))


        @dlt.append_flow(target="all_readings", name="from_backfill")
        def backfill():
            return dlt.read_stream("backfill_files").withColumn("origin", F.lit("backfill"))


        dlt.create_streaming_table(
            "declared_only", schema="device STRING COMMENT 'the device', reading DOUBLE"
        )
        """,
}


def flow_rows(log: pd.DataFrame, table: str) -> pd.DataFrame:
    """The event log's one-per-batch rows of a flow (not its expectation rows)."""
    return log[(log["table"] == table) & log["expectation"].isna()]


@pytest.fixture(scope="module")
def python_run(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> Run:
    root = tmp_path_factory.mktemp("python-pipeline")
    settings = settings_for(root)
    configuration = {
        "events_landing": EVENTS_LANDING,
        "backfill_landing": BACKFILL_LANDING,
        "max_reading": str(MAX_READING),
    }
    folder = write_folder(
        root / "pipeline",
        {"spark-pipeline.yml": spark_pipeline_yml(PY, "lf", "py", configuration), **PY_FILES},
    )
    for index, rows in enumerate(EVENTS, 1):
        land_json(volume_uri(settings, EVENTS_LANDING), f"events-{index}.json", rows)
    land_json(volume_uri(settings, BACKFILL_LANDING), "backfill.json", BACKFILL)
    return run_pipeline(spark, settings, folder)


@pytest.mark.slow
def test_dlt_and_pyspark_pipelines_imports_declare_one_pipeline_whose_kind_follows_the_result(
    python_run: Run,
):
    specs = python_run.pipeline.specs
    files = {Path(spec.file).name for spec in specs.values()}

    assert files == {"1_gold.py", "2_silver.py", "3_bronze.py"}
    # A function returning a stream makes a streaming table, a batch DataFrame a
    # materialized view, whichever decorator declared it.
    kinds = {name: spec.kind for name, spec in specs.items()}
    assert kinds == {
        "events": "streaming",
        "clean": "streaming",
        "device_stats": "streaming",
        "totals": "streaming",
        "all_readings": "streaming",
        "from_events": "streaming",
        "from_backfill": "streaming",
        "declared_only": "streaming",
        "device_totals": "materialized",
        "busiest": "materialized",
        "positive": "view",
        "backfill_files": "view",
    }
    assert records(python_run.table("events"), "id", "device", "reading") == records(
        pd.DataFrame(ALL_EVENTS), "id", "device", "reading"
    )


@pytest.mark.slow
def test_views_are_computed_inside_their_readers_and_never_written(python_run: Run):
    settings, pipeline = python_run.settings, python_run.pipeline
    folder = Path(table_uri(settings, pipeline.name))

    for view in ("positive", "backfill_files"):
        assert not (folder / view).exists()
        assert view not in [spec.name for spec in pipeline.resolve_all()]
        assert view not in set(python_run.log["table"])
    for table in ("events", "clean", "device_stats", "totals", "device_totals", "busiest"):
        assert (folder / table / "_delta_log").is_dir(), table
    # The view's filter ran inside `clean`'s query: its rows are the filtered ones.
    assert sorted(python_run.table("clean")["id"]) == [row["id"] for row in CLEAN]


@pytest.mark.slow
def test_every_read_form_names_its_upstream_and_flows_run_upstream_first(python_run: Run):
    pipeline = python_run.pipeline
    upstream = {name: spec.upstream for name, spec in pipeline.specs.items()}

    assert [path.name for path in pipeline.definition.libraries] == [
        "1_gold.py",
        "2_silver.py",
        "3_bronze.py",
    ]
    assert upstream["events"] == ()
    assert upstream["positive"] == ("events",)  # spark.readStream.table("events")
    assert upstream["clean"] == ("events",)  # dp.read_stream("positive"): the view's reads
    assert upstream["device_stats"] == ("clean",)  # spark.readStream.table("lf.py.clean")
    assert upstream["totals"] == ("clean",)  # spark.readStream.table("LIVE.clean")
    assert upstream["device_totals"] == ("clean",)  # dlt.read("clean")
    assert upstream["busiest"] == ("device_stats",)  # spark.read.table("device_stats")
    assert upstream["from_events"] == ("events",)  # dlt.read_stream("events")
    assert upstream["from_backfill"] == ()  # a view over files only
    order = [spec.name for spec in pipeline.resolve_all()]
    writers = {spec.target: [] for spec in pipeline.specs.values()}
    for spec in pipeline.specs.values():
        writers[spec.target].append(spec.name)
    for position, name in enumerate(order):
        for table in upstream[name]:
            assert all(order.index(writer) < position for writer in writers[table]), name


@pytest.mark.slow
def test_every_expectation_form_is_counted_in_the_event_log_and_drop_rules_drop(
    python_run: Run,
):
    log = python_run.log
    missing = sum(row["reading"] is None for row in ALL_EVENTS)
    unnamed = sum(row["device"] is None for row in ALL_EVENTS)

    assert failed(log, "events") == {
        "reading present": ("warn", missing),  # expect
        "id present": ("fail", 0),  # expect_or_fail
        "device named": ("warn", unnamed),  # expect_all
        "id small": ("warn", 0),
    }
    assert flow_rows(log, "events")["rows_out"].sum() == len(ALL_EVENTS)  # warn keeps rows
    assert failed(log, "clean") == {
        "reading in range": ("drop", sum(row["reading"] >= MAX_READING for row in POSITIVE)),
        "device named": ("drop", sum(row["device"] is None for row in POSITIVE)),  # expect_all_
        "id positive": ("fail", 0),  # expect_all_or_fail
    }
    clean = flow_rows(log, "clean")
    assert clean["rows_in"].sum() == len(POSITIVE)
    assert clean["rows_out"].sum() == len(CLEAN)
    assert records(python_run.table("clean"), "id", "device", "reading") == records(
        pd.DataFrame(CLEAN), "id", "device", "reading"
    )


@pytest.mark.slow
def test_append_flows_fill_one_streaming_table_each_with_its_own_checkpoint(python_run: Run):
    settings, pipeline = python_run.settings, python_run.pipeline
    table = python_run.table("all_readings")

    expected = [{**row, "origin": "events"} for row in ALL_EVENTS]
    expected += [{**row, "origin": "backfill"} for row in BACKFILL]
    columns = ("id", "device", "reading", "origin")
    assert records(table, *columns) == records(pd.DataFrame(expected), *columns)
    assert {"from_events", "from_backfill"} <= {flow.spec.name for flow in python_run.flows}
    folder = Path(table_uri(settings, pipeline.name, "all_readings"))
    assert (folder / "_checkpoint_from_events").is_dir()
    assert (folder / "_checkpoint_from_backfill").is_dir()
    logged = python_run.log
    assert flow_rows(logged, "from_events")["rows_in"].sum() == len(ALL_EVENTS)
    assert flow_rows(logged, "from_backfill")["rows_in"].sum() == len(BACKFILL)


@pytest.mark.slow
def test_declared_table_settings_reach_the_delta_table(spark, python_run: Run):
    def detail(table: str):
        return spark.sql(f"DESCRIBE DETAIL lf.py.{table}").first()

    events, clean = detail("events"), detail("clean")
    assert events.description == "Events as they landed"
    assert events.properties["quality"] == "bronze"
    assert events.partitionColumns == ["device"]
    assert clean.clusteringColumns == ["device"]
    # create_streaming_table(schema=...) with no flow: an empty table of those columns.
    declared = spark.table("lf.py.declared_only").schema
    assert [(f.name, f.dataType.simpleString()) for f in declared.fields] == [
        ("device", "string"),
        ("reading", "double"),
    ]
    assert declared["device"].metadata.get("comment") == "the device"
    # spark_conf applies to the flow's query: its state has the partitions it asked for.
    settings, spec = python_run.settings, python_run.pipeline.specs["device_stats"]
    offsets = Path(runner.checkpoint(settings, spec)) / "offsets" / "0"
    metadata = json.loads(offsets.read_text().splitlines()[1])
    assert spec.spark_conf == {"spark.sql.shuffle.partitions": "3"}
    assert metadata["conf"]["spark.sql.shuffle.partitions"] == "3"


@pytest.mark.slow
def test_a_declared_schema_gives_the_table_its_column_comments(spark, python_run: Run):
    schema = spark.table("lf.py.totals").schema

    assert schema["n"].metadata.get("comment") == "rows in clean"


@pytest.mark.slow
def test_volume_paths_and_configuration_reach_pipeline_code(spark, python_run: Run):
    settings, pipeline = python_run.settings, python_run.pipeline
    landing = Path(volume_uri(settings, EVENTS_LANDING))

    assert landing.is_relative_to(Path(table_uri(settings)))
    assert sorted(path.name for path in landing.iterdir()) == ["events-1.json", "events-2.json"]
    assert len(python_run.table("events")) == len(ALL_EVENTS)
    # `spark.conf.get("max_reading")` at load time gave the drop rule its bound.
    rule = next(e for e in pipeline.specs["clean"].expectations if e.action == "drop")
    assert rule.condition == f"reading < {float(MAX_READING)}"
    assert pipeline.session.conf.get("events_landing") == EVENTS_LANDING
    assert spark.conf.get("events_landing") == EVENTS_LANDING


@pytest.mark.slow
def test_a_streaming_group_by_is_merged_on_its_keys_and_a_global_aggregate_rewritten(
    python_run: Run,
):
    pipeline, specs = python_run.pipeline, python_run.pipeline.specs

    assert write_mode(pipeline.call(specs["device_stats"])) == WriteMode("update", ("device",))
    assert write_mode(pipeline.call(specs["totals"])) == WriteMode("complete")
    clean = pd.DataFrame(CLEAN)
    stats = clean.groupby("device")["reading"].agg(n="count", top="max").reset_index()
    assert records(python_run.table("device_stats"), "device", "n", "top") == records(
        stats, "device", "n", "top"
    )
    # Several batches each merged their groups: one row per device all the same.
    assert len(flow_rows(python_run.log, "device_stats")) > 1
    uri = table_uri(python_run.settings, pipeline.name, "device_stats")
    assert "MERGE" in {entry["operation"] for entry in DeltaTable(uri).history()}
    totals = python_run.table("totals")
    assert totals.to_dict("records") == [
        {"n": len(CLEAN), "total": pytest.approx(clean["reading"].sum())}
    ]
    sums = clean.groupby("device")["reading"].sum().reset_index(name="total")
    assert records(python_run.table("device_totals"), "device", "total") == records(
        sums, "device", "total"
    )
    busiest = stats.sort_values(["n", "device"], ascending=[False, True]).iloc[0]
    assert python_run.table("busiest")["device"].tolist() == [busiest["device"]]
