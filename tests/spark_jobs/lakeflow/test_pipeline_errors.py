"""A pipeline that cannot run is refused in one line that names the file and the fix."""

from __future__ import annotations

import pytest

from spark_jobs import runner
from spark_jobs.lakeflow.loader import PipelineError
from spark_jobs.lakeflow.settings import PipelineSettingsError
from spark_jobs.lakeflow.sql import SqlPipelineError
from tests.support.lakeflow import BUNDLE, spark_pipeline_yml, write_folder
from tests.support.settings import settings_for

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
