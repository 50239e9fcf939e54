"""Declaring tables the way Lakeflow Declarative Pipelines does, for iotlake's runner.

A table file reads like its Databricks original::

    @dp.table(comment="Motion events with a device id")
    @dp.expect_or_drop("device is set", "device IS NOT NULL")
    def sensor(raw_stream: DataFrame) -> DataFrame:
        ...

The function's parameter names are its upstream datasets (a declared source or another
table of the same system); its module path `spark_jobs.<system>.<layer>.<table>` gives the
system and the layer. The runner turns each table into one streaming query, and refreshes
each `@dp.materialized_view` from the snapshots of its upstream tables.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Literal

from pyspark.sql import DataFrame

Action = Literal["warn", "drop", "fail"]
OutputMode = Literal["append", "update", "complete"]
Kind = Literal["streaming", "materialized"]


@dataclass(frozen=True)
class Expectation:
    """A named SQL condition every row should meet, and what to do with rows that don't."""

    name: str
    condition: str
    action: Action


@dataclass(frozen=True)
class TableSpec:
    """Everything the runner needs to know about one table."""

    name: str
    system: str
    layer: str
    comment: str
    function: Callable[..., DataFrame]
    upstream: tuple[str, ...]
    expectations: tuple[Expectation, ...] = ()
    output_mode: OutputMode = "append"
    keys: tuple[str, ...] = ()
    partition_by: tuple[str, ...] = ()
    kind: Kind = "streaming"

    @property
    def materialized(self) -> bool:
        return self.kind == "materialized"


@dataclass(frozen=True)
class SourceSpec:
    """A streaming source a system's bronze tables read from (Kinesis, Kafka, files)."""

    name: str
    system: str
    function: Callable[..., DataFrame]


TABLES: dict[tuple[str, str], TableSpec] = {}
SOURCES: dict[tuple[str, str], SourceSpec] = {}
_PENDING_ATTR = "__iotlake_expectations__"


def _place(function: Callable[..., object]) -> tuple[str, str]:
    """(system, layer) from `spark_jobs.<system>.<layer>.<table>` or `...<system>.sources`."""
    parts = function.__module__.split(".")
    if len(parts) < 3 or parts[0] != "spark_jobs":
        raise ValueError(
            f"{function.__module__}: declare tables under spark_jobs/<system>/<layer>/"
        )
    return parts[1].replace("_", "-"), parts[2]


def _expect(name: str, condition: str, action: Action):
    def decorate(function):
        pending: list[Expectation] = getattr(function, _PENDING_ATTR, [])
        # Decorators apply bottom-up; insert first so the file's top-to-bottom order holds.
        setattr(function, _PENDING_ATTR, [Expectation(name, condition, action), *pending])
        return function

    return decorate


def expect(name: str, condition: str):
    """Keep rows that fail `condition` and count them (Lakeflow `expect`)."""
    return _expect(name, condition, "warn")


def expect_or_drop(name: str, condition: str):
    """Drop rows that fail `condition` and count them (Lakeflow `expect_or_drop`)."""
    return _expect(name, condition, "drop")


def expect_or_fail(name: str, condition: str):
    """Stop the flow when any row fails `condition` (Lakeflow `expect_or_fail`)."""
    return _expect(name, condition, "fail")


def expect_all_or_drop(rules: dict[str, str]):
    """Several drop expectations at once (Lakeflow `expect_all_or_drop`)."""

    def decorate(function):
        for name, condition in reversed(rules.items()):
            function = expect_or_drop(name, condition)(function)
        return function

    return decorate


def table(
    name: str | None = None,
    comment: str = "",
    output_mode: OutputMode = "append",
    keys: tuple[str, ...] = (),
    partition_by: tuple[str, ...] = (),
):
    """Register the decorated function as a streaming table of its system."""
    return _register(name, comment, output_mode, keys, partition_by, "streaming")


def materialized_view(name: str | None = None, comment: str = ""):
    """Register the decorated function as a materialized view (Lakeflow `@dp.materialized_view`).

    Its parameters receive the current snapshots of upstream tables as batch DataFrames, and
    its result replaces the table's contents at each refresh: for logic that streams cannot
    express, such as as-of joins or a resample over a whole history.
    """
    return _register(name, comment, "complete", (), (), "materialized")


def _register(
    name: str | None,
    comment: str,
    output_mode: OutputMode,
    keys: tuple[str, ...],
    partition_by: tuple[str, ...],
    kind: Kind,
):
    def decorate(function: Callable[..., DataFrame]) -> Callable[..., DataFrame]:
        system, layer = _place(function)
        spec = TableSpec(
            name=name or function.__name__,
            system=system,
            layer=layer,
            comment=comment,
            function=function,
            upstream=tuple(inspect.signature(function).parameters),
            expectations=tuple(getattr(function, _PENDING_ATTR, [])),
            output_mode=output_mode,
            keys=tuple(keys),
            partition_by=tuple(partition_by),
            kind=kind,
        )
        TABLES[(system, spec.name)] = spec
        return function

    return decorate


def source(name: str | None = None):
    """Register the decorated function `(spark, settings) -> streaming DataFrame`."""

    def decorate(function: Callable[..., DataFrame]) -> Callable[..., DataFrame]:
        system, _ = _place(function)
        spec = SourceSpec(name or function.__name__, system, function)
        SOURCES[(system, spec.name)] = spec
        return function

    return decorate


def with_expectations(spec: TableSpec, expectations: tuple[Expectation, ...]) -> TableSpec:
    """A copy of `spec` with other expectations (tests use it to try each action)."""
    return replace(spec, expectations=expectations)
