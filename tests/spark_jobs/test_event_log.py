"""The event log: one flow row and one row per expectation for each batch, the tables of one
micro-batch in one commit, and a replayed batch logged once."""

from __future__ import annotations

from pathlib import Path

from deltalake import DeltaTable

from spark_jobs import event_log
from spark_jobs.lakeflow.api import Expectation, TableSpec
from spark_jobs.quality import BatchQuality, ExpectationResult
from tests.support.settings import settings_for

SYSTEM = "seismograph"
VALID_TIME = Expectation("valid_time", "time IS NOT NULL", "drop")
VALID_MAGN = Expectation("valid_magn", "magn >= 0", "warn")


def _spec(name: str) -> TableSpec:
    return TableSpec(name=name, system=SYSTEM, kind="streaming", function=None)


def _quality() -> BatchQuality:
    """Ten rows in, two dropped for `valid_time`, one warned about for `valid_magn`."""
    results = (ExpectationResult(VALID_TIME, 8, 2), ExpectationResult(VALID_MAGN, 9, 1))
    return BatchQuality(rows_in=10, results=results, rows_dropped=2)


def _log(uri: str) -> DeltaTable:
    return DeltaTable(uri)


def test_rows_are_one_flow_row_then_one_row_per_expectation():
    rows = event_log.rows(_spec("sensor"), 7, _quality(), 1.25)

    assert [(r["expectation"], r["action"], r["passed"], r["failed"]) for r in rows] == [
        (None, None, None, None),
        ("valid_time", "drop", 8, 2),
        ("valid_magn", "warn", 9, 1),
    ]
    for row in rows:
        assert (row["system"], row["table"], row["batch_id"]) == (SYSTEM, "sensor", 7)
        assert (row["rows_in"], row["rows_out"], row["duration_ms"]) == (10, 8, 1250)


def test_a_batch_of_several_tables_is_logged_in_one_commit_and_a_replay_not_again(
    spark, tmp_path: Path
):
    settings = settings_for(tmp_path)
    uri = event_log.location(settings, SYSTEM)
    tables = [(_spec("sensor"), _quality(), 0.5), (_spec("sensor_gold"), _quality(), 0.25)]

    event_log.record_batch(spark, settings, "writer-1", 0, tables)
    assert _log(uri).version() == 0  # both tables' rows in the table's first commit
    event_log.record_batch(spark, settings, "writer-1", 0, tables)  # replayed after a crash
    event_log.record_batch(spark, settings, "writer-1", 1, tables[:1])

    log = _log(uri)
    assert log.version() == 1
    rows = log.to_pandas()
    per_batch = rows.groupby(["batch_id", "table"]).size().to_dict()
    assert per_batch == {(0, "sensor"): 3, (0, "sensor_gold"): 3, (1, "sensor"): 3}


def test_another_writer_logs_the_same_batch_number_again(spark, tmp_path: Path):
    settings = settings_for(tmp_path)
    tables = [(_spec("sensor"), _quality(), 0.5)]

    event_log.record_batch(spark, settings, "writer-1", 0, tables)
    event_log.record_batch(spark, settings, "writer-2", 0, tables)

    log = _log(event_log.location(settings, SYSTEM)).to_pandas()
    assert len(log) == 6
    assert log["batch_id"].tolist() == [0] * 6
