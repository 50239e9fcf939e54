"""Expectations evaluated per micro-batch inside Spark, with counts for the event log.

One aggregation pass over the (cached) batch counts the rows failing each expectation. A
row whose condition is false or NULL fails it, so a rule on a missing value never passes
silently. `fail` expectations stop the flow before anything of the batch is written.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import reduce

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from spark_jobs.dp import Expectation

SAMPLE_ROWS = 5


class ExpectationFailed(Exception):
    """A `fail` expectation met rows that break it; the message names it and shows them."""


@dataclass(frozen=True)
class ExpectationResult:
    expectation: Expectation
    passed: int
    failed: int


@dataclass(frozen=True)
class BatchQuality:
    """What the expectations made of one batch: rows kept and per-rule counts."""

    kept: DataFrame
    rows_in: int
    results: tuple[ExpectationResult, ...]

    @property
    def rows_dropped(self) -> int:
        return sum(r.failed for r in self.results if r.expectation.action == "drop")


def _holds(expectation: Expectation):
    return F.coalesce(F.expr(expectation.condition), F.lit(False))


def evaluate(batch: DataFrame, expectations: tuple[Expectation, ...], table: str) -> BatchQuality:
    """Count failures per expectation, raise on `fail` rules, drop rows failing `drop` rules."""
    counts = [F.count(F.lit(1)).alias("rows_in")] + [
        F.sum(F.when(_holds(e), 0).otherwise(1)).alias(f"failed_{i}")
        for i, e in enumerate(expectations)
    ]
    row = batch.agg(*counts).first()
    rows_in = int(row["rows_in"] or 0)
    results = tuple(
        ExpectationResult(e, rows_in - int(row[f"failed_{i}"] or 0), int(row[f"failed_{i}"] or 0))
        for i, e in enumerate(expectations)
    )
    for result in results:
        if result.expectation.action == "fail" and result.failed:
            raise ExpectationFailed(_failure_message(batch, result, table))
    drops = [_holds(r.expectation) for r in results if r.expectation.action == "drop"]
    kept = batch.filter(reduce(lambda a, b: a & b, drops)) if drops else batch
    return BatchQuality(kept, rows_in, results)


def _failure_message(batch: DataFrame, result: ExpectationResult, table: str) -> str:
    offending = batch.filter(~_holds(result.expectation)).limit(SAMPLE_ROWS).collect()
    sample = "; ".join(json.dumps(r.asDict(), default=str) for r in offending)
    return (
        f"expectation '{result.expectation.name}' ({result.expectation.condition}) failed on "
        f"{result.failed} row(s) of table {table}; first rows: {sample}"
    )
