"""`spark` as pipeline and job code sees it: Spark's session, read the Databricks way.

Reads by table name resolve through the pipeline (its datasets, then the lake's catalog);
`/Volumes/...` paths are folders of the lake; `format("kinesis")` and `format("cloudFiles")`
get what a Databricks workspace supplies itself (the emulator's endpoint and keys, S3 options,
Auto Loader's schema location); `spark.conf.get` sees the pipeline's configuration first.
Everything else is the session itself.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from pyspark.sql import DataFrame

from spark_jobs.io.storage import volume_uri
from spark_jobs.lakeflow.api import PipelineError

if TYPE_CHECKING:
    from spark_jobs.lakeflow.loader import Pipeline

_MISSING = object()


class PipelineConf:
    """`spark.conf` in pipeline code: the pipeline's `configuration` first, then Spark's."""

    def __init__(self, pipeline: Pipeline):
        self._pipeline = pipeline

    def get(self, key: str, default: Any = _MISSING) -> Any:
        if key in self._pipeline.configuration:
            return self._pipeline.configuration[key]
        spark = self._pipeline.spark
        if spark is not None:
            return spark.conf.get(key) if default is _MISSING else spark.conf.get(key, default)
        if default is _MISSING:
            raise PipelineError(
                f"pipeline {self._pipeline.name}: configuration '{key}' is not set; add it "
                "under `configuration:` in the pipeline's settings"
            )
        return default

    def set(self, key: str, value: Any) -> None:
        self._pipeline.configuration[key] = str(value)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._pipeline._require_spark().conf, name)


class PipelineReader:
    """`spark.read` / `spark.readStream` in pipeline code: tables by pipeline names,
    `/Volumes/...` paths in the lake, iotlake's endpoints for `kinesis` and `cloudFiles`."""

    def __init__(self, pipeline: Pipeline, streaming: bool):
        self._pipeline = pipeline
        self._streaming = streaming
        spark = pipeline._require_spark()
        self._reader = spark.readStream if streaming else spark.read
        self._format = ""
        self._options: dict[str, str] = {}

    def format(self, source: str) -> PipelineReader:
        self._format = source.lower()
        self._reader = self._reader.format(source)
        return self

    def option(self, key: str, value: Any) -> PipelineReader:
        self._options[key.lower()] = value
        if key.lower() == "cloudfiles.schemalocation":
            value = self._pipeline.local_path(value)
        self._reader = self._reader.option(key, self._pipeline.path(value))
        return self

    def options(self, **options: Any) -> PipelineReader:
        for key, value in options.items():
            self.option(key, value)
        return self

    def schema(self, schema: Any) -> PipelineReader:
        self._reader = self._reader.schema(schema)
        return self

    def table(self, name: str) -> DataFrame:
        return self._pipeline.read(name, self._streaming, self._reader, self._options)

    def load(self, path: str | None = None, format: str | None = None, **options: Any) -> DataFrame:
        if format:
            self.format(format)
        self.options(**options)
        if path is not None:
            self.option("path", path)
        for key, value in _defaults(self._pipeline, self._format, self._options).items():
            self._reader = self._reader.option(key, value)
        return self._reader.load()

    def __getattr__(self, name: str) -> Callable[..., DataFrame]:
        """`csv(path)`, `json(path)`, `parquet(path)`...: the path mapped, then Spark's."""
        method = getattr(self._reader, name)

        def mapped(path: Any = None, *args: Any, **kwargs: Any) -> DataFrame:
            frame: DataFrame = method(self._pipeline.path(path), *args, **kwargs)
            return frame

        return mapped


def _defaults(pipeline: Pipeline, source: str, given: Mapping[str, Any]) -> dict[str, str]:
    """Options a Databricks workspace supplies itself: where Kinesis and S3 are, and where
    Auto Loader keeps a pipeline's inferred schemas."""
    from spark_jobs.io.kinesis import kinesis_options
    from spark_jobs.io.storage import (
        STORAGE_OPTIONS_KEY,
        encode_options,
        schema_location,
        storage_options,
    )

    settings = pipeline.settings
    if source == "kinesis":
        local = kinesis_options(settings, str(given.get("streamname", "")))
        return {k: v for k, v in local.items() if k.lower() not in given and k != "streamName"}
    if source != "cloudfiles":
        return {}
    defaults = {}
    if STORAGE_OPTIONS_KEY.lower() not in given:
        path = volume_uri(settings, str(given.get("path", "")))
        defaults[STORAGE_OPTIONS_KEY] = encode_options(storage_options(settings, path))
    if "cloudfiles.schemalocation" not in given:
        defaults["cloudFiles.schemaLocation"] = schema_location(
            settings, pipeline.name, pipeline.calling()
        )
    return defaults


class PipelineSession:
    """The global `spark` of pipeline code: Spark's session, with reads and `conf` resolved
    the pipeline's way. Everything else is the session itself."""

    def __init__(self, pipeline: Pipeline):
        self._pipeline = pipeline

    @property
    def readStream(self) -> PipelineReader:  # noqa: N802 - Spark's name
        return PipelineReader(self._pipeline, streaming=True)

    @property
    def read(self) -> PipelineReader:
        return PipelineReader(self._pipeline, streaming=False)

    @property
    def conf(self) -> PipelineConf:
        return PipelineConf(self._pipeline)

    def table(self, name: str) -> DataFrame:
        return self._pipeline.read(name, streaming=False)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._pipeline._require_spark(), name)
