"""Pipelines written as on Databricks run end to end on open-source Spark.

Each pipeline is a folder in a temporary directory, in the Databricks form: `import dlt` or
`from pyspark import pipelines as dp`, reads by dataset name, Auto Loader over `/Volumes/...`
landing paths, SQL files beside Python ones, `spark-pipeline.yml` or a `databricks.yml` bundle.
Files are the sources, so no broker is needed. A pipeline is run once per module (a module
fixture) and several tests look at what that run left: the tables (read with delta-rs), the
Delta metadata and the event log.
"""

from __future__ import annotations

import json
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
from deltalake import DeltaTable
from pyspark.sql import SparkSession

from iotlake.config import Settings
from spark_jobs import runner
from spark_jobs.flows import WriteMode, write_mode
from spark_jobs.io.storage import table_uri, volume_uri
from spark_jobs.lakeflow.job import run_job
from spark_jobs.lakeflow.loader import Pipeline, PipelineError
from spark_jobs.lakeflow.settings import PipelineSettingsError
from spark_jobs.lakeflow.sql import SqlPipelineError
from spark_jobs.quality import ExpectationFailed
from spark_jobs.runner import Flow
from tests.support.lake import read_table
from tests.support.settings import settings_for


def write_folder(folder: Path, files: dict[str, str]) -> Path:
    """Write `files` (relative name -> text, dedented) under `folder`; returns it."""
    for name, text in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"))
    return folder


def spark_pipeline_yml(name: str, catalog: str, database: str, configuration: dict) -> str:
    lines = [
        f"name: {name}",
        f"catalog: {catalog}",
        f"database: {database}",
        "libraries:",
        "  - glob:",
        "      include: transformations/**",
    ]
    if configuration:
        lines += ["configuration:", *(f"  {k}: {json.dumps(v)}" for k, v in configuration.items())]
    return "\n".join(lines) + "\n"


def land_json(folder: str | Path, name: str, rows: list[dict]) -> None:
    """One JSON-lines file in a landing folder."""
    path = Path(folder) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))


def flow_rows(log: pd.DataFrame, table: str) -> pd.DataFrame:
    """The event log's one-per-batch rows of a flow (not its expectation rows)."""
    return log[(log["table"] == table) & log["expectation"].isna()]


def failed(log: pd.DataFrame, table: str) -> dict[str, tuple[str, int]]:
    """Per expectation of a flow: its action and the rows that failed it over all batches."""
    rows = log[(log["table"] == table) & log["expectation"].notna()]
    grouped = rows.groupby(["expectation", "action"])["failed"].sum()
    return {name: (action, int(count)) for (name, action), count in grouped.items()}


def records(frame: pd.DataFrame, *columns: str) -> list[dict]:
    """Rows as dicts of `columns`, sorted, NaN as None: easy to compare with Python lists."""
    picked = frame[list(columns)].astype(object).where(frame[list(columns)].notna(), None)
    return sorted(picked.to_dict("records"), key=lambda row: [str(row[c]) for c in columns])


@dataclass
class Run:
    settings: Settings
    pipeline: Pipeline
    flows: list[Flow]
    lines: list[str]

    def table(self, name: str) -> pd.DataFrame:
        return read_table(self.settings, self.pipeline.name, name)

    @property
    def log(self) -> pd.DataFrame:
        return self.table("event_log")


# -- a Python pipeline: both imports, every read form, views, expectations, append flows ----

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
    pipeline = runner.load(folder, settings, spark)
    lines: list[str] = []
    flows = runner.run_once(spark, settings, pipeline, report=lines.append)
    print("\n".join(lines))
    return Run(settings, pipeline, flows, lines)


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


# -- a SQL file beside a Python one, in a bundle with targets and variables ----------------

SQL = "lakeflow_sql"
READINGS = [
    {"device": "a", "reading": 10.5},
    {"device": "b", "reading": -2.5},
    {"device": None, "reading": 3.5},
    {"device": "a", "reading": 120.5},
    {"device": "c", "reading": 7.5},
]
DEVICES = [
    {"device": "a", "site": "north"},
    {"device": "b", "site": "north"},
    {"device": "c", "site": "south"},
]
SMALL = 100
BUNDLE = """
    bundle:
      name: lakeflow_sql_bundle

    variables:
      landing:
        description: where the JSON files land
        default: /Volumes/lf/sqlmix/files/dev
      min_reading:
        default: 0

    resources:
      pipelines:
        readings:
          name: lakeflow_sql
          catalog: lf
          schema: sqlmix
          libraries:
            - glob:
                include: transformations/**
          configuration:
            landing: ${var.landing}
            min_reading: ${var.min_reading}

    targets:
      dev:
        default: true
      prod:
        variables:
          landing: /Volumes/lf/sqlmix/files/prod
    """
