"""Lakeflow pipelines and job scripts written as on Databricks, run on open-source Spark.

A pipeline is a folder in a temporary directory, in the Databricks form: `import dlt` or
`from pyspark import pipelines as dp`, reads by dataset name, Auto Loader over `/Volumes/...`
landing paths, SQL files beside Python ones, `spark-pipeline.yml` or a `databricks.yml` bundle.
Files are the sources, so no broker is needed. What a run leaves is read back independently of
Spark: the tables with delta-rs, and the event log's counts.
"""

from __future__ import annotations

import json
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from pyspark.sql import SparkSession

from iotlake.config import Settings
from spark_jobs import runner
from spark_jobs.lakeflow.loader import Pipeline
from spark_jobs.runner import Flow
from tests.support.lake import read_table

# Landed readings and the devices they come from: a SQL pipeline's sources, and a job
# script's.
READINGS = [
    {"device": "a", "reading": 10.5},
    {"device": "b", "reading": -2.5},
    {"device": None, "reading": 3.5},
    {"device": "a", "reading": 120.5},
    {"device": "c", "reading": 7.5},
]
DEVICES = [
    {"device": "a", "site": "north"},
    {"device": "b", "site": "north"},
    {"device": "c", "site": "south"},
]
# A bundle whose targets give its variables their values: `dev` by default, `prod` its own
# landing folder; no `staging`.
BUNDLE = """
    bundle:
      name: lakeflow_sql_bundle

    variables:
      landing:
        description: where the JSON files land
        default: /Volumes/lf/sqlmix/files/dev
      min_reading:
        default: 0

    resources:
      pipelines:
        readings:
          name: lakeflow_sql
          catalog: lf
          schema: sqlmix
          libraries:
            - glob:
                include: transformations/**
          configuration:
            landing: ${var.landing}
            min_reading: ${var.min_reading}

    targets:
      dev:
        default: true
      prod:
        variables:
          landing: /Volumes/lf/sqlmix/files/prod
    """


def write_folder(folder: Path, files: dict[str, str]) -> Path:
    """Write `files` (relative name -> text, dedented) under `folder`; returns it."""
    for name, text in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"))
    return folder


def spark_pipeline_yml(name: str, catalog: str, database: str, configuration: dict) -> str:
    """A `spark-pipeline.yml` whose libraries are every file under `transformations/`."""
    lines = [
        f"name: {name}",
        f"catalog: {catalog}",
        f"database: {database}",
        "libraries:",
        "  - glob:",
        "      include: transformations/**",
    ]
    if configuration:
        lines += ["configuration:", *(f"  {k}: {json.dumps(v)}" for k, v in configuration.items())]
    return "\n".join(lines) + "\n"


def land_json(folder: str | Path, name: str, rows: list[dict]) -> None:
    """One JSON-lines file in a landing folder."""
    path = Path(folder) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))


def failed(log: pd.DataFrame, table: str) -> dict[str, tuple[str, int]]:
    """Per expectation of a flow: its action and the rows that failed it over all batches."""
    rows = log[(log["table"] == table) & log["expectation"].notna()]
    grouped = rows.groupby(["expectation", "action"])["failed"].sum()
    return {name: (action, int(count)) for (name, action), count in grouped.items()}


def records(frame: pd.DataFrame, *columns: str) -> list[dict]:
    """Rows as dicts of `columns`, sorted, NaN as None: easy to compare with Python lists."""
    picked = frame[list(columns)].astype(object).where(frame[list(columns)].notna(), None)
    return sorted(picked.to_dict("records"), key=lambda row: [str(row[c]) for c in columns])


@dataclass
class Run:
    """What one run of a pipeline left: its flows, its report lines, its tables."""

    settings: Settings
    pipeline: Pipeline
    flows: list[Flow]
    lines: list[str]

    def table(self, name: str) -> pd.DataFrame:
        return read_table(self.settings, self.pipeline.name, name)

    @property
    def log(self) -> pd.DataFrame:
        return self.table("event_log")


def run_pipeline(
    spark: SparkSession, settings: Settings, folder: Path, target: str | None = None
) -> Run:
    """Load the pipeline in `folder` (for a bundle's `target`) and run every flow once,
    printing its report so a failing test shows what ran."""
    pipeline = runner.load(folder, settings, spark, target=target)
    lines: list[str] = []
    flows = runner.run_once(spark, settings, pipeline, report=lines.append)
    print("\n".join(lines))
    return Run(settings, pipeline, flows, lines)
