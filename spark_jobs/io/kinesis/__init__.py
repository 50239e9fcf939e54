"""Kinesis as a Spark streaming source: `spark.readStream.format("kinesis")`.

The Databricks Kinesis connector is proprietary, so iotlake has its own, with the same
format, option names and columns: a pipeline written for Databricks reads the same way here,
against moto, LocalStack or real AWS.

One module per job, each documenting its part of the behaviour:

- `options`: the options and their defaults, read once into `KinesisOptions`;
- `shards`: positions, checkpointed offsets, resharding and which shards to read;
- `fetch`: every call to Kinesis (client, shard listing, reading records);
- `source`: the Spark data source and stream reader, and why the driver fetches.
"""

from spark_jobs.io.kinesis.fetch import KinesisReadError
from spark_jobs.io.kinesis.options import KinesisOptionError, KinesisOptions, kinesis_options
from spark_jobs.io.kinesis.source import SCHEMA, KinesisDataSource, KinesisStreamReader

__all__ = [
    "SCHEMA",
    "KinesisDataSource",
    "KinesisOptionError",
    "KinesisOptions",
    "KinesisReadError",
    "KinesisStreamReader",
    "kinesis_options",
]
