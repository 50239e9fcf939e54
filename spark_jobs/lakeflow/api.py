"""The Lakeflow Declarative Pipelines Python API, as `dlt` and as `pyspark.pipelines`.

While iotlake loads a pipeline, `import dlt` and `from pyspark import pipelines as dp` give
this module (open-source Spark's own `pyspark.pipelines` has no expectations), so a table
file written for Databricks runs unchanged::

    @dp.table(comment="Motion events with a device id")
    @dp.expect_or_drop("device is set", "device IS NOT NULL")
    def sensor():
        return spark.readStream.table("raw_stream").select(...)

The decorators only declare: each records a `TableSpec` in the pipeline being loaded. The
pipeline (`loader.Pipeline`) later calls the functions, finds what each reads (`read`,
`read_stream`, `spark.readStream.table`) and orders the flows; the runner runs them.
Arguments iotlake cannot honour are accepted and logged once, never silently wrong.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from pyspark.sql import DataFrame
    from pyspark.sql.types import StructType

    from spark_jobs.lakeflow.loader import Pipeline

Action = Literal["warn", "drop", "fail"]
# "table" is decided when the function first runs: a streaming result makes a streaming
# table, a batch one a materialized view (as `@dlt.table` does on Databricks).
Kind = Literal["table", "streaming", "materialized", "view"]
# A table's query function, or a flow's: called with no arguments, returns a DataFrame.
QueryFunction = Callable[..., Any]
_EXPECTATIONS_ATTR = "__lakeflow_expectations__"


class PipelineError(Exception):
    """A pipeline's code cannot be run as written; one line naming the file and the fix."""


@dataclass(frozen=True)
class Expectation:
    """A named SQL condition every row should meet, and what to do with rows that don't."""

    name: str
    condition: str
    action: Action


@dataclass(eq=False)
class TableSpec:
    """One dataset of a pipeline (a table, a materialized view or a view) or one extra
    `append_flow` into a table: what the runner needs to run it.

    `name` is the flow's name: the table's own, or the `append_flow`'s; `target` the table it
    writes. `upstream` is filled in when the pipeline resolves its graph.
    """

    name: str
    system: str
    kind: Kind
    function: Callable[..., DataFrame] | None
    target: str = ""
    layer: str = ""
    comment: str = ""
    catalog: str | None = None
    schema_name: str | None = None
    spark_conf: Mapping[str, str] = field(default_factory=dict)
    table_properties: Mapping[str, str] = field(default_factory=dict)
    partition_by: tuple[str, ...] = ()
    cluster_by: tuple[str, ...] = ()
    path: str | None = None
    schema: str | StructType | None = None
    declared_expectations: tuple[Expectation, ...] = ()
    upstream: tuple[str, ...] = ()
    file: str = ""
    once: bool = False

    def __post_init__(self) -> None:
        self.target = self.target or self.name

    @property
    def expectations(self) -> tuple[Expectation, ...]:
        """The declared ones, then those its function's decorators added, in file order."""
        added = getattr(self.function, _EXPECTATIONS_ATTR, []) if self.function else []
        return (*self.declared_expectations, *added)

    @property
    def materialized(self) -> bool:
        return self.kind == "materialized"

    @property
    def is_view(self) -> bool:
        return self.kind == "view"

    @property
    def is_flow(self) -> bool:
        """An `append_flow` into a table declared elsewhere."""
        return self.target != self.name


class _Registry(threading.local):
    """The pipeline whose files are being loaded, and the one whose function is running
    (per thread: a micro-batch's writer calls chained tables' functions on its own thread)."""

    loading: Pipeline | None = None
    running: Pipeline | None = None


registry = _Registry()
_logged: set[str] = set()


def log_once(message: str) -> None:
    """Say once per process what iotlake accepts but does not honour."""
    if message not in _logged:
        _logged.add(message)
        print(f"lakeflow: {message}")


def _pipeline(what: str) -> Pipeline:
    pipeline = registry.loading or registry.running
    if pipeline is None:
        raise RuntimeError(
            f"{what} is only available while iotlake loads or runs a pipeline "
            "(`iotlake pipeline run PATH`)"
        )
    return pipeline


