"""The pipeline commands: run systems, Lakeflow pipeline folders and notebook jobs; write and
check the expectation suites; evaluate the alerts. `iotlake.cli` registers the root commands
and the `pipeline` and `job` groups."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from iotlake.commands.common import fail, require, settings, use_settings

pipeline_app = typer.Typer(no_args_is_help=True, help="Run a Databricks pipeline folder.")
job_app = typer.Typer(no_args_is_help=True, help="Run a notebook's PySpark code as a job.")


def _systems(system: str) -> list[str]:
    from spark_jobs.runner import SYSTEMS

    if system == "all":
        return list(SYSTEMS)
    if system not in SYSTEMS:
        raise fail(f"unknown system {system!r}; known: all, {', '.join(SYSTEMS)}", 2)
    return [system]


def run(
    system: Annotated[str, typer.Argument(help="a system, or all")],
    once: Annotated[bool, typer.Option("--once", help="process what is there, then stop")] = False,
    continuous: Annotated[bool, typer.Option("--continuous", help="run until Ctrl-C")] = False,
    target: Annotated[str | None, typer.Option(help="dev or prod")] = None,
) -> None:
    """Run a system's tables as streaming queries (bronze -> silver -> gold)."""
    from iotlake.preflight import pipeline_services
    from spark_jobs.lakeflow.api import PipelineError
    from spark_jobs.quality import ExpectationFailed
    from spark_jobs.runner import load, run_continuous, run_once
    from spark_jobs.session import SHORT_RUN, spark_session

    if once and continuous:
        raise fail("choose one of --once and --continuous", 2)
    if target:
        use_settings(settings().profile, target)
    systems = _systems(system)
    require([service for name in systems for service in pipeline_services(settings(), name)])
    spark = spark_session(settings(), f"iotlake-{system}", SHORT_RUN if once else ())
    spark.sparkContext.setLogLevel("ERROR")
    try:
        if once:
            for name in systems:
                run_once(spark, settings(), name, report=typer.echo)
        else:
            pipelines = [load(name, settings(), spark) for name in systems]
            run_continuous(spark, settings(), pipelines, report=typer.echo)
    except KeyboardInterrupt:
        typer.echo("stopped")
    except (ExpectationFailed, PipelineError, RuntimeError) as error:
        raise fail(str(error)) from None
    finally:
        spark.stop()


def _pairs(values: list[str] | None, option: str) -> dict[str, str]:
    pairs = {}
    for value in values or []:
        key, sep, item = value.partition("=")
        if not sep or not key:
            raise fail(f"{option} {value!r} is not KEY=VALUE", 2)
        pairs[key] = item
    return pairs


@pipeline_app.command("run")
def pipeline_run(
    path: Annotated[
        Path, typer.Argument(help="a folder with databricks.yml or spark-pipeline.yml")
    ],
    full_refresh: Annotated[
        bool, typer.Option("--full-refresh", help="empty its tables, read sources anew")
    ] = False,
    continuous: Annotated[bool, typer.Option("--continuous", help="run until Ctrl-C")] = False,
    bundle_target: Annotated[
        str | None, typer.Option("-t", "--bundle-target", help="the bundle's target")
    ] = None,
    var: Annotated[list[str] | None, typer.Option(help="a bundle variable, NAME=VALUE")] = None,
) -> None:
    """Run a Lakeflow pipeline (Python and SQL files) once, or continuously."""
    from spark_jobs.lakeflow.api import PipelineError
    from spark_jobs.lakeflow.settings import PipelineSettingsError
    from spark_jobs.lakeflow.sql import SqlPipelineError
    from spark_jobs.quality import ExpectationFailed
    from spark_jobs.runner import load, reset, run_continuous, run_once
    from spark_jobs.session import SHORT_RUN, spark_session

    variables = _pairs(var, "--var")
    errors = (PipelineError, PipelineSettingsError, SqlPipelineError, ValueError)
    try:  # settings and files first: a mistake is one line, before Spark starts
        load(path, settings(), target=bundle_target, variables=variables)
    except errors as error:
        raise fail(str(error), 2) from None
    spark = spark_session(
        settings(), f"iotlake-pipeline-{path.name}", () if continuous else SHORT_RUN
    )
    spark.sparkContext.setLogLevel("ERROR")
    try:
        pipeline = load(path, settings(), spark, target=bundle_target, variables=variables)
        if full_refresh:
            reset(spark, settings(), pipeline)
        if continuous:
            run_continuous(spark, settings(), [pipeline], report=typer.echo)
        else:
            run_once(spark, settings(), pipeline, report=typer.echo)
    except KeyboardInterrupt:
        typer.echo("stopped")
    except (*errors, ExpectationFailed, RuntimeError) as error:
        raise fail(str(error)) from None
    finally:
        spark.stop()


