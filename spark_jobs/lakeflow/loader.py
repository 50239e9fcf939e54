"""A pipeline folder loaded as Lakeflow loads it: settings, Python and SQL files, one graph.

`load_pipeline` reads the settings (`databricks.yml` or `spark-pipeline.yml`), then runs each
library file: Python files with `dlt` and `pyspark.pipelines` bound to `api` and a global
`spark` (a `PipelineSession`), SQL files through `sql`. Nothing runs yet: the files only
declare datasets. `Pipeline.resolve` then calls each dataset's function once, upstream
first, and records what it reads (`read`, `read_stream`, `spark.readStream.table`, a SQL
query's tables): that is the dependency graph the runner orders its flows by, as Lakeflow
finds it. Names resolve as there: a bare name or `LIVE.x` is a dataset of this pipeline or a
table of its default catalog and schema; `catalog.schema.table` is any table of the lake.
"""

from __future__ import annotations

import importlib.util
import inspect
import re
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyspark
from pyspark.sql import DataFrame, SparkSession

from iotlake.config import Settings
from spark_jobs import catalog
from spark_jobs.io.storage import volume_uri
from spark_jobs.lakeflow import api, sql
from spark_jobs.lakeflow.api import PipelineError
from spark_jobs.lakeflow.session import PipelineSession
from spark_jobs.lakeflow.settings import PipelineSettings, read_settings

DEFAULT_CATALOG = "main"
_PLACEHOLDER = re.compile(r"\$\{([\w.]+)\}")
_MISSING = object()


def provided_variables(settings: Settings) -> dict[str, str]:
    """Values iotlake gives a bundle's declared variables (a target's own values win): every
    setting as `<section>_<key>` (`seismograph_transport`, `kafka_port`...), and
    `kafka_bootstrap_servers`, the local broker. Credentials are never among them."""
    provided = {"kafka_bootstrap_servers": settings.kafka.bootstrap_servers}
    for section, values in settings.model_dump(exclude={"aws"}).items():
        if isinstance(values, dict):
            for key, value in values.items():
                if isinstance(value, str | int | float | bool):
                    provided[f"{section}_{key}"] = (
                        str(value).lower() if isinstance(value, bool) else str(value)
                    )
    return provided


@contextmanager
def _as_lakeflow() -> Iterator[None]:
    """`import dlt` and `from pyspark import pipelines` give iotlake's API while files load."""
    saved = {name: sys.modules.get(name) for name in ("dlt", "pyspark.pipelines")}
    saved_attribute = getattr(pyspark, "pipelines", _MISSING)
    sys.modules["dlt"] = sys.modules["pyspark.pipelines"] = api
    pyspark.pipelines = api  # type: ignore[attr-defined]
    try:
        yield
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module
        if saved_attribute is _MISSING:
            del pyspark.pipelines  # type: ignore[attr-defined]
        else:
            pyspark.pipelines = saved_attribute  # type: ignore[attr-defined]


