"""Expectations evaluated per micro-batch inside Spark, with counts for the event log.

One aggregation pass over the (cached) batch counts the rows failing each expectation. A
row whose condition is false or NULL fails it, so a rule on a missing value never passes
silently. `fail` expectations stop the flow before anything of the batch is written.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import reduce

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from spark_jobs.dp import Expectation, expect

SAMPLE_ROWS = 5
# Bronze keeps a broker record of any size, but one above this is counted: no phone, board
# or device sends one (the gateway caps an event at 4 KiB, Kinesis a record at 1 MiB).
MAX_RECORD_BYTES = 64 * 1024


def within_record_size(column: str = "data") -> Callable[[Callable], Callable]:
    """The bronze rule `record within 64 KiB`: keep oversized records, count them (warn)."""
    return expect(
        f"record within {MAX_RECORD_BYTES // 1024} KiB",
        f"{column} IS NULL OR octet_length({column}) <= {MAX_RECORD_BYTES}",
    )


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
    # Rows failing at least one drop rule: a row breaking two rules is dropped once.
    rows_dropped: int = 0


def _holds(expectation: Expectation):
    return F.coalesce(F.expr(expectation.condition), F.lit(False))


def evaluate(batch: DataFrame, expectations: tuple[Expectation, ...], table: str) -> BatchQuality:
    """Count failures per expectation, raise on `fail` rules, drop rows failing `drop` rules."""
    drop_rules = [_holds(e) for e in expectations if e.action == "drop"]
    all_drops_hold = reduce(lambda a, b: a & b, drop_rules) if drop_rules else F.lit(True)
    counts = [
        F.count(F.lit(1)).alias("rows_in"),
        F.sum(F.when(all_drops_hold, 0).otherwise(1)).alias("dropped"),
    ] + [
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
    kept = batch.filter(all_drops_hold) if drop_rules else batch
    return BatchQuality(kept, rows_in, results, int(row["dropped"] or 0))


def _failure_message(batch: DataFrame, result: ExpectationResult, table: str) -> str:
    offending = batch.filter(~_holds(result.expectation)).limit(SAMPLE_ROWS).collect()
    sample = "; ".join(json.dumps(r.asDict(), default=str) for r in offending)
    return (
        f"expectation '{result.expectation.name}' ({result.expectation.condition}) failed on "
        f"{result.failed} row(s) of table {table}; first rows: {sample}"
    )
