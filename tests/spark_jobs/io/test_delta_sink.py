"""The delta-rs streaming sink writes every row exactly once, from the executors, on disk and S3.

Each test runs real Structured Streaming queries on the shared local Spark session against
real Delta tables: under tmp_path, and in the embedded moto S3's lake bucket.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from deltalake import DeltaTable, write_deltalake
from pyspark.errors import StreamingQueryException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from iotlake.config import Settings
from spark_jobs.io.delta_sink import (
    DeltaFilesWritten,
    DeltaStreamWriter,
    TaskFiles,
    append_batch,
    ensure_table,
    merge_batch,
    merge_stream,
    write_stream,
)
from spark_jobs.io.delta_source import read_table
from spark_jobs.io.storage import arrow_filesystem, join, storage_options
from tests.conftest import settings_env

EVENTS_SCHEMA = "id LONG, device STRING, magn DOUBLE"
AVAILABLE_NOW = {"availableNow": True}


@dataclass
class Lake:
    """Where a test's tables live: a local directory or a fresh prefix of the S3 bucket."""

    settings: Settings
    root: str

    def uri(self, name: str) -> str:
        return f"{self.root}/{name}"

    def options(self, uri: str) -> dict[str, str]:
        return storage_options(self.settings, uri)

    def table(self, uri: str, version: int | None = None) -> DeltaTable:
        return DeltaTable(uri, version=version, storage_options=self.options(uri) or None)

    def parquet_files(self, uri: str) -> set[str]:
        """Every parquet file under the table, committed or not (to find orphans)."""
        import pyarrow.fs as pafs

        filesystem, root = arrow_filesystem(uri, self.options(uri))
        found = filesystem.get_file_info(pafs.FileSelector(root, recursive=True))
        return {
            info.path[len(root) :].lstrip("/")
            for info in found
            if info.path.endswith(".parquet") and "/_delta_log/" not in info.path
        }

    def committed_files(self, uri: str) -> set[str]:
        """The table-relative paths of the files the current snapshot references."""
        return {path[len(uri) :].lstrip("/") for path in self.table(uri).file_uris()}

    def commit_adds(self, uri: str, version: int) -> list[dict]:
        """The add actions of one commit, from its entry in `_delta_log`."""
        filesystem, root = arrow_filesystem(uri, self.options(uri))
        with filesystem.open_input_stream(join(root, f"_delta_log/{version:020d}.json")) as log:
            actions = [json.loads(line) for line in log.read().decode().splitlines() if line]
        return [action["add"] for action in actions if "add" in action]


@pytest.fixture(params=["local", "s3"])
def lake(request: pytest.FixtureRequest, tmp_path: Path) -> Lake:
    if request.param == "local":
        return Lake(request.getfixturevalue("stack_settings"), str(tmp_path / "lake"))
    settings: Settings = request.getfixturevalue("stack")
    return Lake(settings, f"s3://{settings.lake.bucket}/tests/{uuid.uuid4().hex[:10]}")


def land(directory: Path, index: int, rows: int = 100, devices: int = 3) -> None:
    """One JSON file of events with ids `index*1000 + j`: known content, known keys."""
    directory.mkdir(parents=True, exist_ok=True)
    lines = [
        json.dumps({"id": index * 1000 + j, "device": f"d{j % devices}", "magn": float(j)})
        for j in range(rows)
    ]
    # Write then rename, so the file source never lists a half-written file.
    partial = directory / f".events-{index:04d}.json.tmp"
    partial.write_text("\n".join(lines) + "\n")
    # The file source takes files oldest first: distinct times make the batch order known.
    landed_at = 1_700_000_000 + index
    os.utime(partial, (landed_at, landed_at))
    partial.rename(directory / f"events-{index:04d}.json")


def events(spark: SparkSession, directory: Path) -> DataFrame:
    """A deterministic stream: one landed file per micro-batch."""
    return (
        spark.readStream.schema(EVENTS_SCHEMA).option("maxFilesPerTrigger", 1).json(str(directory))
    )


def run_to_end(query) -> list[dict]:
    """Wait for an AvailableNow query and return its progress reports."""
    query.awaitTermination(300)
    assert query.exception() is None, query.exception()
    return [json.loads(progress.json) for progress in query.recentProgress]


