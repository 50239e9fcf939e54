"""Spark standalone master and one worker, started from pyspark's own `spark-class`."""

from __future__ import annotations

import importlib.util
import json
import sys
import urllib.request
from pathlib import Path

from iotlake.config import LOOPBACK, Settings
from services.embedded.spec import ServiceSpec


def spark_home() -> Path:
    """pyspark's install directory is a complete SPARK_HOME (jars, bin, conf)."""
    found = importlib.util.find_spec("pyspark")
    if found is None or found.origin is None:
        raise RuntimeError("pyspark is not installed: run `make venv`")
    return Path(found.origin).parent


def master_state(ui_port: int) -> dict:
    """The master's JSON status page, or {} while it does not answer."""
    try:
        with urllib.request.urlopen(f"http://{LOOPBACK}:{ui_port}/json/", timeout=2) as reply:
            return json.load(reply)
    except (OSError, ValueError):
        return {}


def _env(settings: Settings, role: str) -> dict[str, str]:
    home = spark_home()
    logs = (settings.log_dir / "spark").resolve()
    return {
        "SPARK_HOME": str(home),
        "SPARK_LOCAL_IP": LOOPBACK,
        "SPARK_LOG_DIR": str(logs),
        "SPARK_WORKER_DIR": str((settings.data_dir / "spark-work").resolve()),
        "PYSPARK_PYTHON": sys.executable,
        "SPARK_IDENT_STRING": f"iotlake-{role}",
    }


def master_spec(settings: Settings) -> ServiceSpec:
    spark = settings.spark
    return ServiceSpec(
        name="spark-master",
        command=[
            str(spark_home() / "bin" / "spark-class"),
            "org.apache.spark.deploy.master.Master",
            "--host",
            LOOPBACK,
            "--port",
            str(spark.master_port),
            "--webui-port",
            str(spark.master_ui_port),
        ],
        endpoint=spark.cluster_url,
        host=LOOPBACK,
        ports=(spark.master_port, spark.master_ui_port),
        healthy=lambda: master_state(spark.master_ui_port).get("status") == "ALIVE",
        install_hint="spark-class ships with pyspark: run `make venv`",
        env=_env(settings, "master"),
    )


def worker_spec(settings: Settings) -> ServiceSpec:
    spark = settings.spark
    work_dir = (settings.data_dir / "spark-work").resolve()
    return ServiceSpec(
        name="spark-worker",
        command=[
            str(spark_home() / "bin" / "spark-class"),
            "org.apache.spark.deploy.worker.Worker",
            spark.cluster_url,
            "--host",
            LOOPBACK,
            "--cores",
            str(spark.worker_cores),
            "--memory",
            spark.worker_memory,
            "--webui-port",
            str(spark.worker_ui_port),
            "--work-dir",
            str(work_dir),
        ],
        endpoint=f"http://{LOOPBACK}:{spark.worker_ui_port}",
        host=LOOPBACK,
        ports=(spark.worker_ui_port,),
        healthy=lambda: master_state(spark.master_ui_port).get("aliveworkers", 0) >= 1,
        install_hint="spark-class ships with pyspark: run `make venv`",
        env=_env(settings, "worker"),
        prepare=lambda: work_dir.mkdir(parents=True, exist_ok=True),
    )