def _ignored(name: str, **arguments: Any) -> None:
    for argument, value in arguments.items():
        if value:
            log_once(f"{name}: `{argument}` is accepted and ignored (no such feature here)")


def _add_expectations(function: QueryFunction, expectations: list[Expectation]) -> QueryFunction:
    pending: list[Expectation] = getattr(function, _EXPECTATIONS_ATTR, [])
    # Decorators apply bottom-up; put these first so the file's top-to-bottom order holds.
    setattr(function, _EXPECTATIONS_ATTR, [*expectations, *pending])
    return function


def _rules(rules: Mapping[str, str] | None, action: Action) -> list[Expectation]:
    return [Expectation(name, condition, action) for name, condition in (rules or {}).items()]


def expect(description: str, constraint: str) -> Callable[[QueryFunction], QueryFunction]:
    """Keep rows that fail `constraint` and count them."""
    return lambda function: _add_expectations(
        function, [Expectation(description, constraint, "warn")]
    )


def expect_or_drop(description: str, constraint: str) -> Callable[[QueryFunction], QueryFunction]:
    """Drop rows that fail `constraint` and count them."""
    return lambda function: _add_expectations(
        function, [Expectation(description, constraint, "drop")]
    )


def expect_or_fail(description: str, constraint: str) -> Callable[[QueryFunction], QueryFunction]:
    """Stop the flow when any row fails `constraint`."""
    return lambda function: _add_expectations(
        function, [Expectation(description, constraint, "fail")]
    )


def expect_all(
    expectations: Mapping[str, str],
) -> Callable[[QueryFunction], QueryFunction]:
    """Several warn expectations at once: name -> constraint."""
    return lambda function: _add_expectations(function, _rules(expectations, "warn"))


def expect_all_or_drop(
    expectations: Mapping[str, str],
) -> Callable[[QueryFunction], QueryFunction]:
    """Several drop expectations at once: name -> constraint."""
    return lambda function: _add_expectations(function, _rules(expectations, "drop"))


def expect_all_or_fail(
    expectations: Mapping[str, str],
) -> Callable[[QueryFunction], QueryFunction]:
    """Several fail expectations at once: name -> constraint."""
    return lambda function: _add_expectations(function, _rules(expectations, "fail"))


def _declare(kind: Kind, function: QueryFunction | None, options: dict[str, Any]) -> QueryFunction:
    """Decorator (or direct) form shared by `table`, `materialized_view` and the views."""

    def decorate(query_function: QueryFunction) -> QueryFunction:
        name = options.get("name") or query_function.__name__
        _pipeline("@table").declare(_spec(kind, name, query_function, options))
        return query_function

    return decorate(function) if function is not None else decorate


def _spec(
    kind: Kind, name: str, function: QueryFunction | None, options: dict[str, Any]
) -> TableSpec:
    _ignored(
        name,
        row_filter=options.get("row_filter"),
        private=options.get("private"),
    )
    if options.get("temporary"):
        log_once(f"{name}: `temporary=True` tables are written and named like the others")
    return TableSpec(
        name=name,
        system="",
        kind=kind,
        function=function,
        comment=options.get("comment") or "",
        spark_conf=dict(options.get("spark_conf") or {}),
        table_properties={k: str(v) for k, v in (options.get("table_properties") or {}).items()},
        partition_by=tuple(options.get("partition_cols") or ()),
        cluster_by=tuple(options.get("cluster_by") or ()),
        path=options.get("path"),
        schema=options.get("schema"),
        declared_expectations=(
            *_rules(options.get("expect_all"), "warn"),
            *_rules(options.get("expect_all_or_drop"), "drop"),
            *_rules(options.get("expect_all_or_fail"), "fail"),
        ),
    )


