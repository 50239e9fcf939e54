"""Spark runs real jobs in local mode and on the standalone cluster."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from services.embedded import stack as embedded
from services.embedded.spark_cluster import master_state
from spark_jobs import class_archive
from tests.support.settings import settings_env


def test_local_mode_runs_an_aggregation(spark):
    frame = spark.createDataFrame([(f"client-{i % 3}", i) for i in range(30)], ["device", "magn"])
    rows = frame.groupBy("device").max("magn").orderBy("device").collect()
    assert [(row[0], row[1]) for row in rows] == [
        ("client-0", 27),
        ("client-1", 28),
        ("client-2", 29),
    ]


def test_the_driver_maps_the_class_archive_made_for_its_jdk_and_classpath(spark, stack_settings):
    archive = class_archive.archive_path(stack_settings)
    assert archive.is_file(), f"no class archive at {archive}: `make jars` makes it"
    jvm = spark.sparkContext._jvm
    arguments = list(
        jvm.java.lang.management.ManagementFactory.getRuntimeMXBean().getInputArguments()
    )
    assert f"-XX:SharedArchiveFile={archive}" in arguments
    assert "-Duser.timezone=UTC" in arguments
    # -Xshare:on refuses to start unless the archive maps and matches the JDK and classpath.
    java = Path(jvm.java.lang.System.getProperty("java.home")) / "bin" / "java"
    classpath = jvm.java.lang.System.getProperty("java.class.path")
    check = [str(java), "-Xshare:on", f"-XX:SharedArchiveFile={archive}", "-cp", classpath]
    result = subprocess.run([*check, "-version"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
@pytest.mark.cluster
def test_standalone_cluster_runs_a_job_on_its_worker(stack):
    embedded.up(stack, cluster=True, report=lambda line: None)
    # A second SparkContext cannot live in this process next to the local one: use a child.
    job = textwrap.dedent(
        """
        from iotlake.config import load_settings
        from spark_jobs.session import spark_session
        settings = load_settings()
        spark = spark_session(settings, "cluster-smoke")
        total = spark.range(0, 100000, numPartitions=4).selectExpr("sum(id)").first()[0]
        print("TOTAL", total)
        spark.stop()
        """
    )
    env = {**os.environ, **settings_env(stack), "IOTLAKE_SPARK__MASTER": stack.spark.cluster_url}
    result = subprocess.run(
        [sys.executable, "-c", job], env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "TOTAL 4999950000" in result.stdout
    apps = master_state(stack.spark.master_ui_port)["completedapps"]
    assert any(app["name"] == "cluster-smoke" for app in apps)
