"""The AWS endpoints (embedded emulator or containers) serve S3 and multi-shard Kinesis."""

from __future__ import annotations

import uuid

import boto3


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