class Pipeline:
    """The datasets of one pipeline, how their names resolve, and who reads what."""

    def __init__(
        self, definition: PipelineSettings, settings: Settings, spark: SparkSession | None
    ):
        self.definition = definition
        self.name = definition.name
        self.settings = settings
        self.spark = spark
        self.catalog = definition.catalog or DEFAULT_CATALOG
        self.schema = definition.schema or re.sub(r"\W", "_", definition.name)
        self.configuration = dict(definition.configuration)
        self.specs: dict[str, api.TableSpec] = {}
        self.session = PipelineSession(self)
        self._file: Path | None = None
        self._done: set[str] = set()
        self._stack: list[str] = []
        self._local = threading.local()
        self._sql_lock = threading.RLock()
        # A job (`iotlake job run`) has no datasets: its bare names are Spark's own.
        self.job = False

    # -- declaring ---------------------------------------------------------------------

    def declare(self, spec: api.TableSpec) -> None:
        """Called by the API's decorators while a file of this pipeline loads."""
        if spec.name in self.specs:
            raise PipelineError(
                f"{self._where()}: '{spec.name}' is declared twice in pipeline {self.name}; "
                "give one of them another name"
            )
        spec.system, spec.catalog, spec.schema_name = self.name, self.catalog, self.schema
        spec.file = self._where()
        if self._file is not None:
            relative = self._file.relative_to(self.definition.root)
            spec.layer = relative.parts[0] if len(relative.parts) > 1 else ""
        self.specs[spec.name] = spec

    def _where(self) -> str:
        return str(self._file) if self._file else self.name

    def load_files(self) -> None:
        """Run every library file in order; each declares its datasets."""
        root = str(self.definition.root)
        if root not in sys.path:
            sys.path.insert(0, root)  # helpers beside the files import as on Databricks
        with _as_lakeflow():
            for path in self.definition.libraries:
                self._file = path
                previous, api.registry.loading = api.registry.loading, self
                try:
                    if path.suffix == ".sql":
                        self._load_sql(path)
                    else:
                        self._load_python(path)
                finally:
                    api.registry.loading = previous
                    self._file = None
        self._ship_modules()
        self._check_parameters()
        for spec in self.specs.values():
            if spec.is_flow and spec.target in self.specs:
                spec.path = self.specs[spec.target].path
            elif spec.is_flow:
                raise PipelineError(
                    f"{spec.file}: append_flow '{spec.name}' targets '{spec.target}', which is "
                    f"not declared; add dlt.create_streaming_table('{spec.target}')"
                )

    def _ship_modules(self) -> None:
        """Functions of the pipeline's files and of modules beside them (a UDF, say) travel
        to Spark's Python workers by value: those modules are not importable there."""
        from pyspark import cloudpickle

        root = self.definition.root.resolve()
        for module in list(sys.modules.values()):
            file = getattr(module, "__file__", None)
            if file and Path(file).resolve().is_relative_to(root):
                cloudpickle.register_pickle_by_value(module)

    def _load_python(self, path: Path) -> None:
        unique = re.sub(r"\W", "_", f"{self.name}_{len(self.specs)}_{path.stem}")
        module_name = f"lakeflow_{unique}"
        spec = importlib.util.spec_from_file_location(module_name, path)
        if spec is None or spec.loader is None:
            raise PipelineError(f"{path}: not a Python file")
        module = importlib.util.module_from_spec(spec)
        module.spark = self.session  # type: ignore[attr-defined]
        sys.modules[module_name] = module
        try:
            spec.loader.exec_module(module)
        except NotImplementedError as error:  # a Lakeflow function iotlake refuses (api)
            raise PipelineError(str(error)) from None

    def _load_sql(self, path: Path) -> None:
        parsed = sql.parse_text(self._substituted(path), str(path))
        self.configuration |= parsed.configuration
        for dataset in parsed.datasets:
            kinds: dict[str, api.Kind] = {
                "streaming_table": "streaming",
                "materialized_view": "materialized",
                "temporary_view": "view",
            }
            kind = kinds[dataset.kind]
            spec = api.TableSpec(
                name=dataset.name.split(".")[-1],
                system="",
                kind=kind,
                function=self._sql_function(dataset),
                comment=dataset.comment or "",
                table_properties=dict(dataset.table_properties),
                partition_by=tuple(dataset.partition_cols),
                cluster_by=tuple(dataset.cluster_by),
                path=dataset.location,
                schema=dataset.schema,
                declared_expectations=tuple(
                    api.Expectation(e.name, e.condition, e.action) for e in dataset.expectations
                ),
            )
            self.declare(spec)
            spec.file = f"{path}:{dataset.line}"

    def _substituted(self, path: Path) -> str:
        """The file with `${key}` replaced by the configuration's value, as Lakeflow does."""
        lines = path.read_text().splitlines(keepends=True)
        for number, line in enumerate(lines, 1):
            for key in _PLACEHOLDER.findall(line):
                if key not in self.configuration:
                    raise PipelineError(
                        f"{path}:{number}: ${{{key}}} is not in the pipeline's configuration; "
                        f"add `{key}: <value>` under `configuration:` in its settings"
                    )
            lines[number - 1] = _PLACEHOLDER.sub(lambda m: self.configuration[m[1]], line)
        return "".join(lines)

    # -- names -------------------------------------------------------------------------

    def local_name(self, name: str) -> str | None:
        """The dataset of this pipeline `name` means, or None for a table outside it."""
        parts = [part.strip("`") for part in name.split(".")]
        if len(parts) == 2 and parts[0].lower() == "live":
            parts = parts[1:]
        if len(parts) == 2 and parts[0] == self.schema:
            parts = parts[1:]
        if len(parts) == 3 and parts[:2] == [self.catalog, self.schema]:
            parts = parts[2:]
        if len(parts) == 1 and parts[0] in self.specs:
            return parts[0]
        return None

    def qualified(self, name: str) -> str:
        """Three-part name of a table: a bare or two-part name gets the pipeline's defaults."""
        if self.job:
            return name
        parts = [part.strip("`") for part in name.split(".")]
        if len(parts) == 1:
            parts = [self.catalog, self.schema, *parts]
        elif len(parts) == 2:
            parts = [self.catalog, *parts]
        return ".".join(f"`{part}`" for part in parts)

    def path(self, value: Any) -> Any:
        """`/Volumes/<catalog>/<schema>/<volume>/...` as its folder in the lake."""
        if isinstance(value, str) and value.startswith("/Volumes/"):
            return volume_uri(self.settings, value)
        return value

    def local_path(self, value: Any) -> Any:
        """A volume path Spark's driver must write locally (Auto Loader's schemas): under the
        state directory when the lake is in S3."""
        from spark_jobs.io.storage import is_local

        remote = not is_local(self.settings.lake_root)
        if remote and isinstance(value, str) and value.startswith("/Volumes/"):
            return str((self.settings.state_dir / value.removeprefix("/")).resolve())
        return value

    # -- reading -----------------------------------------------------------------------

    def read(
        self,
        name: str,
        streaming: bool,
        reader: Any = None,
        options: Mapping[str, str] | None = None,
    ) -> DataFrame:
        """What `dlt.read(_stream)` and `spark.read(Stream).table` return inside pipeline code.

        A dataset of this pipeline is resolved first (its table then exists) and counted as
        an upstream of the function being called; a view is computed in place. A read with
        options that change what it returns (`startingVersion`, `skipChangeCommits`...) is
        never handed an upstream's batch rows instead (rate limits only pace a query).
        """
        spark = self._require_spark()
        short = self.local_name(name)
        overrides: dict[str, DataFrame] = getattr(self._local, "rows", {})
        if short is not None and short in overrides and set(options or {}) <= _PACING:
            self._note(short)
            self._local.used = True
            return overrides[short]
        if reader is None:
            reader = spark.readStream if streaming else spark.read
        if short is None:
            frame: DataFrame = reader.table(self.qualified(name))
            return frame
        spec = self.specs[short]
        if spec.is_view:
            frame = self.call(spec)
            for upstream in spec.upstream:
                self._note(upstream)
            return frame
        self._note(short)
        self.resolve(short)  # creates and names its table, once per load
        table: DataFrame = reader.table(catalog.table_name(spec))
        return table

    def _note(self, name: str) -> None:
        reads: list[set[str]] = getattr(self._local, "reads", [])
        if reads:
            reads[-1].add(name)

    def _require_spark(self) -> SparkSession:
        if self.spark is None:
            raise PipelineError(f"{self._where()}: reading data needs a Spark session")
        return self.spark

    def call(self, spec: api.TableSpec, rows: Mapping[str, DataFrame] | None = None) -> DataFrame:
        """Run a dataset's function; with `rows`, reads of those names return them (a chained
        table computed from its upstream's micro-batch). Records what it read."""
        if spec.function is None:
            raise PipelineError(f"{spec.file}: '{spec.name}' has no query to run")
        reads = getattr(self._local, "reads", [])
        self._local.reads = [*reads, set()]
        saved_rows = getattr(self._local, "rows", {})
        if rows is not None:  # else a view read inside a chained call sees the caller's rows
            self._local.rows, self._local.used = dict(rows), False
        calling, self._local.calling = getattr(self._local, "calling", None), spec.name
        previous, api.registry.running = api.registry.running, self
        try:
            frame = spec.function(**self._arguments(spec))
        finally:
            api.registry.running = previous
            self._local.calling = calling
            found = self._local.reads.pop()
            self._local.rows = saved_rows
        if not isinstance(frame, DataFrame):
            raise PipelineError(
                f"{spec.file}: '{spec.name}' returned {type(frame).__name__}; "
                "a dataset's function returns a DataFrame"
            )
        if rows is None:
            spec.upstream = tuple(sorted(found - {spec.name}))
        return frame

    def calling(self) -> str:
        """The dataset whose function runs on this thread (names its Auto Loader schemas)."""
        return getattr(self._local, "calling", None) or self.name

    def consumed_rows(self) -> bool:
        """Whether the last `call` with `rows` read them (else it read its source itself)."""
        return bool(getattr(self._local, "used", False))

    def _arguments(self, spec: api.TableSpec) -> dict[str, Any]:
        """iotlake's convenience: parameters named `spark` or after a dataset are passed in."""
        return {
            name: self.session
            if name == "spark"
            else self.read(name, streaming=not spec.materialized)
            for name in inspect.signature(spec.function).parameters  # type: ignore[arg-type]
        }

    def _check_parameters(self) -> None:
        """Refuse, when the files load, a parameter iotlake could not pass."""
        for spec in self.specs.values():
            if spec.function is None:
                continue
            for name in inspect.signature(spec.function).parameters:
                if name != "spark" and name not in self.specs:
                    raise PipelineError(
                        f"{spec.file}: parameter '{name}' of {spec.name} is neither `spark` "
                        f"nor a dataset of {self.name}; read upstream data with "
                        "dlt.read_stream('<name>') instead"
                    )

    # -- resolving ---------------------------------------------------------------------

    def resolve(self, target: str) -> None:
        """Compute the flows into `target` once, create its table, and record its upstream."""
        if target in self._done:
            return
        if target in self._stack:
            cycle = " -> ".join([*self._stack[self._stack.index(target) :], target])
            raise PipelineError(
                f"{self.specs[target].file}: datasets read each other in a cycle: {cycle}; "
                "make one of them read a table outside the cycle"
            )
        self._stack.append(target)
        try:
            table = self.specs[target]
            flows = [
                spec for spec in self.specs.values() if spec.target == target and spec.function
            ]
            for flow in flows:
                frame = self.call(flow)
                if flow.kind == "table":
                    flow.kind = "streaming" if frame.isStreaming else "materialized"
                if not table.is_view:
                    catalog.ensure_table(
                        self._require_spark(), self.settings, table, declared_or(table, frame)
                    )
            if not flows:
                if table.schema is None:
                    raise PipelineError(
                        f"{table.file}: streaming table '{target}' has no schema and no "
                        "append_flow into it; add @dlt.append_flow(target=...) or schema="
                    )
                catalog.ensure_table(self._require_spark(), self.settings, table, None)
        finally:
            self._stack.pop()
        self._done.add(target)

    def resolve_all(self) -> list[api.TableSpec]:
        """Every flow that writes a table, upstream first (views are computed in readers)."""
        for name in sorted(self.specs):
            self.resolve(self.specs[name].target)
        ordered: list[api.TableSpec] = []
        seen: set[str] = set()

        def visit(spec: api.TableSpec) -> None:
            if spec.name in seen:
                return
            seen.add(spec.name)
            for upstream in spec.upstream:
                for flow in self.specs.values():
                    if flow.target == upstream:
                        visit(flow)
            if spec.function is not None and not spec.is_view:
                ordered.append(spec)

        for name in sorted(self.specs):
            visit(self.specs[name])
        return ordered

    def frame(self, spec: api.TableSpec) -> DataFrame:
        """The flow's DataFrame, built anew: an upstream table or a source may have gained
        columns since the graph was resolved, and a query must start from today's schema."""
        return self.call(spec)

    # -- SQL ---------------------------------------------------------------------------

    def _sql_function(self, dataset: sql.SqlDataset) -> Callable[[], DataFrame]:
        """A SQL dataset as a function: its inputs become temporary views for its query."""

        def run() -> DataFrame:
            spark = self._require_spark()
            with self._sql_lock:
                frames: dict[str, DataFrame] = {}
                for source in dataset.file_sources:
                    reader = self.session.readStream if source.streaming else self.session.read
                    frames[source.view] = (
                        reader.format("cloudFiles" if source.streaming else source.format)
                        .options(**_file_options(source))
                        .load(source.path)
                    )
                for parts, streaming in sql.referenced_tables(spark, dataset.query):
                    name = ".".join(parts)
                    if name in frames or self.local_name(name) is None:
                        continue  # another table: the query reads it through the catalog
                    frames[name] = self.read(name, streaming)
                chained = any(not frame.isStreaming for frame in frames.values())
                session = next(iter(frames.values())).sparkSession if frames else spark
                for view, frame in frames.items():
                    frame.createOrReplaceTempView(view)
                try:
                    return session.sql(dataset.batch_query if chained else dataset.query)
                finally:
                    for view in frames:
                        session.catalog.dropTempView(view)

        run.__name__ = dataset.name.split(".")[-1]
        return run


