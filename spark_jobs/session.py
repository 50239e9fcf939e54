"""The one way iotlake builds a SparkSession: local mode or the standalone cluster."""

from __future__ import annotations

import os
import sys

from pyspark.sql import SparkSession

from iotlake.config import LOOPBACK, Settings


def spark_session(settings: Settings, app_name: str = "iotlake") -> SparkSession:
    """A session bound to loopback, in UTC, sized for a laptop; reused if one is active."""
    # Spark reads these from the environment when the JVM starts, not from the builder.
    if settings.spark.driver_host == LOOPBACK:
        os.environ.setdefault("SPARK_LOCAL_IP", LOOPBACK)
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    spark = settings.spark
    bind_address = LOOPBACK if spark.driver_host == LOOPBACK else "0.0.0.0"
    return (
        SparkSession.builder.appName(app_name)
        .master(spark.master)
        .config("spark.driver.host", spark.driver_host)
        .config("spark.driver.bindAddress", bind_address)
        .config("spark.driver.memory", spark.driver_memory)
        .config("spark.sql.shuffle.partitions", str(spark.shuffle_partitions))
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.ui.enabled", str(spark.ui_enabled).lower())
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.python.worker.reuse", "true")
        # Python data sources start a process per streaming source; give a loaded laptop time.
        .config("spark.python.authenticate.socketTimeout", "120s")
        .getOrCreate()
    )