SQL_FILES = {
    "databricks.yml": BUNDLE,
    "transformations/readings.sql": f"""
        -- Bronze: JSON files read by Auto Loader, in both SQL spellings.
        CREATE OR REFRESH STREAMING TABLE readings_raw
        COMMENT 'Readings as they landed'
        AS SELECT * FROM cloud_files("${{landing}}/readings", "json");

        CREATE OR REFRESH STREAMING TABLE devices_raw
        AS SELECT device, site FROM STREAM read_files("${{landing}}/devices", format => "json");

        CREATE TEMPORARY VIEW positive
        AS SELECT device, reading FROM STREAM(LIVE.readings_raw) WHERE reading > ${{min_reading}};

        CREATE OR REFRESH STREAMING TABLE readings (
          CONSTRAINT device_named EXPECT (device IS NOT NULL) ON VIOLATION DROP ROW,
          CONSTRAINT reading_small EXPECT (reading < {SMALL})
        )
        TBLPROPERTIES ('quality' = 'silver')
        AS SELECT * FROM STREAM(LIVE.positive);

        CREATE OR REFRESH STREAMING TABLE device_ranking
        AS SELECT device, count(*) AS n FROM STREAM(LIVE.readings)
        GROUP BY device ORDER BY n DESC;

        -- Reads `devices`, a materialized view declared in Python.
        CREATE OR REFRESH MATERIALIZED VIEW site_totals
        AS SELECT d.site, sum(r.reading) AS total
        FROM LIVE.readings r JOIN LIVE.devices d ON r.device = d.device
        GROUP BY d.site;
        """,
    "transformations/devices.py": """
        from pyspark import pipelines as dp
        from pyspark.sql import functions as F


        @dp.materialized_view(comment="Devices with their site in capitals")
        def devices():
            return spark.read.table("devices_raw").select("device", F.upper("site").alias("site"))
        """,
}
PROD_LANDING = "/Volumes/lf/sqlmix/files/prod"