def test_restart_from_the_same_checkpoint_writes_every_row_exactly_once(spark, lake, tmp_path):
    landing, checkpoint, uri = tmp_path / "landing", tmp_path / "checkpoint", lake.uri("bronze")
    for index in range(3):
        land(landing, index)
    run_to_end(
        write_stream(events(spark, landing), uri, checkpoint, lake.settings, trigger=AVAILABLE_NOW)
    )
    for index in range(3, 5):
        land(landing, index)

    run_to_end(
        write_stream(events(spark, landing), uri, checkpoint, lake.settings, trigger=AVAILABLE_NOW)
    )

    ids = lake.table(uri).to_pyarrow_table().column("id")
    assert len(ids) == 500
    assert len(pc.unique(ids)) == 500
    assert lake.table(uri).version() == 4  # one Delta commit per micro-batch
    # The files' min/max statistics let any Delta reader skip the first four batches' files.
    last_batch_files = {add["path"] for add in lake.commit_adds(uri, 4)}
    pruned = lake.table(uri).file_uris(file_pruning_predicate="id >= 4000")
    assert {path[len(uri) :].lstrip("/") for path in pruned} == last_batch_files


def test_every_non_empty_task_writes_its_own_parquet_file(spark, lake, tmp_path):
    landing, checkpoint, uri = tmp_path / "landing", tmp_path / "checkpoint", lake.uri("bronze")
    for index, rows in enumerate([100, 2, 1]):
        land(landing, index, rows=rows)
    expected = [
        sorted(size for size in non_empty_partition_sizes(spark, landing / f"events-{i:04d}.json"))
        for i in range(3)
    ]

    stream = events(spark, landing).repartition(4)
    run_to_end(write_stream(stream, uri, checkpoint, lake.settings, trigger=AVAILABLE_NOW))

    written = [
        sorted(json.loads(add["stats"])["numRecords"] for add in lake.commit_adds(uri, version))
        for version in range(3)
    ]
    assert [len(sizes) for sizes in expected] == [4, 2, 1]
    assert written == expected
    names = [add["path"] for version in range(3) for add in lake.commit_adds(uri, version)]
    assert len({name.split("-")[1] for name in names if name.startswith("part-")}) == 4


def non_empty_partition_sizes(spark: SparkSession, path: Path) -> list[int]:
    """How Spark's round-robin repartition(4) spreads one file's rows over tasks."""
    frame = spark.read.schema(EVENTS_SCHEMA).json(str(path)).repartition(4)
    return [size for size in frame.rdd.glom().map(len).collect() if size]


def test_aborted_batch_removes_the_files_its_tasks_wrote(lake):
    uri = lake.uri("bronze")
    schema = T.StructType(
        [T.StructField("id", T.LongType()), T.StructField("device", T.StringType())]
    )
    writer = DeltaStreamWriter(uri, lake.options(uri), schema, ("device",), "app", None)
    rows = pa.record_batch({"id": pa.array([1, 2, 3], pa.int64()), "device": ["a", "b", "a"]})
    filesystem, root = arrow_filesystem(uri, lake.options(uri))
    task = TaskFiles(filesystem, root, ("device",), "part-00000")
    task.add(rows)
    written = DeltaFilesWritten(task.close())
    on_disk = lake.parquet_files(uri)

    writer.abort([written, None], 0)

    assert on_disk == {file.path for file in written.files}
    assert sorted(path.split("/")[0] for path in on_disk) == ["device=a", "device=b"]
    assert lake.parquet_files(uri) == set()


def test_abort_after_a_commit_that_went_through_keeps_the_committed_files(lake):
    uri = lake.uri("bronze")
    schema = T.StructType(
        [T.StructField("id", T.LongType()), T.StructField("device", T.StringType())]
    )
    writer = DeltaStreamWriter(uri, lake.options(uri), schema, ("device",), "app", None)
    rows = pa.record_batch({"id": pa.array([1, 2, 3], pa.int64()), "device": ["a", "b", "a"]})
    filesystem, root = arrow_filesystem(uri, lake.options(uri))
    task = TaskFiles(filesystem, root, ("device",), "part-00000")
    task.add(rows)
    written = DeltaFilesWritten(task.close())
    writer.commit([written], 0)

    writer.abort([written], 0)

    assert lake.parquet_files(uri) == {file.path for file in written.files}
    assert len(lake.table(uri).to_pyarrow_table()) == 3


