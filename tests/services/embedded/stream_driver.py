"""A Kafka -> Delta streaming query in a process of its own, for the cluster tests.

A test process already holds a local SparkContext (one per process), so a query that runs on
the standalone cluster needs its own driver process. Settings come from IOTLAKE_* variables;
`spark.master` names the cluster.

    python -m tests.services.embedded.stream_driver TOPIC TABLE_DIR
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession

from iotlake.config import Settings, load_settings
from spark_jobs.session import spark_session


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("topic", help="Kafka topic to read from the earliest offset")
    parser.add_argument("table", type=Path, help="Delta table directory (checkpoint inside)")
    parser.add_argument("--max-per-batch", default="400", help="maxOffsetsPerTrigger")
    args = parser.parse_args(argv)
    settings = load_settings()
    spark = spark_session(settings, "iotlake-cluster-test")
    # Small batches keep tasks running on both executors while a worker is killed.
    query = (
        _limited(spark, settings, args.topic, args.max_per_batch)
        .writeStream.format("delta")
        .option("checkpointLocation", str(args.table.resolve() / "_checkpoint"))
        .queryName("cluster_kafka_to_delta")
        .trigger(processingTime="1 seconds")
        .start(str(args.table.resolve()))
    )
    print(f"query {query.id} running on {settings.spark.master}", flush=True)
    query.awaitTermination()


def _limited(spark: SparkSession, settings: Settings, topic: str, max_per_batch: str) -> DataFrame:
    """A topic's records, a limited number per micro-batch, so the stream spans many."""
    from pyspark.sql import functions as F

    raw = (
        spark.readStream.format("kafka")
        .option("kafka.bootstrap.servers", settings.kafka.bootstrap_servers)
        .option("subscribe", topic)
        .option("startingOffsets", "earliest")
        .option("maxOffsetsPerTrigger", max_per_batch)
        .load()
    )
    return raw.select(
        F.col("partition"),
        F.col("offset"),
        F.col("value").cast("string").alias("data"),
    )


if __name__ == "__main__":
    main()
