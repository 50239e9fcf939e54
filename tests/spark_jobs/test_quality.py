"""Expectations per micro-batch: warn keeps and counts, drop drops and counts, fail stops."""

from __future__ import annotations

import pytest
from py4j.protocol import Py4JJavaError
from pyspark.errors import PySparkException

from spark_jobs.lakeflow.api import Expectation
from spark_jobs.quality import check, failure_message

ROWS = [("client-aaa", 3.0), (None, 5.0), ("client-bbb", -1.0), ("client-ccc", None)]


def _batch(spark):
    return spark.createDataFrame(ROWS, "device string, magn float")


def evaluate(frame, rules, table):
    """Run the checked batch as a write would (one pass), then read the counts."""
    checked = check(frame, rules, table)
    kept = checked.kept.collect()
    return checked.quality(), kept


def test_warn_keeps_every_row_and_counts_the_failures(spark):
    rule = Expectation("magnitude is not negative", "magn >= 0", "warn")
    quality, kept = evaluate(_batch(spark), (rule,), "seismograph.sensor")

    assert len(kept) == 4
    assert (quality.rows_in, quality.rows_dropped) == (4, 0)
    # NULL counts as a failure: a rule on a missing value never passes silently.
    assert [(r.passed, r.failed) for r in quality.results] == [(2, 2)]


def test_drop_removes_failing_rows_and_counts_them(spark):
    rules = (
        Expectation("device is set", "device IS NOT NULL", "drop"),
        Expectation("magnitude is not negative", "magn >= 0", "warn"),
    )
    quality, kept = evaluate(_batch(spark), rules, "seismograph.sensor")

    assert sorted(row.device for row in kept) == ["client-aaa", "client-bbb", "client-ccc"]
    assert quality.rows_dropped == 1
    assert [(r.expectation.name, r.failed) for r in quality.results] == [
        ("device is set", 1),
        ("magnitude is not negative", 2),
    ]


def test_fail_stops_the_pass_with_the_rule_name_and_the_offending_row(spark):
    rule = Expectation("device is set", "device IS NOT NULL", "fail")
    with pytest.raises((PySparkException, Py4JJavaError)) as error:
        evaluate(_batch(spark), (rule,), "seismograph.sensor")

    message = failure_message(error.value)
    assert message is not None
    assert message.startswith("expectation 'device is set' (device IS NOT NULL) failed")
    assert "of table seismograph.sensor" in message
    assert '{"magn":5.0}' in message


def test_a_batch_meeting_every_rule_keeps_everything(spark):
    rule = Expectation("device is set", "device IS NOT NULL", "fail")
    frame = spark.createDataFrame([("client-aaa", 1.0)], "device string, magn float")
    quality, kept = evaluate(frame, (rule,), "seismograph.sensor")
    assert len(kept) == 1
    assert [(r.passed, r.failed) for r in quality.results] == [(1, 0)]


def test_a_row_breaking_two_drop_rules_is_dropped_and_counted_once(spark):
    rules = (
        Expectation("device is set", "device IS NOT NULL", "drop"),
        Expectation("magnitude is set", "magn IS NOT NULL", "drop"),
    )
    frame = spark.createDataFrame(
        [("client-aaa", 1.0), (None, None), (None, 2.0)], "device string, magn float"
    )
    quality, kept = evaluate(frame, rules, "seismograph.sensor")

    assert len(kept) == 1
    assert quality.rows_dropped == 2
    assert [r.failed for r in quality.results] == [2, 1]