def test_replayed_batch_adds_nothing_and_leaves_no_files(spark, lake, tmp_path):
    landing, checkpoint, uri = tmp_path / "landing", tmp_path / "checkpoint", lake.uri("bronze")
    for index in range(2):
        land(landing, index)
    run_to_end(
        write_stream(events(spark, landing), uri, checkpoint, lake.settings, trigger=AVAILABLE_NOW)
    )
    version, count = lake.table(uri).version(), lake.table(uri).count()
    # Forget that batch 1 finished: Spark re-runs it from its logged offsets on restart, as
    # after a crash between the Delta commit and the checkpoint commit.
    forget_commit(checkpoint, 1)

    progress = run_to_end(
        write_stream(events(spark, landing), uri, checkpoint, lake.settings, trigger=AVAILABLE_NOW)
    )

    assert [(p["batchId"], p["numInputRows"]) for p in progress if p["numInputRows"]] == [(1, 100)]
    assert (checkpoint / "commits" / "1").exists()
    assert lake.table(uri).version() == version
    assert lake.table(uri).count() == count == 200
    assert lake.parquet_files(uri) == lake.committed_files(uri)


def forget_commit(checkpoint: Path, batch_id: int) -> None:
    """Make Spark believe `batch_id` never finished, as if the driver died before its commit."""
    (checkpoint / "commits" / str(batch_id)).unlink()
    (checkpoint / "commits" / f".{batch_id}.crc").unlink(missing_ok=True)


def last_batch(checkpoint: Path) -> int:
    return max(int(path.name) for path in (checkpoint / "commits").glob("[0-9]*"))


def test_partitioned_table_is_hive_laid_out_and_readable_by_delta_rs_and_spark(
    spark, lake, tmp_path
):
    landing, checkpoint, uri = tmp_path / "landing", tmp_path / "checkpoint", lake.uri("bronze")
    land(landing, 0, rows=90)
    stream = events(spark, landing).withColumn(
        "device", F.when(F.col("device") == "d2", F.lit("line 2/a:b")).otherwise(F.col("device"))
    )

    run_to_end(
        write_stream(
            stream, uri, checkpoint, lake.settings, partition_by=("device",), trigger=AVAILABLE_NOW
        )
    )

    table = lake.table(uri)
    assert table.metadata().partition_columns == ["device"]
    directories = {path.split("/")[0] for path in lake.parquet_files(uri)}
    assert directories == {"device=d0", "device=d1", "device=line%202%2Fa%3Ab"}
    by_delta_rs = table.to_pyarrow_table().group_by("device").aggregate([("id", "count")])
    assert dict(zip(*by_delta_rs.to_pydict().values(), strict=True)) == {
        "d0": 30,
        "d1": 30,
        "line 2/a:b": 30,
    }
    by_spark = read_table(spark, uri, lake.settings)
    assert by_spark.columns == ["id", "device", "magn"]  # the stream's column order
    counts = {row["device"]: row["count"] for row in by_spark.groupBy("device").count().collect()}
    assert counts == {"d0": 30, "d1": 30, "line 2/a:b": 30}


def test_merge_in_update_mode_keeps_one_row_per_key_with_the_latest_aggregate(
    spark, lake, tmp_path
):
    landing, checkpoint, uri = tmp_path / "landing", tmp_path / "checkpoint", lake.uri("gold")
    for index in range(3):
        land(landing, index, rows=10 * (index + 1))

    def per_device():
        return (
            events(spark, landing)
            .groupBy("device")
            .agg(F.max("magn").alias("max_magn"), F.count("*").alias("events"))
        )

    def start():
        return merge_stream(
            per_device(), uri, checkpoint, lake.settings, keys=("device",), trigger=AVAILABLE_NOW
        )

    run_to_end(start())
    land(landing, 3, rows=50)
    run_to_end(start())
    version = lake.table(uri).version()
    forget_commit(checkpoint, last_batch(checkpoint))
    run_to_end(start())

    rows = lake.table(uri).to_pyarrow_table().sort_by("device").to_pylist()
    assert rows == [
        {"device": "d0", "max_magn": 48.0, "events": 4 + 7 + 10 + 17},
        {"device": "d1", "max_magn": 49.0, "events": 3 + 7 + 10 + 17},
        {"device": "d2", "max_magn": 47.0, "events": 3 + 6 + 10 + 16},
    ]
    assert lake.table(uri).version() == version  # the replayed batch committed nothing


