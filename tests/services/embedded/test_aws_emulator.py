"""The AWS endpoints (embedded emulator or containers) serve S3 and multi-shard Kinesis."""

from __future__ import annotations

import base64
import threading
import uuid

import boto3
import pyarrow as pa
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from deltalake import DeltaTable, write_deltalake

from services.embedded import aws_emulator
from services.embedded import stack as embedded
from spark_jobs.io.kinesis.fetch import every_record
from tests.support.settings import settings_for


def test_s3_put_get_and_list(endpoints):
    for s3_kwargs in endpoints.s3_targets.values():
        _put_get_and_list(boto3.client("s3", **s3_kwargs))


def _put_get_and_list(s3):
    bucket = f"b-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    for i in range(3):
        s3.put_object(Bucket=bucket, Key=f"landing/file-{i}.csv", Body=f"id\n{i}\n".encode())

    listed = s3.list_objects_v2(Bucket=bucket, Prefix="landing/")["Contents"]
    body = s3.get_object(Bucket=bucket, Key="landing/file-2.csv")["Body"].read()

    assert [obj["Key"] for obj in listed] == [f"landing/file-{i}.csv" for i in range(3)]
    assert body == b"id\n2\n"


def test_kinesis_records_spread_over_shards_and_read_back(endpoints):
    kinesis = boto3.client("kinesis", **endpoints.settings.aws.boto3_kwargs())
    name = f"s-{uuid.uuid4().hex[:8]}"
    kinesis.create_stream(StreamName=name, ShardCount=4)
    kinesis.get_waiter("stream_exists").wait(StreamName=name, WaiterConfig={"Delay": 0.2})
    records = [{"Data": f"event-{i}".encode(), "PartitionKey": f"client-{i}"} for i in range(200)]
    assert kinesis.put_records(StreamName=name, Records=records)["FailedRecordCount"] == 0

    read, shards_with_data = [], 0
    for shard in kinesis.list_shards(StreamName=name)["Shards"]:
        iterator = kinesis.get_shard_iterator(
            StreamName=name, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        batch = kinesis.get_records(ShardIterator=iterator, Limit=1000)["Records"]
        shards_with_data += bool(batch)
        read += [record["Data"].decode() for record in batch]

    assert sorted(read) == sorted(f"event-{i}" for i in range(200))
    assert shards_with_data == 4


def test_a_shard_read_while_it_is_written_answers_every_call(endpoints):
    """Consumers poll a shard while producers append to it, as the pipeline and the demo's
    producers do: no call may fail (one try each, so a retry cannot hide a failure)."""
    options = endpoints.settings.aws.boto3_kwargs()
    once = Config(retries={"total_max_attempts": 1})
    kinesis = boto3.client("kinesis", config=once, **options)
    name = f"s-{uuid.uuid4().hex[:8]}"
    kinesis.create_stream(StreamName=name, ShardCount=1)
    kinesis.get_waiter("stream_exists").wait(StreamName=name, WaiterConfig={"Delay": 0.2})
    shard = kinesis.list_shards(StreamName=name)["Shards"][0]["ShardId"]
    writing, errors = threading.Event(), []
    for _ in range(40):  # a shard some minutes into a demo
        backlog = [{"Data": b"earlier", "PartitionKey": "p"} for _ in range(500)]
        kinesis.put_records(StreamName=name, Records=backlog)

    def produce(worker: int) -> None:
        client = boto3.client("kinesis", config=once, **options)
        for batch in range(30):
            records = [
                {"Data": f"{worker}-{batch}-{i}".encode(), "PartitionKey": "p"} for i in range(100)
            ]
            try:
                client.put_records(StreamName=name, Records=records)
            except ClientError as error:
                errors.append(error)

    def consume() -> None:
        # At the tip, as a caught-up consumer reads: the emulator walks the shard's records
        # from the first to find where to start, while the producers append to them.
        client = boto3.client("kinesis", config=once, **options)
        iterator = client.get_shard_iterator(
            StreamName=name, ShardId=shard, ShardIteratorType="LATEST"
        )["ShardIterator"]
        while writing.is_set():
            try:
                iterator = client.get_records(ShardIterator=iterator)["NextShardIterator"]
            except ClientError as error:
                errors.append(error)
                return

    writing.set()
    consumers = [threading.Thread(target=consume) for _ in range(2)]
    producers = [threading.Thread(target=produce, args=(worker,)) for worker in range(2)]
    for thread in consumers + producers:
        thread.start()
    for thread in producers:
        thread.join()
    writing.clear()
    for thread in consumers:
        thread.join()

    assert errors == []
    assert len(list(every_record(kinesis, name))) == 40 * 500 + 2 * 30 * 100


@pytest.mark.parametrize(
    ("after", "limit"),
    [("0", None), ("0", 10), ("0", 0), ("24", 10), ("45", 10), ("50", 5), ("60", None)],
)
def test_get_records_by_sequence_number_answers_as_moto_walking_the_shard(after, limit):
    from moto.kinesis.models import Shard

    shard = Shard(0, 0, 2**128)
    for i in range(50):
        shard.put_record(f"p-{i % 3}", f"event-{i}", None)

    assert aws_emulator.records_after(shard, after, limit) == Shard.get_records(shard, after, limit)


def test_a_compact_record_answers_as_moto_s_record():
    from moto.kinesis.models import Record

    data = base64.b64encode(b'{"device_id": "phone-007", "magnitude": 1.25}').decode()
    ours = aws_emulator.CompactRecord("phone-007", data, 42, None).to_json()
    moto_s = Record("phone-007", data, 42, None).to_json()

    arrival = ours.pop("ApproximateArrivalTimestamp") - moto_s.pop("ApproximateArrivalTimestamp")
    assert abs(arrival.total_seconds()) < 1
    assert ours == moto_s
    assert aws_emulator.CompactRecord("p", data, 1, None).data == data


# --- kill -9 of the embedded emulator: its journal brings streams and objects back ---------


def _stack(tmp_path, **aws):
    settings = settings_for(tmp_path)
    settings = settings.model_copy(update={"aws": settings.aws.model_copy(update=aws)})
    embedded.up(settings, report=lambda line: None)
    return settings


def _put_stream(kinesis, name: str, first: int, count: int) -> list[tuple[str, str, str]]:
    records = [
        {"Data": f"event-{i}".encode(), "PartitionKey": f"client-{i % 37}"}
        for i in range(first, first + count)
    ]
    placed = []
    for chunk in range(0, count, 500):
        reply = kinesis.put_records(StreamName=name, Records=records[chunk : chunk + 500])
        assert reply["FailedRecordCount"] == 0
        placed += [
            (r["ShardId"], r["SequenceNumber"], sent["Data"].decode())
            for r, sent in zip(reply["Records"], records[chunk : chunk + 500], strict=True)
        ]
    return placed


def _read_stream(kinesis, name: str) -> list[tuple[str, str, str]]:
    return [
        (shard_id, r["SequenceNumber"], r["Data"].decode())
        for shard_id, r in every_record(kinesis, name)
    ]


def _bucket_contents(s3, bucket: str) -> dict[str, bytes]:
    listed = s3.list_objects_v2(Bucket=bucket).get("Contents", [])
    return {o["Key"]: s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read() for o in listed}


def _fill_bucket(s3, bucket: str) -> None:
    """Plain, oddly named, overwritten, deleted and multipart objects."""
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="landing/a b+c%2Fd.json", Body=b'{"id": 1}')
    s3.put_object(Bucket=bucket, Key="landing/kept.csv", Body=b"id\n1\n")
    s3.put_object(Bucket=bucket, Key="landing/kept.csv", Body=b"id\n2\n")
    s3.put_object(Bucket=bucket, Key="landing/gone.csv", Body=b"id\n3\n")
    s3.delete_object(Bucket=bucket, Key="landing/gone.csv")
    upload = s3.create_multipart_upload(Bucket=bucket, Key="big/part.bin")["UploadId"]
    parts = []
    for number, byte in enumerate([b"x", b"y"], start=1):
        body = byte * (5 * 2**20 if number == 1 else 1000)
        etag = s3.upload_part(
            Bucket=bucket, Key="big/part.bin", UploadId=upload, PartNumber=number, Body=body
        )["ETag"]
        parts.append({"ETag": etag, "PartNumber": number})
    s3.complete_multipart_upload(
        Bucket=bucket, Key="big/part.bin", UploadId=upload, MultipartUpload={"Parts": parts}
    )


