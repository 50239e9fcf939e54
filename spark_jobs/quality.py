"""Expectations evaluated in the same pass as a micro-batch's write, counted for the event log.

`check` wraps a batch: `DataFrame.observe` counts, per expectation, the rows failing it while
the write reads the batch, drop rules filter, and a fail rule raises inside the plan on the
first offending row, so the write aborts before Delta commits anything. No extra Spark job
runs only to count. A row whose condition is false or NULL fails it, so a rule on a missing
value never passes silently. `BatchQuality` reads the counts once the write has run.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from functools import reduce

from pyspark.sql import Column, DataFrame, Observation
from pyspark.sql import functions as F

from spark_jobs.lakeflow.api import Expectation

# Bronze keeps a broker record of any size, but one above this is counted: no phone, board
# or device sends one (the gateway caps an event at 4 KiB, Kinesis a record at 1 MiB).
MAX_RECORD_BYTES = 64 * 1024
# Marks the error a fail rule raises, so the runner can tell it from other failures.
FAILED_MARK = "iotlake expectation failed: "
_observations = itertools.count()


class ExpectationFailed(Exception):
    """A `fail` expectation met a row that breaks it; the message names it and shows the row."""


@dataclass(frozen=True)
class ExpectationResult:
    expectation: Expectation
    passed: int
    failed: int


@dataclass(frozen=True)
class BatchQuality:
    """What the expectations made of one batch: per-rule counts."""

    rows_in: int
    results: tuple[ExpectationResult, ...]
    # Rows failing at least one drop rule: a row breaking two rules is dropped once.
    rows_dropped: int = 0

    @property
    def rows_out(self) -> int:
        return self.rows_in - self.rows_dropped


@dataclass(frozen=True)
class CheckedBatch:
    """A batch with its expectations applied; `quality()` is ready once `kept` was written."""

    kept: DataFrame
    observation: Observation
    expectations: tuple[Expectation, ...]

    def quality(self) -> BatchQuality:
        """The counts the write observed (blocks until that write has run)."""
        row = self.observation.get
        rows_in = int(row.get("rows_in") or 0)
        results = []
        for index, expectation in enumerate(self.expectations):
            failed = int(row.get(f"failed_{index}") or 0)
            results.append(ExpectationResult(expectation, rows_in - failed, failed))
        return BatchQuality(rows_in, tuple(results), int(row.get("dropped") or 0))


def holds(expectation: Expectation) -> Column:
    """True where a row meets the rule; NULL counts as not meeting it."""
    return F.coalesce(F.expr(expectation.condition), F.lit(False))


def check(batch: DataFrame, expectations: tuple[Expectation, ...], table: str) -> CheckedBatch:
    """Observe every rule's failures, stop on a fail rule's first row, drop drop rules' rows."""
    drop_rules = [holds(e) for e in expectations if e.action == "drop"]
    all_drops_hold = reduce(lambda a, b: a & b, drop_rules) if drop_rules else F.lit(True)
    counts = [
        F.count(F.lit(1)).alias("rows_in"),
        F.sum(F.when(all_drops_hold, 0).otherwise(1)).alias("dropped"),
    ] + [
        F.sum(F.when(holds(e), 0).otherwise(1)).alias(f"failed_{i}")
        for i, e in enumerate(expectations)
    ]
    observation = Observation(f"expectations_{next(_observations)}")
    kept = batch.observe(observation, *counts)
    for expectation in expectations:
        if expectation.action == "fail":
            kept = kept.filter(_or_raise(kept, expectation, table))
    if drop_rules:
        kept = kept.filter(all_drops_hold)
    return CheckedBatch(kept, observation, expectations)


def _or_raise(batch: DataFrame, expectation: Expectation, table: str) -> Column:
    """True where the rule holds; raises, naming the rule and showing the row, where not.

    A filter, not a column: Spark never prunes a filter, so the rule runs with the write.
    """
    row = F.to_json(F.struct(*[F.col(f"`{name}`") for name in batch.columns]))
    message = F.concat(
        F.lit(
            f"{FAILED_MARK}expectation '{expectation.name}' ({expectation.condition}) failed "
            f"on a row of table {table}: "
        ),
        F.coalesce(row, F.lit("{}")),
    )
    return F.when(holds(expectation), F.lit(True)).otherwise(F.raise_error(message))


def failure_message(error: BaseException | str) -> str | None:
    """The one line a fail rule raised, found in a Spark error, or None if it is not one."""
    text = str(error)
    start = text.find(FAILED_MARK)
    if start < 0:
        return None
    line = text[start + len(FAILED_MARK) :].splitlines()[0]
    return line.split('" SQLSTATE')[0].split(". SQLSTATE")[0].rstrip('".')