def test_merge_batch_matches_rows_on_every_key_null_safely(lake):
    uri = lake.uri("gold")
    first = pa.table({"siteId": ["a", "a", None], "day": [1, 2, 1], "maxMagn": [1.0, 2.0, 3.0]})
    update = pa.table({"siteId": ["a", None, "b"], "day": [2, 1, 1], "maxMagn": [5.0, 6.0, 7.0]})
    options = lake.options(uri)

    keys = ("siteId", "day")
    merge_batch(first, uri, options, keys=keys, app_id="gold@test", batch_id=0)
    merge_batch(update, uri, options, keys=keys, app_id="gold@test", batch_id=1)
    replayed = merge_batch(update, uri, options, keys=keys, app_id="gold@test", batch_id=1)

    rows = lake.table(uri).to_pyarrow_table().to_pylist()
    assert sorted(rows, key=lambda row: (row["siteId"] or "", row["day"])) == [
        {"siteId": None, "day": 1, "maxMagn": 6.0},
        {"siteId": "a", "day": 1, "maxMagn": 1.0},
        {"siteId": "a", "day": 2, "maxMagn": 5.0},
        {"siteId": "b", "day": 1, "maxMagn": 7.0},
    ]
    assert replayed is False
    assert lake.table(uri).version() == 1


def test_global_aggregate_merge_leaves_a_single_current_row(spark, lake, tmp_path):
    landing, checkpoint, uri = tmp_path / "landing", tmp_path / "checkpoint", lake.uri("stats")
    for index in range(3):
        land(landing, index, rows=20)
    aggregate = events(spark, landing).agg(
        F.count("*").alias("events"),
        F.max("magn").alias("max_magn"),
        F.min("magn").alias("min_magn"),
        F.avg("magn").alias("avg_magn"),
        F.stddev("magn").alias("stddev_magn"),
    )

    run_to_end(
        merge_stream(aggregate, uri, checkpoint, lake.settings, keys=(), trigger=AVAILABLE_NOW)
    )

    rows = lake.table(uri).to_pyarrow_table().to_pylist()
    expected = (
        spark.read.schema(EVENTS_SCHEMA)
        .json(str(landing))
        .agg(F.count("*"), F.max("magn"), F.min("magn"), F.avg("magn"), F.stddev("magn"))
        .first()
    )
    assert len(rows) == 1
    assert list(rows[0].values()) == pytest.approx(list(expected))
    assert rows[0]["events"] == 60


def test_complete_output_mode_replaces_the_table_with_each_batch(spark, lake, tmp_path):
    landing, checkpoint, uri = tmp_path / "landing", tmp_path / "checkpoint", lake.uri("gold")
    for index in range(2):
        land(landing, index, rows=30)
    per_device = events(spark, landing).groupBy("device").agg(F.count("*").alias("events"))

    complete = {"output_mode": "complete", "trigger": AVAILABLE_NOW}
    run_to_end(write_stream(per_device, uri, checkpoint, lake.settings, **complete))

    rows = lake.table(uri).to_pyarrow_table().sort_by("device").to_pylist()
    assert rows == [{"device": f"d{i}", "events": 20} for i in range(3)]
    assert [entry["operationParameters"]["mode"] for entry in lake.table(uri).history()] == [
        "Overwrite",
        "Append",
    ]


def test_stream_whose_schema_differs_from_the_table_is_refused(spark, lake, tmp_path):
    landing, uri = tmp_path / "landing", lake.uri("bronze")
    land(landing, 0, rows=5)
    existing = pa.table({"id": pa.array([1], pa.int64()), "device": ["d0"]})
    write_deltalake(uri, existing, storage_options=lake.options(uri) or None)

    query = write_stream(
        events(spark, landing), uri, tmp_path / "checkpoint", lake.settings, trigger=AVAILABLE_NOW
    )

    with pytest.raises(StreamingQueryException, match="does not match Delta table"):
        query.awaitTermination(300)
    assert lake.table(uri).version() == 0