def test_killed_emulator_comes_back_with_same_records_sequence_numbers_and_objects(tmp_path):
    settings = _stack(tmp_path)
    try:
        kinesis = boto3.client("kinesis", **settings.aws.boto3_kwargs())
        s3 = boto3.client("s3", **settings.aws.boto3_kwargs())
        kinesis.create_stream(StreamName="phones", ShardCount=4)
        kinesis.get_waiter("stream_exists").wait(StreamName="phones", WaiterConfig={"Delay": 0.2})
        placed = _put_stream(kinesis, "phones", 0, 1500)
        _fill_bucket(s3, "lake")
        table = "s3://lake/tables/readings"
        options = settings.aws.object_store_options()
        for batch in range(3):
            write_deltalake(
                table, pa.table({"n": [batch] * 10}), mode="append", storage_options=options
            )
        objects_before = _bucket_contents(s3, "lake")

        embedded.restart(settings, "aws", hard=True)

        assert sorted(_read_stream(kinesis, "phones")) == sorted(placed)
        assert _bucket_contents(s3, "lake") == objects_before
        assert "landing/gone.csv" not in objects_before
        restored = DeltaTable(table, storage_options=options)
        assert restored.version() == 2
        assert sorted(restored.to_pandas()["n"]) == sorted([0, 1, 2] * 10)
        # Writes go on where they stopped: each shard's numbers keep rising.
        later = _put_stream(kinesis, "phones", 1500, 200)
        highest: dict[str, int] = {}
        for shard, sequence, _ in placed:
            highest[shard] = max(highest.get(shard, 0), int(sequence))
        assert all(int(seq) > highest[shard] for shard, seq, _ in later)
    finally:
        embedded.down(settings, report=lambda line: None)