def table(
    query_function: QueryFunction | None = None,
    *,
    name: str | None = None,
    comment: str | None = None,
    spark_conf: Mapping[str, str] | None = None,
    table_properties: Mapping[str, str] | None = None,
    partition_cols: list[str] | None = None,
    cluster_by: list[str] | None = None,
    path: str | None = None,
    schema: str | StructType | None = None,
    temporary: bool = False,
    private: bool = False,
    row_filter: str | None = None,
) -> QueryFunction:
    """A table: a streaming table when the function returns a stream, else a materialized
    view."""
    return _declare("table", query_function, dict(locals()))


def materialized_view(
    query_function: QueryFunction | None = None,
    *,
    name: str | None = None,
    comment: str | None = None,
    spark_conf: Mapping[str, str] | None = None,
    table_properties: Mapping[str, str] | None = None,
    partition_cols: list[str] | None = None,
    cluster_by: list[str] | None = None,
    path: str | None = None,
    schema: str | StructType | None = None,
    private: bool = False,
    row_filter: str | None = None,
) -> QueryFunction:
    """A table recomputed whole from the current snapshots of what it reads."""
    return _declare("materialized", query_function, dict(locals()))


def temporary_view(
    query_function: QueryFunction | None = None,
    *,
    name: str | None = None,
    comment: str | None = None,
    spark_conf: Mapping[str, str] | None = None,
) -> QueryFunction:
    """A named query other datasets read; not stored, computed inside each reader."""
    return _declare("view", query_function, dict(locals()))


view = temporary_view


def create_streaming_table(
    name: str,
    comment: str | None = None,
    spark_conf: Mapping[str, str] | None = None,
    table_properties: Mapping[str, str] | None = None,
    partition_cols: list[str] | None = None,
    cluster_by: list[str] | None = None,
    path: str | None = None,
    schema: str | StructType | None = None,
    expect_all: Mapping[str, str] | None = None,
    expect_all_or_drop: Mapping[str, str] | None = None,
    expect_all_or_fail: Mapping[str, str] | None = None,
    row_filter: str | None = None,
) -> None:
    """A streaming table that `append_flow`s write into."""
    options = dict(locals())
    _pipeline("create_streaming_table").declare(_spec("streaming", name, None, options))


def append_flow(
    query_function: QueryFunction | None = None,
    *,
    target: str,
    name: str | None = None,
    spark_conf: Mapping[str, str] | None = None,
    comment: str | None = None,
    once: bool = False,
) -> QueryFunction:
    """One more streaming flow appending into `target`, with its own checkpoint."""

    def decorate(function: QueryFunction) -> QueryFunction:
        spec = _spec("streaming", name or function.__name__, function, dict(comment=comment))
        spec.target, spec.once, spec.spark_conf = target, once, dict(spark_conf or {})
        _pipeline("@append_flow").declare(spec)
        return function

    return decorate(query_function) if query_function is not None else decorate


def read(name: str) -> DataFrame:
    """The current contents of a dataset of this pipeline, or of any table by name."""
    return _pipeline("read").read(name, streaming=False)


def read_stream(name: str) -> DataFrame:
    """A dataset of this pipeline, or any table by name, as a stream."""
    return _pipeline("read_stream").read(name, streaming=True)


def _refused(name: str, instead: str) -> QueryFunction:
    """A Lakeflow function iotlake does not run: calling it stops the load with one line
    naming the caller's file and line and what to write instead."""

    def refuse(*args: Any, **kwargs: Any) -> Any:
        caller = inspect.stack()[1]
        raise NotImplementedError(
            f"{caller.filename}:{caller.lineno}: dlt.{name} is not supported by iotlake; {instead}"
        )

    refuse.__name__ = name
    return refuse


_CDC_INSTEAD = "MERGE the changes into a table in a job (`iotlake job run`) with DeltaTable.merge"
apply_changes = create_auto_cdc_flow = _refused("create_auto_cdc_flow", _CDC_INSTEAD)
apply_changes_from_snapshot = _refused("apply_changes_from_snapshot", _CDC_INSTEAD)
create_auto_cdc_from_snapshot_flow = _refused("create_auto_cdc_from_snapshot_flow", _CDC_INSTEAD)
create_sink = _refused("create_sink", "write to a table and read it from the other system")
foreach_batch_sink = _refused("foreach_batch_sink", "use writeStream.foreachBatch in a job")
