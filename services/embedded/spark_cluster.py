"""Spark standalone master and its workers, started from pyspark's own `spark-class`."""

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


def worker_name(number: int) -> str:
    """`spark-worker` for the first worker (the name `iotlake status` shows), then `-2`..."""
    return "spark-worker" if number == 1 else f"spark-worker-{number}"


def worker_specs(settings: Settings) -> list[ServiceSpec]:
    """Every worker `spark.workers` asks for; more than one lets a cluster lose a worker."""
    return [worker_spec(settings, number) for number in range(1, settings.spark.workers + 1)]


def worker_spec(settings: Settings, number: int = 1) -> ServiceSpec:
    """Worker `number`: its own UI port (`worker_ui_port` + number - 1) and work directory."""
    spark = settings.spark
    suffix = "" if number == 1 else f"-{number}"
    work_dir = (settings.data_dir / f"spark-work{suffix}").resolve()
    ui_port = spark.worker_ui_port + number - 1
    return ServiceSpec(
        name=worker_name(number),
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
            str(ui_port),
            "--work-dir",
            str(work_dir),
        ],
        endpoint=f"http://{LOOPBACK}:{ui_port}",
        host=LOOPBACK,
        ports=(ui_port,),
        healthy=lambda: alive_workers(spark.master_ui_port) >= number,
        install_hint="spark-class ships with pyspark: run `make venv`",
        env=_env(settings, f"worker{suffix}"),
        prepare=lambda: work_dir.mkdir(parents=True, exist_ok=True),
    )


def alive_workers(ui_port: int) -> int:
    """How many workers the master counts as alive (a killed one drops out after a timeout)."""
    return int(master_state(ui_port).get("aliveworkers", 0))
