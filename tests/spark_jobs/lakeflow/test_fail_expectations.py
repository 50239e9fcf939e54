"""A fail expectation, alone or in a group, stops its flow: the batch is not committed and
the error names the rule."""

from __future__ import annotations

import pytest

from spark_jobs import runner
from spark_jobs.quality import ExpectationFailed
from tests.support.lake import read_table
from tests.support.lakeflow import land_json, spark_pipeline_yml, write_folder
from tests.support.settings import settings_for

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
