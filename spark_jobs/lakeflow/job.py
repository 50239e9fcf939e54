"""A notebook's streaming code run as a job: a plain PySpark script given a configured `spark`.

The script runs as `__main__` with a global `spark` that is iotlake's session seen the way a
Databricks cluster shows it: `format("kinesis")` and `format("cloudFiles")` reach the local
emulator and lake without endpoint options, `/Volumes/...` paths are folders of the lake,
three-part names such as `data_pipelines.kafka_table.pir_stream_test` are tables of the lake,
and `spark.conf.get(...)` sees iotlake's values (`kafka_bootstrap_servers`, every setting as
`<section>_<key>`) and the `--conf` pairs given.
"""

from __future__ import annotations

import re
import runpy
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pyspark.sql import SparkSession
from pyspark.sql.readwriter import DataFrameWriter
from pyspark.sql.streaming.readwriter import DataStreamWriter

from iotlake.config import Settings
from spark_jobs import JavaObject, catalog
from spark_jobs.lakeflow.loader import Pipeline, provided_variables
from spark_jobs.lakeflow.settings import PipelineSettings

# A string literal that reads as `catalog.schema.table`.
_THREE_PART = re.compile(r"""["'`]([A-Za-z_]\w*)\.[A-Za-z_]\w*\.[A-Za-z_]\w*["'`]""")


def job_pipeline(
    spark: SparkSession, settings: Settings, path: Path, conf: Mapping[str, str]
) -> Pipeline:
    """The job's view of the session: a pipeline with no datasets of its own."""
    definition = PipelineSettings(
        name=path.stem,
        root=path.parent,
        libraries=(),
        catalog=None,
        schema=None,
        configuration={**provided_variables(settings), **conf},
        continuous=False,
        target=None,
        source=path,
    )
    pipeline = Pipeline(definition, settings, spark)
    pipeline.job = True
    return pipeline


def run_job(
    spark: SparkSession, settings: Settings, path: Path, conf: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Run the script to its end (a streaming job's end is its `awaitTermination()`);
    returns its globals. Catalogs its string literals name are made resolvable first."""
    text = path.read_text()
    catalog.use_catalogs(spark, sorted(set(_THREE_PART.findall(text))))
    pipeline = job_pipeline(spark, settings, path, conf or {})
    # Delta looks tables up through the JVM thread's active session; a job run on another
    # thread than the one that built the session (a test, a scheduler) has none.
    jvm: JavaObject = spark._jvm
    jvm.org.apache.spark.sql.SparkSession.setActiveSession(spark._jsparkSession)
    with _volumes_in_writers(pipeline.path):
        return runpy.run_path(
            str(path), init_globals={"spark": pipeline.session}, run_name="__main__"
        )


@contextmanager
def _volumes_in_writers(mapped: Callable[[Any], Any]) -> Iterator[None]:
    """While the job runs, a writer's `/Volumes/...` path or option (a checkpoint location)
    is the volume's folder too, as its readers' are."""
    patched = [
        (DataStreamWriter, "option"),
        (DataFrameWriter, "option"),
        (DataStreamWriter, "start"),
        (DataFrameWriter, "save"),
    ]
    saved = {(owner, name): getattr(owner, name) for owner, name in patched}

    def option(original: Callable[..., Any]) -> Callable[..., Any]:
        return lambda self, key, value: original(self, key, mapped(value))

    def with_path(original: Callable[..., Any]) -> Callable[..., Any]:
        return lambda self, path=None, *args, **kwargs: original(
            self, mapped(path), *args, **kwargs
        )

    for owner, name in patched:
        wrap = option if name == "option" else with_path
        setattr(owner, name, wrap(saved[(owner, name)]))
    try:
        yield
    finally:
        for (owner, name), original in saved.items():
            setattr(owner, name, original)