def test_append_batch_in_foreach_batch_is_distributed_and_idempotent(spark, lake, tmp_path):
    landing, checkpoint, uri = tmp_path / "landing", tmp_path / "checkpoint", lake.uri("bronze")
    for index in range(2):
        land(landing, index, rows=40)
    stream = events(spark, landing).repartition(2)
    options = lake.options(uri)
    key = ("device",)
    ensure_table(uri, options, stream.schema, key)
    outcomes: list[bool] = []

    def write_twice(batch: DataFrame, batch_id: int) -> None:
        for _ in range(2):  # the second call is what a replay after a crash looks like
            written = append_batch(
                batch, uri, options, app_id="bronze@test", batch_id=batch_id, partition_by=key
            )
            outcomes.append(written)

    query = stream.writeStream.foreachBatch(write_twice).trigger(availableNow=True)
    run_to_end(query.option("checkpointLocation", str(checkpoint)).start())

    table = lake.table(uri)
    assert outcomes == [True, False, True, False]
    assert table.version() == 2  # created empty, then one commit per batch
    assert table.transaction_version("bronze@test") == 1
    assert len(pc.unique(table.to_pyarrow_table().column("id"))) == table.count() == 80
    # Two tasks, three devices each: every task wrote its own file per partition value.
    assert [len(lake.commit_adds(uri, version)) for version in (1, 2)] == [6, 6]


def test_ensure_table_creates_it_empty_and_refuses_another_partitioning(spark, lake):
    uri = lake.uri("silver")
    schema = T.StructType(
        [T.StructField("id", T.LongType()), T.StructField("device", T.StringType())]
    )

    ensure_table(uri, lake.options(uri), schema, ("device",))
    ensure_table(uri, lake.options(uri), schema, ("device",))

    assert lake.table(uri).version() == 0
    assert lake.table(uri).metadata().partition_columns == ["device"]
    assert read_table(spark, uri, lake.settings).count() == 0
    with pytest.raises(ValueError, match="partitioned by"):
        ensure_table(uri, lake.options(uri), schema, ())


CHILD_DRIVER = textwrap.dedent(
    """
    import sys
    from iotlake.config import load_settings
    from spark_jobs.session import spark_session
    from spark_jobs.io.delta_sink import write_stream

    landing, checkpoint, uri = sys.argv[1:4]
    settings = load_settings()
    spark = spark_session(settings, "delta-sink-crash")
    stream = (
        spark.readStream.schema("id LONG, device STRING, magn DOUBLE")
        .option("maxFilesPerTrigger", 1)
        .json(landing)
        .repartition(2)
    )
    query = write_stream(stream, uri, checkpoint, settings, trigger={"availableNow": True})
    query.awaitTermination()
    print("DONE", flush=True)
    """
)


@pytest.mark.slow
def test_driver_killed_mid_stream_then_restarted_writes_every_row_exactly_once(lake, tmp_path):
    landing, checkpoint, uri = tmp_path / "landing", tmp_path / "checkpoint", lake.uri("bronze")
    for index in range(8):
        land(landing, index, rows=50)
    command = [sys.executable, "-c", CHILD_DRIVER, str(landing), str(checkpoint), uri]
    env = {**os.environ, **settings_env(lake.settings)}

    driver = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        wait_for_version(lake, uri, 1, driver)
    finally:
        kill_with_descendants(driver)
    killed_at = lake.table(uri).version()
    finished = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)

    assert finished.returncode == 0, finished.stderr[-3000:]
    assert "DONE" in finished.stdout
    assert killed_at < 7
    ids = lake.table(uri).to_pyarrow_table().column("id")
    assert len(ids) == 400
    assert len(pc.unique(ids)) == 400


def wait_for_version(lake: Lake, uri: str, version: int, driver: subprocess.Popen) -> None:
    """Block until the child's table reaches `version` (it must still be running)."""
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        assert driver.poll() is None, "the streaming driver ended before it could be killed"
        try:
            if lake.table(uri).version() >= version:
                return
        except Exception:  # the table does not exist until the first batch commits
            pass
        time.sleep(0.2)
    raise AssertionError(f"table {uri} never reached version {version}")


def kill_with_descendants(process: subprocess.Popen) -> None:
    """kill -9 the driver, then make sure its JVM (which exits on its own) is gone too."""
    descendants = _descendants(process.pid)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    deadline = time.monotonic() + 30
    for pid in descendants:
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)


def _descendants(pid: int) -> list[int]:
    children_file = Path(f"/proc/{pid}/task/{pid}/children")
    children = (
        [int(child) for child in children_file.read_text().split()]
        if children_file.exists()
        else []
    )
    return [grandchild for child in children for grandchild in [child, *_descendants(child)]]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    state = Path(f"/proc/{pid}/stat")
    return not (state.exists() and state.read_text().split()[2] == "Z")