@pytest.fixture(scope="module")
def sql_run(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> Run:
    root = tmp_path_factory.mktemp("sql-pipeline")
    settings = settings_for(root)
    folder = write_folder(root / "pipeline", SQL_FILES)
    land_json(volume_uri(settings, f"{PROD_LANDING}/readings"), "1.json", READINGS)
    land_json(volume_uri(settings, f"{PROD_LANDING}/devices"), "1.json", DEVICES)
    pipeline = runner.load(folder, settings, spark, target="prod")
    lines: list[str] = []
    flows = runner.run_once(spark, settings, pipeline, report=lines.append)
    print("\n".join(lines))
    return Run(settings, pipeline, flows, lines)


@pytest.mark.slow
def test_a_bundle_target_picks_its_own_variable_values(sql_run: Run):
    definition = sql_run.pipeline.definition

    assert definition.target == "prod"
    assert sql_run.pipeline.configuration["landing"] == PROD_LANDING
    assert sql_run.pipeline.configuration["min_reading"] == "0"
    assert (sql_run.pipeline.catalog, sql_run.pipeline.schema) == ("lf", "sqlmix")


@pytest.mark.slow
def test_sql_datasets_run_beside_python_ones_with_their_expectations(spark, sql_run: Run):
    specs, log = sql_run.pipeline.specs, sql_run.log
    positive = [row for row in READINGS if row["reading"] > 0]
    kept = [row for row in positive if row["device"] is not None]

    kinds = {name: spec.kind for name, spec in specs.items()}
    assert kinds == {
        "readings_raw": "streaming",
        "devices_raw": "streaming",
        "positive": "view",
        "readings": "streaming",
        "device_ranking": "streaming",
        "site_totals": "materialized",
        "devices": "materialized",
    }
    assert specs["site_totals"].upstream == ("devices", "readings")
    assert specs["devices"].upstream == ("devices_raw",)
    assert specs["readings"].upstream == ("readings_raw",)
    # cloud_files and STREAM read_files, with ${landing} from the prod target's variable.
    raw = sql_run.table("readings_raw")
    assert records(raw, "device", "reading") == records(pd.DataFrame(READINGS), "device", "reading")
    assert records(sql_run.table("devices_raw"), "device", "site") == records(
        pd.DataFrame(DEVICES), "device", "site"
    )
    assert records(sql_run.table("readings"), "device", "reading") == records(
        pd.DataFrame(kept), "device", "reading"
    )
    assert failed(log, "readings") == {
        "device_named": ("drop", len(positive) - len(kept)),
        "reading_small": ("warn", sum(row["reading"] >= SMALL for row in kept)),
    }
    assert not Path(table_uri(sql_run.settings, SQL, "positive")).exists()
    detail = spark.sql("DESCRIBE DETAIL lf.sqlmix.readings_raw").first()
    assert detail.description == "Readings as they landed"
    assert spark.sql("DESCRIBE DETAIL lf.sqlmix.readings").first().properties == {
        "quality": "silver"
    }
    # The ordered aggregate is rewritten whole; the MV joins SQL and Python datasets.
    ranking = sql_run.table("device_ranking")
    counts = pd.DataFrame(kept)["device"].value_counts()
    assert dict(zip(ranking["device"], ranking["n"], strict=True)) == counts.to_dict()
    assert write_mode(sql_run.pipeline.call(specs["device_ranking"])).mode == "complete"
    sites = {row["device"]: row["site"].upper() for row in DEVICES}
    totals: dict[str, float] = {}
    for row in kept:
        totals[sites[row["device"]]] = totals.get(sites[row["device"]], 0) + row["reading"]
    site_totals = sql_run.table("site_totals")
    assert dict(zip(site_totals["site"], site_totals["total"], strict=True)) == totals


# -- a fail expectation stops its flow ---------------------------------------------------

FAILING = {
    "expect_or_fail": '@dlt.expect_or_fail("reading present", "reading IS NOT NULL")',
    "expect_all_or_fail": '@dlt.expect_all_or_fail({"reading present": "reading IS NOT NULL"})',
}


@pytest.mark.slow
@pytest.mark.parametrize("decorator", FAILING.values(), ids=FAILING.keys())
def test_a_fail_expectation_stops_the_flow_naming_the_rule(spark, tmp_path, decorator):
    settings = settings_for(tmp_path)
    landing = tmp_path / "landing"
    land_json(landing, "1.json", [{"id": 1, "reading": 1.5}, {"id": 2, "reading": None}])
    code = f"""
        import dlt


        @dlt.table
        {decorator}
        def checked():
            return (
                spark.readStream.format("json")
                .schema("id INT, reading DOUBLE")
                .load(spark.conf.get("landing"))
            )
        """
    folder = write_folder(
        tmp_path / "pipeline",
        {
            "spark-pipeline.yml": spark_pipeline_yml(
                "failing", "lf", "failing", {"landing": str(landing)}
            ),
            "transformations/checked.py": code,
        },
    )
    pipeline = runner.load(folder, settings, spark)

    with pytest.raises(ExpectationFailed, match="reading present"):
        runner.run_once(spark, settings, pipeline)
    assert read_table(settings, "failing", "checked").empty  # the batch was not committed


# -- `iotlake job run`: a plain streaming script ------------------------------------------

JOB = """
    landing = spark.conf.get("landing")
    checkpoints = spark.conf.get("checkpoints")
    spark.sql("CREATE SCHEMA IF NOT EXISTS jobcat.sensors")  # as on Databricks: no schema, no table

    (
        spark.readStream.format("json")
        .schema("device STRING, reading DOUBLE")
        .load(landing)
        .writeStream.format("delta")
        .option("checkpointLocation", f"{checkpoints}/json")
        .trigger(availableNow=True)
        .toTable("jobcat.sensors.readings")
        .awaitTermination()
    )
    (
        spark.readStream.format("cloudFiles")
        .option("cloudFiles.format", "json")
        .load("/Volumes/jobcat/sensors/landing/readings")
        .writeStream.format("delta")
        .option("checkpointLocation", f"{checkpoints}/autoloader")
        .trigger(availableNow=True)
        .toTable("jobcat.sensors.loaded")
        .awaitTermination()
    )
    """


@pytest.mark.slow
def test_a_job_script_streams_files_into_tables_named_by_three_parts(
    spark, stack_settings: Settings, tmp_path
):
    # The session's own settings: a table a job creates by name is a managed table of the
    # session's lake (its warehouse), as `iotlake job run` builds the session.
    settings = stack_settings
    landing = tmp_path / "landing"
    land_json(landing, "1.json", READINGS)
    land_json(volume_uri(settings, "/Volumes/jobcat/sensors/landing/readings"), "1.json", DEVICES)
    script = write_folder(tmp_path / "job", {"stream.py": JOB}) / "stream.py"

    run_job(
        spark,
        settings,
        script,
        conf={"landing": str(landing), "checkpoints": str(tmp_path / "checkpoints")},
    )

    readings = spark.read.table("jobcat.sensors.readings").toPandas()
    assert records(readings, "device", "reading") == records(
        pd.DataFrame(READINGS), "device", "reading"
    )
    loaded = spark.read.table("jobcat.sensors.loaded").toPandas()
    assert records(loaded, "device", "site") == records(pd.DataFrame(DEVICES), "device", "site")
    for table in ("readings", "loaded"):
        location = spark.sql(f"DESCRIBE DETAIL jobcat.sensors.{table}").first().location
        assert location.removeprefix("file:") == table_uri(settings, "jobcat__sensors.db", table)


# -- one-line errors naming the file and the fix ----------------------------------------

ERRORS = {
    "parameter": (
        PipelineError,
        {
            "transformations/t.py": """
                import dlt


                @dlt.table
                def t(readings):
                    return readings
                """
        },
        ["t.py", "parameter 'readings'", "dlt.read_stream"],
    ),
    "declared twice": (
        PipelineError,
        {
            "transformations/a.py": """
                import dlt


                @dlt.table
                def t():
                    return spark.range(1)
                """,
            "transformations/b.py": """
                from pyspark import pipelines as dp


                @dp.materialized_view(name="t")
                def other():
                    return spark.range(1)
                """,
        },
        ["b.py", "'t' is declared twice", "another name"],
    ),
    "cycle": (
        PipelineError,
        {
            "transformations/t.py": """
                import dlt


                @dlt.table
                def a():
                    return dlt.read_stream("b")


                @dlt.table
                def b():
                    return spark.readStream.table("a")
                """
        },
        ["t.py", "cycle", "a -> b -> a"],
    ),
    "apply changes": (
        SqlPipelineError,
        {
            "transformations/t.sql": """
                CREATE OR REFRESH STREAMING TABLE t AS SELECT * FROM STREAM(LIVE.s);

                APPLY CHANGES INTO LIVE.t FROM STREAM(LIVE.s) KEYS (id) SEQUENCE BY ts;
                """
        },
        ["t.sql:3", "APPLY CHANGES INTO is not supported", "MATERIALIZED VIEW"],
    ),
    "unknown placeholder": (
        PipelineError,
        {
            "transformations/t.sql": """
                CREATE OR REFRESH MATERIALIZED VIEW t
                AS SELECT * FROM range(${rows});
                """
        },
        ["t.sql:2", "${rows}", "configuration:"],
    ),
    "unknown target": (
        PipelineSettingsError,
        {"databricks.yml": BUNDLE, "transformations/t.sql": "SELECT 1"},
        ["databricks.yml", "target 'staging' is not defined", "pass -t"],
    ),
}


@pytest.mark.parametrize(("error", "files", "says"), ERRORS.values(), ids=ERRORS.keys())
def test_a_pipeline_that_cannot_run_is_refused_in_one_line_naming_file_and_fix(
    spark, tmp_path, error, files, says
):
    settings = settings_for(tmp_path)
    files = {"spark-pipeline.yml": spark_pipeline_yml("broken", "lf", "broken", {}), **files}
    if "databricks.yml" in files:
        del files["spark-pipeline.yml"]
    folder = write_folder(tmp_path / "pipeline", files)
    target = "staging" if "databricks.yml" in files else None

    with pytest.raises(error) as caught:
        runner.load(folder, settings, spark, target=target).resolve_all()

    message = str(caught.value)
    assert "\n" not in message
    assert "; " in message  # the problem, then the fix
    for part in says:
        assert part in message


def test_a_lakeflow_function_iotlake_does_not_run_is_refused_at_its_line(tmp_path):
    settings = settings_for(tmp_path)
    code = """
        import dlt

        dlt.create_streaming_table("target")
        dlt.create_auto_cdc_flow(target="target", source="changes", keys=["id"])
        """
    files = {
        "spark-pipeline.yml": spark_pipeline_yml("cdc", "lf", "cdc", {}),
        "transformations/cdc.py": code,
    }
    folder = write_folder(tmp_path / "pipeline", files)

    with pytest.raises(PipelineError) as caught:
        runner.load(folder, settings)

    message = str(caught.value)
    assert "cdc.py:4: dlt.create_auto_cdc_flow is not supported" in message
    assert "DeltaTable.merge" in message