def test_without_journal_a_killed_emulator_comes_back_empty(tmp_path):
    settings = _stack(tmp_path, journal=False)
    try:
        s3 = boto3.client("s3", **settings.aws.boto3_kwargs())
        s3.create_bucket(Bucket="lake")

        embedded.restart(settings, "aws", hard=True)

        names = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
        assert "lake" not in names
    finally:
        embedded.down(settings, report=lambda line: None)


def test_down_forgets_the_journal_so_the_next_stack_starts_empty(tmp_path):
    settings = _stack(tmp_path)
    s3 = boto3.client("s3", **settings.aws.boto3_kwargs())
    s3.create_bucket(Bucket="lake")
    embedded.down(settings, report=lambda line: None)
    assert not aws_emulator.journal_path(settings).exists()

    embedded.up(settings, report=lambda line: None)
    try:
        assert "lake" not in {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
    finally:
        embedded.down(settings, report=lambda line: None)


def test_journal_skips_a_line_cut_short_by_a_kill(tmp_path):
    path = tmp_path / "journal.jsonl"
    journal = aws_emulator.Journal(path)
    environ = {"REQUEST_METHOD": "PUT", "PATH_INFO": "/lake/a", "HTTP_HOST": "h", "x": 1}
    journal.record(environ, b"first", None)
    journal.record(environ | {"PATH_INFO": "/lake/b"}, b"second", None)
    with path.open("ab") as cut:
        cut.write(b'{"environ": {"REQUEST_METHOD": "PU')

    entries = list(aws_emulator.Journal(path).entries())

    assert [e["environ"]["PATH_INFO"] for e in entries] == ["/lake/a", "/lake/b"]
    assert "x" not in entries[0]["environ"]


@pytest.mark.parametrize(
    ("environ", "journaled"),
    [
        ({"REQUEST_METHOD": "PUT", "PATH_INFO": "/lake/key"}, True),
        ({"REQUEST_METHOD": "DELETE", "PATH_INFO": "/lake/key"}, True),
        ({"REQUEST_METHOD": "GET", "PATH_INFO": "/lake/key"}, False),
        ({"REQUEST_METHOD": "HEAD", "PATH_INFO": "/lake"}, False),
        ({"REQUEST_METHOD": "POST", "HTTP_X_AMZ_TARGET": "Kinesis_20131202.PutRecords"}, True),
        ({"REQUEST_METHOD": "POST", "HTTP_X_AMZ_TARGET": "Kinesis_20131202.GetRecords"}, False),
        ({"REQUEST_METHOD": "POST", "HTTP_X_AMZ_TARGET": "Kinesis_20131202.ListShards"}, False),
        (
            {
                "REQUEST_METHOD": "POST",
                "PATH_INFO": "/service/Kinesis_20131202/operation/DescribeStream",
            },
            False,
        ),
        ({"REQUEST_METHOD": "POST", "PATH_INFO": "/moto-api/recorder/start-recording"}, False),
    ],
)
def test_only_requests_that_change_state_are_journaled(environ, journaled):
    assert aws_emulator.changes_state(environ) is journaled
