"""The one way iotlake builds a SparkSession: local mode or the standalone cluster.

Every session carries the engines a Databricks user's code expects: Delta Lake for Spark
(`format("delta")`, `toTable`, MERGE, `DeltaTable`), Spark's own Kafka source
(`format("kafka")`) and S3A for `s3://` and `s3a://` paths on the configured endpoint. The
jars come from `.jars/spark/` (`make jars`), never from the network. The lake is the catalog:
every session names the tables the lake holds (`demo_frank.motion.sensor`, see `catalog`),
so tables written by earlier runs are read by name in a new session.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

from pyspark.sql import SparkSession

from iotlake.config import LOOPBACK, Settings
from iotlake.jars import jars
from spark_jobs import catalog, class_archive
from spark_jobs.io.autoloader import AutoloaderDataSource
from spark_jobs.io.kinesis import KinesisDataSource
from spark_jobs.io.storage import table_uri

# A run that ends after one pass (`--once`) never lives long enough to profit from the JIT's
# optimizing compiler, whose threads take one of two cores while it runs: the first tier only
# (`iotlake run seismograph --once`, with the class archive: 30-33 -> 27-28 s).
SHORT_RUN = ("-XX:TieredStopAtLevel=1",)


def spark_session(
    settings: Settings, app_name: str = "iotlake", java_options: Sequence[str] = ()
) -> SparkSession:
    """A session bound to loopback, in UTC, sized for a laptop; reused if one is active.

    `java_options` are added to the driver JVM's (`SHORT_RUN` for a run that ends after one
    pass)."""
    # Spark reads these from the environment when the JVM starts, not from the builder.
    if settings.spark.driver_host == LOOPBACK:
        os.environ.setdefault("SPARK_LOCAL_IP", LOOPBACK)
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    spark = settings.spark
    bind_address = LOOPBACK if spark.driver_host == LOOPBACK else "0.0.0.0"
    builder = (
        SparkSession.builder.appName(app_name)
        .master(spark.master)
        .config("spark.jars", ",".join(str(jar) for jar in session_jars(settings)))
        .config("spark.driver.host", spark.driver_host)
        .config("spark.driver.bindAddress", bind_address)
        .config("spark.driver.memory", spark.driver_memory)
        .config(
            "spark.driver.extraJavaOptions", " ".join(driver_java_options(settings, java_options))
        )
        .config("spark.sql.shuffle.partitions", str(spark.shuffle_partitions))
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.ui.enabled", str(spark.ui_enabled).lower())
        # Progress bars fill the pipelines' logs and cost the driver time; the event log
        # and `iotlake status` tell progress.
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.python.worker.reuse", "true")
        # Python data sources start a process per streaming source; give a loaded laptop time.
        .config("spark.python.authenticate.socketTimeout", "120s")
    )
    for key, value in delta_conf(settings).items():
        builder = builder.config(key, value)
    for key, value in s3a_conf(settings).items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    # `format("kinesis")` and `format("cloudFiles")` as on Databricks, in any code.
    session.dataSource.register(KinesisDataSource)
    session.dataSource.register(AutoloaderDataSource)
    catalog.register_lake(session, settings)
    return session


def driver_java_options(settings: Settings, java_options: Sequence[str]) -> list[str]:
    """The serial collector, the class archive (see `class_archive`), then `java_options`."""
    # One collector thread between pauses instead of G1's concurrent ones: on two cores those
    # took CPU from the queries, and its bookkeeping ~130 MB (`iotlake bench demo`: seismograph
    # p95 11.2 -> 7.3 s, JVM RSS 2.9 -> 1.7 GB with a 1g heap).
    # The JVM's clock zone is UTC, as the session's is: Delta Lake 4.4 rebuilds a table's whole
    # state at every commit when either zone is not UTC (`allFilesInCrc...forceOnNonUTC`). On a
    # laptop set to Europe/Berlin a small blind append took 0.48 s, in UTC 0.17 s.
    return [
        "-XX:+UseSerialGC",
        "-Duser.timezone=UTC",
        *class_archive.java_options(settings),
        *java_options,
    ]


def session_jars(settings: Settings) -> list[Path]:
    """Delta Lake, Spark's Kafka source, S3A, and iotlake's catalog plugin."""
    return [*jars(settings.jars_dir, "spark"), *jars(settings.jars_dir, "catalog")]


def delta_conf(settings: Settings) -> dict[str, str]:
    """Delta Lake as the session's table format, sized for laptop tables."""
    return {
        # A table user code creates by name in the default database lands in the lake.
        "spark.sql.warehouse.dir": table_uri(settings),
        "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
        "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
        # A table written by name without a format is a Delta table, as on Databricks.
        "spark.sql.sources.default": "delta",
        # Delta rebuilds a table's state (default 50 tasks) at every idempotent write and
        # MERGE: here a log is one small checkpoint and at most ten commits, which one task
        # reads faster than four (a micro-batch's append 0.63 -> 0.50 s, MERGE 1.07 -> 0.92 s).
        "spark.databricks.delta.snapshotPartitions": "1",
        # Each micro-batch commits; the optional per-commit checksum file cost a third of a
        # small commit here (800 -> 530 ms median) and no reader iotlake uses needs it.
        "spark.databricks.delta.writeChecksumFile.enabled": "false",
    }


def s3a_conf(settings: Settings) -> dict[str, str]:
    """S3A on the configured endpoint; `s3://` paths (as Databricks users write them) too."""
    aws = settings.aws
    conf = {
        "spark.hadoop.fs.s3.impl": "org.apache.hadoop.fs.s3a.S3AFileSystem",
        "spark.hadoop.fs.s3a.aws.credentials.provider": (
            "org.apache.hadoop.fs.s3a.SimpleAWSCredentialsProvider"
        ),
        "spark.hadoop.fs.s3a.access.key": aws.access_key_id.get_secret_value(),
        "spark.hadoop.fs.s3a.secret.key": aws.secret_access_key.get_secret_value(),
        "spark.hadoop.fs.s3a.endpoint.region": aws.region,
    }
    if aws.endpoint_url:
        conf |= {
            "spark.hadoop.fs.s3a.endpoint": aws.endpoint_url,
            "spark.hadoop.fs.s3a.path.style.access": "true",
            "spark.hadoop.fs.s3a.connection.ssl.enabled": "false",
        }
    return conf