def _file_options(source: sql.FileSource) -> dict[str, str]:
    options = dict(source.options)
    if source.streaming:
        options.setdefault("cloudFiles.format", source.format)
    return options


# Reader options that only pace a streaming query, not what it reads.
_PACING = {"maxfilespertrigger", "maxbytespertrigger"}


def declared_or(table: api.TableSpec, frame: DataFrame) -> Any:
    """The table's columns: its declared `schema=` (types, comments) if it has one, else
    its query's; with a declared schema a query writing other types fails in Delta."""
    return None if table.schema is not None else frame.schema


def load_pipeline(
    path: Path,
    settings: Settings,
    spark: SparkSession | None = None,
    target: str | None = None,
    variables: Mapping[str, str] | None = None,
) -> Pipeline:
    """Read a pipeline folder's settings and files; with `spark`, resolve its graph too."""
    definition = read_settings(
        path, target=target, variables=variables, provided=provided_variables(settings)
    )
    pipeline = Pipeline(definition, settings, spark)
    pipeline.load_files()
    if spark is not None:
        catalog.use_catalogs(spark, [pipeline.catalog])
        for key, value in pipeline.configuration.items():
            try:
                spark.conf.set(key, value)  # code that asks the session itself sees them too
            except Exception:  # noqa: BLE001 - a static Spark setting: pipeline code still sees it
                api.log_once(f"configuration {key} cannot change in a running session")
    return pipeline
