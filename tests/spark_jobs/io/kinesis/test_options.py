"""The Kinesis source's options, read as the Databricks source names them: no Spark, no AWS."""

from __future__ import annotations

import pickle

import pytest

from spark_jobs.io.kinesis import KinesisOptionError, KinesisOptions
from spark_jobs.io.kinesis.options import StartPosition

JUNE_25_MS = 1_719_311_025_000  # 2024-06-25T10:23:45Z


def test_only_the_stream_is_required_and_the_rest_default_as_on_databricks():
    options = KinesisOptions.parse({"streamName": "dais2023"})

    assert options == KinesisOptions(
        stream_name="dais2023",
        region=None,
        endpoint_url=None,
        start=StartPosition("LATEST"),
        max_records_per_fetch=10_000,
        max_records_per_trigger=None,
        max_fetch_seconds=10.0,
        min_fetch_period_seconds=0.4,
        shard_fetch_interval_seconds=1.0,
    )
    assert pickle.loads(pickle.dumps(options)) == options


def test_names_are_case_insensitive_aliases_count_and_spark_path_is_ignored():
    options = KinesisOptions.parse(
        {
            "STREAMNAME": "s",
            "endpoint": "http://127.0.0.1:4566",
            "maxfetchduration": "400ms",
            "minFetchPeriod": "2m",
            "shardFetchInterval": "1.5",
            "maxRecordsPerTrigger": "300",
            "path": "ignored",
        }
    )

    assert options.endpoint_url == "http://127.0.0.1:4566"
    assert options.max_fetch_seconds == pytest.approx(0.4)
    assert options.min_fetch_period_seconds == 120.0
    assert options.shard_fetch_interval_seconds == 1.5
    assert options.max_records_per_trigger == 300


@pytest.mark.parametrize(
    ("raw", "start"),
    [
        ("LATEST", StartPosition("LATEST")),
        ("trim_horizon", StartPosition("TRIM_HORIZON")),
        ("earliest", StartPosition("TRIM_HORIZON")),
        ('{"at_timestamp": "2024-06-25T10:23:45Z"}', StartPosition("AT_TIMESTAMP", JUNE_25_MS)),
        ("2024-06-25T10:23:45", StartPosition("AT_TIMESTAMP", JUNE_25_MS)),
        (
            '{"at_timestamp": "25/06/2024 10:23:45", "format": "%d/%m/%Y %H:%M:%S"}',
            StartPosition("AT_TIMESTAMP", JUNE_25_MS),
        ),
        ("  ", StartPosition("LATEST")),  # blank: the default
    ],
)
def test_initial_position_forms(raw, start):
    assert KinesisOptions.parse({"streamName": "s", "initialPosition": raw}).start == start


@pytest.mark.parametrize(
    ("options", "named", "shown"),
    [
        ({"streamName": ""}, "streamName", 'is required: .option("streamName", "<stream>")'),
        ({"streamName": "s", "initialPosition": "yesterday"}, "initialPosition", "'yesterday'"),
        (
            {"streamName": "s", "initialPosition": '{"at_timestamp": "june"}'},
            "initialPosition",
            "must be an at_timestamp in ISO-8601, not 'june'",
        ),
        (
            {"streamName": "s", "maxRecordsPerFetch": "20000"},
            "maxRecordsPerFetch",
            "must be 1..10000, not '20000'",
        ),
        ({"streamName": "s", "maxFetchDuration": "soon"}, "maxFetchDuration", "not 'soon'"),
        ({"streamName": "s", "awsAccessKey": "k"}, "awsSecretKey", "set it with awsAccessKey"),
        (
            {"streamName": "s", "initalPosition": "latest"},
            "initalPosition",
            "did you mean 'initialPosition'?",
        ),
    ],
)
def test_bad_option_fails_with_one_line_naming_it(options, named, shown):
    with pytest.raises(KinesisOptionError) as raised:
        KinesisOptions.parse(options)
    message = str(raised.value)
    assert message.startswith(f"kinesis source: option '{named}' ")
    assert shown in message
    assert "\n" not in message