@job_app.command("run")
def job_run(
    file: Annotated[Path, typer.Argument(help="a PySpark script using a global `spark`")],
    conf: Annotated[list[str] | None, typer.Option(help="spark.conf value, KEY=VALUE")] = None,
) -> None:
    """Run a notebook's streaming code as a job, until its queries end or Ctrl-C."""
    from spark_jobs.lakeflow.job import run_job
    from spark_jobs.session import spark_session

    if not file.is_file():
        raise fail(f"{file} is not a file; give the job's .py script", 2)
    values = _pairs(conf, "--conf")
    spark = spark_session(settings(), f"iotlake-job-{file.stem}")
    spark.sparkContext.setLogLevel("ERROR")
    try:
        run_job(spark, settings(), file, values)
    except KeyboardInterrupt:
        typer.echo("stopped")
    finally:
        spark.stop()


def expectations() -> None:
    """Write the Great Expectations suites generated from the tables' declared rules."""
    from expectations.suites import write_suites
    from spark_jobs.runner import SYSTEMS, load_system

    specs = [spec for system in SYSTEMS for spec in load_system(system, settings())]
    changed = write_suites(specs)
    for path in changed:
        typer.echo(f"wrote {path}")
    typer.echo(f"{len(specs)} suites, {len(changed)} changed")


def check(system: Annotated[str, typer.Argument(help="a system, or all")] = "all") -> None:
    """Validate whole silver and gold tables against their Great Expectations suites."""
    from delta.tables import DeltaTable

    from expectations.suites import validate
    from spark_jobs.catalog import register, table_name
    from spark_jobs.runner import load_system, location
    from spark_jobs.session import spark_session

    current = settings()
    spark = spark_session(current, "iotlake-check")
    spark.sparkContext.setLogLevel("ERROR")
    unmet = 0
    try:
        for name in _systems(system):
            for spec in load_system(name, current):
                uri = location(current, spec)
                if spec.layer == "bronze" or not DeltaTable.isDeltaTable(spark, uri):
                    continue
                register(spark, current, spec)
                table = spark.read.table(table_name(spec))
                for outcome in validate(table, spec):
                    unmet += not outcome.success
                    state = "ok" if outcome.success else f"{outcome.unexpected} unexpected"
                    typer.echo(f"{outcome.table:<34} {outcome.expectation:<34} {state}")
    finally:
        spark.stop()
    if unmet:
        raise fail(f"{unmet} expectation(s) unmet")


def alerts(
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable")] = False,
) -> None:
    """Evaluate the SQL alerts: one line each; exit code 1 when any is TRIGGERED (muted too)."""
    from deltalake.exceptions import DeltaError

    from iotlake.alerts import check_all, to_json

    try:
        statuses = check_all(settings())
    except (DeltaError, OSError) as error:
        raise fail(f"cannot read the lake to evaluate alerts: {error}", 2) from None
    typer.echo(to_json(statuses) if as_json else "\n".join(s.line() for s in statuses))
    if any(status.triggered for status in statuses):
        raise typer.Exit(1)
