"""Great Expectations suites are generated from the tables' declared rules and validate tables."""

from __future__ import annotations

import json

from expectations.suites import render, suite_path, validate
from iotlake.config import Settings
from spark_jobs.runner import SYSTEMS, load_system


def test_every_stored_suite_matches_its_table_declaration():
    stale = [
        str(suite_path(spec))
        for system in SYSTEMS
        for spec in load_system(system, Settings())
        if not suite_path(spec).exists() or suite_path(spec).read_text() != render(spec)
    ]
    assert stale == [], f"run `iotlake expectations` to regenerate: {stale}"


def test_suite_carries_the_rule_name_condition_and_action():
    spec = next(s for s in load_system("seismograph", Settings()) if s.name == "sensor")
    stored = json.loads(suite_path(spec).read_text())
    rules = {rule["description"]: rule["meta"] for rule in stored["expectations"]}
    assert rules["device is set"] == {"action": "drop", "condition": "device IS NOT NULL"}


def test_full_suite_counts_the_rows_that_break_a_rule(spark):
    spec = next(s for s in load_system("seismograph", Settings()) if s.name == "sensor")
    frame = spark.createDataFrame(
        [("client-aaa", None, 3.0), (None, None, 1.0), ("client-bbb", None, -2.0)],
        "device string, time timestamp, magn float",
    )
    outcomes = {o.expectation: o for o in validate(frame, spec)}
    assert (outcomes["device is set"].success, outcomes["device is set"].unexpected) == (False, 1)
    assert outcomes["magnitude is not negative"].unexpected == 1
