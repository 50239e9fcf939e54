"""Helpers for end-to-end pipeline tests: a private lake and stream per test, table reads,
the event log's counts."""

from __future__ import annotations

import uuid
from pathlib import Path

import boto3
import pandas as pd
from confluent_kafka.admin import AdminClient, NewTopic
from deltalake import DeltaTable

from iotlake.config import Settings
from spark_jobs.io.storage import storage_options, table_uri


def private_settings(stack: Settings, lake: Path | str, system: str, transport: str, shards: int):
    """Settings whose lake and stream/topic belong to one test only."""
    name = f"{system}-{uuid.uuid4().hex[:8]}"
    if transport == "kinesis":
        kinesis = boto3.client("kinesis", **stack.aws.boto3_kwargs())
        kinesis.create_stream(StreamName=name, ShardCount=shards)
        kinesis.get_waiter("stream_exists").wait(StreamName=name, WaiterConfig={"Delay": 0.2})
    else:
        admin = AdminClient({"bootstrap.servers": stack.kafka.bootstrap_servers})
        admin.create_topics([NewTopic(name, shards, 1)])[name].result(timeout=30)
    section = "seismograph" if system == "seismograph" else "aws_iot"
    config = getattr(stack, section).model_copy(update={"stream": name, "transport": transport})
    return stack.model_copy(
        update={section: config, "lake": stack.lake.model_copy(update={"root": str(lake)})}
    )


def read_table(settings: Settings, system: str, table: str) -> pd.DataFrame:
    """A Delta table as pandas, read with delta-rs (independently of Spark)."""
    uri = table_uri(settings, system, table)
    return DeltaTable(uri, storage_options=storage_options(settings, uri) or None).to_pandas()


def failed_count(log: pd.DataFrame, table: str, expectation: str) -> int:
    """How many rows of `table` failed `expectation`, summed over the event log's batches."""
    rows = log[(log["table"] == table) & (log["expectation"] == expectation)]
    return int(rows["failed"].sum())
