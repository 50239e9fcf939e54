"""`iotlake`: start the embedded stack, provision it, and look at what runs."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Literal, NoReturn, TypeVar

import typer

from iotlake.config import ConfigError, Settings, load_settings

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
_state: dict[str, Settings] = {}


def settings() -> Settings:
    return _state["settings"]


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print one line to stderr and return the exit to raise."""
    typer.echo(f"iotlake: {message}", err=True)
    return typer.Exit(code)


def require(services: list[str]) -> None:
    """Stop with one line when a service the command needs does not answer (see preflight)."""
    from iotlake.preflight import unreachable

    problem = unreachable(settings(), services)
    if problem:
        raise fail(problem)


@app.callback()
def main(
    profile: Annotated[str | None, typer.Option(help="embedded or compose")] = None,
    target: Annotated[str | None, typer.Option(help="dev or prod")] = None,
) -> None:
    """Databricks IoT streaming pipelines on a laptop: brokers, Spark, Delta, dashboards."""
    try:
        _state["settings"] = load_settings(profile=profile, target=target)
    except ConfigError as error:
        raise fail(str(error), 2) from None


@app.command()
def up(
    cluster: Annotated[
        bool, typer.Option(help="also start a Spark standalone master + worker")
    ] = False,
    aws: Annotated[str | None, typer.Option(help="AWS emulator: moto or localstack")] = None,
) -> None:
    """Start the embedded services on 127.0.0.1 and wait until each is healthy."""
    from services.embedded.stack import StackError
    from services.embedded.stack import up as stack_up

    current = settings()
    if aws:
        if aws not in ("moto", "localstack"):
            raise fail(f"--aws {aws!r} is not an emulator; use moto or localstack", 2)
        current = current.model_copy(
            update={"aws": current.aws.model_copy(update={"emulator": aws})}
        )
    try:
        stack_up(current, cluster=cluster, report=typer.echo)
    except StackError as error:
        raise fail(f"{error} (nothing left running)") from None


@app.command()
def down() -> None:
    """Stop exactly the services `iotlake up` started."""
    from services.embedded.stack import down as stack_down

    if not stack_down(settings(), report=typer.echo):
        typer.echo("nothing was running")


@app.command()
def status(
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable")] = False,
) -> None:
    """Each service with endpoint, pid, health and resident memory."""
    from services.embedded.stack import status as stack_status
    from services.embedded.stack import status_json

    if as_json:
        typer.echo(status_json(settings()))
        return
    for row in stack_status(settings()):
        state = "healthy" if row.healthy else ("unhealthy" if row.pid else "stopped")
        pid = row.pid or "-"
        typer.echo(
            f"{row.name:<13} {state:<9} pid {pid!s:<8} {row.rss_mb:>7.1f} MB  {row.endpoint}"
        )


@app.command()
def logs(
    service: str,
    lines: Annotated[int, typer.Option("--lines", "-n")] = 50,
) -> None:
    """Print the last lines of one service's log."""
    log_file = settings().log_dir / f"{service}.log"
    if not log_file.exists():
        known = sorted(path.stem for path in settings().log_dir.glob("*.log"))
        raise fail(f"no log for {service!r}; known: {', '.join(known) or 'none (run iotlake up)'}")
    for line in log_file.read_text(errors="replace").splitlines()[-lines:]:
        typer.echo(line)


@app.command()
def provision(
    systems: Annotated[
        list[str] | None, typer.Argument(help="systems to provision (default: all)")
    ] = None,
) -> None:
    """Create the topics, streams, buckets and table roots the systems need (idempotent)."""
    from services.provisioning.apply import provision as apply
    from services.provisioning.resources import for_systems

    try:
        resources = for_systems(systems)
    except ValueError as error:
        raise fail(str(error), 2) from None
    changes = apply(settings(), resources)
    for change in changes:
        typer.echo(change)
    typer.echo(f"{len(changes)} change(s)")


def _systems(system: str) -> list[str]:
    from spark_jobs.runner import SYSTEMS

    if system == "all":
        return list(SYSTEMS)
    if system not in SYSTEMS:
        raise fail(f"unknown system {system!r}; known: all, {', '.join(SYSTEMS)}", 2)
    return [system]


@app.command()
def run(
    system: Annotated[str, typer.Argument(help="a system, or all")],
    once: Annotated[bool, typer.Option("--once", help="process what is there, then stop")] = False,
    continuous: Annotated[bool, typer.Option("--continuous", help="run until Ctrl-C")] = False,
    target: Annotated[str | None, typer.Option(help="dev or prod")] = None,
) -> None:
    """Run a system's tables as streaming queries (bronze -> silver -> gold)."""
    from iotlake.preflight import pipeline_services
    from spark_jobs.lakeflow.loader import PipelineError
    from spark_jobs.quality import ExpectationFailed
    from spark_jobs.runner import load, run_continuous, run_once
    from spark_jobs.session import spark_session

    if once and continuous:
        raise fail("choose one of --once and --continuous", 2)
    if target:
        main(profile=settings().profile, target=target)
    systems = _systems(system)
    require([service for name in systems for service in pipeline_services(settings(), name)])
    spark = spark_session(settings(), f"iotlake-{system}")
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


pipeline_app = typer.Typer(no_args_is_help=True, help="Run a Databricks pipeline folder.")
job_app = typer.Typer(no_args_is_help=True, help="Run a notebook's PySpark code as a job.")
app.add_typer(pipeline_app, name="pipeline")
app.add_typer(job_app, name="job")


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
    from spark_jobs.lakeflow.loader import PipelineError
    from spark_jobs.lakeflow.settings import PipelineSettingsError
    from spark_jobs.lakeflow.sql import SqlPipelineError
    from spark_jobs.quality import ExpectationFailed
    from spark_jobs.runner import load, reset, run_continuous, run_once
    from spark_jobs.session import spark_session

    variables = _pairs(var, "--var")
    errors = (PipelineError, PipelineSettingsError, SqlPipelineError, ValueError)
    try:  # settings and files first: a mistake is one line, before Spark starts
        load(path, settings(), target=bundle_target, variables=variables)
    except errors as error:
        raise fail(str(error), 2) from None
    spark = spark_session(settings(), f"iotlake-pipeline-{path.name}")
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


@app.command()
def expectations() -> None:
    """Write the Great Expectations suites generated from the tables' declared rules."""
    from expectations.suites import write_suites
    from spark_jobs.runner import SYSTEMS, load_system

    specs = [spec for system in SYSTEMS for spec in load_system(system, settings())]
    changed = write_suites(specs)
    for path in changed:
        typer.echo(f"wrote {path}")
    typer.echo(f"{len(specs)} suites, {len(changed)} changed")


@app.command()
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


@app.command()
def demo(
    phones: Annotated[int, typer.Option(help="simulated phones (130 at DAIS)")] = 130,
) -> None:
    """Stack up, provision, producers at the originals' load, pipelines, gateway, dashboard."""
    from services.embedded.jobs import demo_specs
    from services.embedded.stack import StackError
    from services.embedded.stack import status as stack_status
    from services.embedded.stack import up as stack_up
    from services.provisioning.apply import provision as apply
    from services.provisioning.resources import SYSTEMS

    current = settings()
    try:
        fresh_emulator = not any(row.name == "aws" and row.pid for row in stack_status(current))
        stack_up(current, report=typer.echo)
        if fresh_emulator:
            _set_aside_stale_lake(current)
        for change in apply(current, SYSTEMS):
            typer.echo(change)
        stack_up(current, report=typer.echo, jobs=demo_specs(current, phones=phones))
    except StackError as error:
        raise fail(f"{error} (see `iotlake status`; `iotlake down` stops the rest)") from None
    dashboard, gateway = current.dashboard, current.gateway
    typer.echo(f"dashboard: http://{dashboard.host}:{dashboard.port}")
    typer.echo(f"phone page: http://{gateway.host}:{gateway.port}  (iotlake down stops it all)")


def _set_aside_stale_lake(current: Settings) -> None:
    """A stack started after `iotlake down` has empty streams and topics, so checkpoints of an
    earlier demo point at records that no longer exist: keep those tables, out of the way."""
    import time

    lake = Path(current.lake_root)
    if current.aws.emulator == "aws" or current.lake_root.startswith("s3://") or not lake.exists():
        return
    if not any(lake.iterdir()):
        return
    kept = lake.with_name(f"{lake.name}.before-{time.strftime('%Y%m%d-%H%M%S')}")
    lake.rename(kept)
    typer.echo(f"the emulator started empty: earlier tables moved to {kept}")


produce = typer.Typer(no_args_is_help=True, help="Run a simulated producer.")
app.add_typer(produce, name="produce")
T = TypeVar("T")
# Options several service commands share, with the same meaning everywhere.
Duration = Annotated[
    float | None, typer.Option(help="seconds to run (default: until SIGTERM/SIGINT)")
]
ProgressEvery = Annotated[float, typer.Option(help="seconds between progress lines")]
StopTimeout = Annotated[float, typer.Option(help="seconds to flush when stopping")]
LingerMs = Annotated[float, typer.Option(help="batching delay in ms")]
RetrySleep = Annotated[float, typer.Option(help="seconds to wait after a failed call")]


def _checked(build: Callable[[], T]) -> T:
    """The options object a command builds, or exit 2 with the one line saying what is wrong."""
    try:
        return build()
    except ValueError as error:
        raise fail(str(error), 2) from None


def _service(work: Callable[[Settings, threading.Event], int]) -> NoReturn:
    """What every service command does: run `work` with the loaded settings and a stop event
    that SIGTERM/SIGINT set (a clean stop), and exit with the code it returns."""
    from services.runtime import run_service

    raise typer.Exit(run_service(lambda stop: work(settings(), stop)))


@produce.command("seismograph")
def produce_seismograph(
    phones: Annotated[int, typer.Option(help="number of phones")] = 130,
    rate_per_phone: Annotated[float, typer.Option(help="events/s per phone, at most 5")] = 5.0,
    duration: Duration = None,
    events: Annotated[int | None, typer.Option(help="stop after this many events")] = None,
    shaken_fraction: Annotated[float, typer.Option(help="share of phones being shaken")] = 0.25,
    peak: Annotated[float, typer.Option(help="magnitude the hardest shaker reaches")] = 230.0,
    pack: Annotated[int, typer.Option(help="events of one phone per record, a JSON array")] = 1,
    target: Annotated[
        Literal["kinesis", "kafka"] | None,
        typer.Option(help="kinesis or kafka (default: seismograph.transport)"),
    ] = None,
    stream: Annotated[
        str | None,
        typer.Option(help="Kinesis stream or Kafka topic (default: seismograph.stream)"),
    ] = None,
    seed: Annotated[int | None, typer.Option(help="reproducible devices and magnitudes")] = None,
    progress_every: ProgressEvery = 5.0,
    retry_sleep: RetrySleep = 1.0,
    linger_ms: LingerMs = 50.0,
    stop_timeout: StopTimeout = 30.0,
) -> None:
    """Simulated phones sending accelerometer events, as the DAIS page did."""
    from iotlake.preflight import transport_service
    from services.producers import phone_simulator as phones_module

    options = _checked(
        lambda: phones_module.PhoneOptions(
            fleet=phones_module.FleetConfig(
                phones=phones,
                rate_per_phone=rate_per_phone,
                shaken_fraction=shaken_fraction,
                peak=peak,
                seed=seed,
            ),
            target=target,
            stream=stream,
            pack=pack,
            duration=duration,
            events=events,
            progress_every=progress_every,
            retry_sleep=retry_sleep,
            linger_ms=linger_ms,
            stop_timeout=stop_timeout,
        )
    )
    require([transport_service(target or settings().seismograph.transport)])
    _service(lambda current, stop: phones_module.main(current, options, stop))


@produce.command("aws-iot")
def produce_aws_iot(
    devices: Annotated[int, typer.Option(help="number of devices")] = 5,
    rate: Annotated[float, typer.Option(help="records per device per second")] = 1.0,
    duration: Duration = None,
    records: Annotated[int | None, typer.Option(help="stop after this many records")] = None,
    target: Annotated[
        Literal["kinesis", "kafka"] | None,
        typer.Option(help="kinesis or kafka (default: aws_iot.transport)"),
    ] = None,
    stream: Annotated[
        str | None, typer.Option(help="Kinesis stream or Kafka topic (default: aws_iot.stream)")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="reproducible device ids and readings")] = None,
    progress_every: ProgressEvery = 5.0,
    retry_sleep: RetrySleep = 5.0,
    linger_ms: LingerMs = 50.0,
    stop_timeout: StopTimeout = 30.0,
) -> None:
    """The AWS IoT PoC's five devices, one reading per second each."""
    from iotlake.preflight import transport_service
    from services.producers import aws_iot_producer

    options = _checked(
        lambda: aws_iot_producer.SensorOptions(
            sensors=aws_iot_producer.SensorConfig(devices=devices, rate=rate, seed=seed),
            target=target,
            stream=stream,
            duration=duration,
            records=records,
            progress_every=progress_every,
            retry_sleep=retry_sleep,
            linger_ms=linger_ms,
            stop_timeout=stop_timeout,
        )
    )
    require([transport_service(target or settings().aws_iot.transport)])
    _service(lambda current, stop: aws_iot_producer.main(current, options, stop))


@produce.command("arduino")
def produce_arduino(
    dht_period: Annotated[float, typer.Option(help="seconds between DHT11 readings")] = 0.2,
    distance_hz: Annotated[float, typer.Option(help="SR04 readings per second")] = 5.0,
    detections_per_minute: Annotated[float, typer.Option(help="mean PIR detections")] = 6.0,
    duration: Duration = None,
    seed: Annotated[int | None, typer.Option(help="reproducible readings")] = None,
    client_id: Annotated[str, typer.Option(help="MQTT client id")] = "iotlake-board",
    progress_every: ProgressEvery = 5.0,
    stop_timeout: Annotated[float, typer.Option(help="seconds to wait for PUBACKs")] = 30.0,
) -> None:
    """A simulated Arduino board: DHT11, SR04 and PIR readings over MQTT."""
    from services.arduino import simulator

    options = _checked(
        lambda: simulator.BoardOptions(
            board=simulator.BoardConfig(
                dht_period=dht_period,
                distance_hz=distance_hz,
                detections_per_minute=detections_per_minute,
                seed=seed,
            ),
            duration=duration,
            client_id=client_id,
            progress_every=progress_every,
            stop_timeout=stop_timeout,
        )
    )
    require(["mqtt"])
    _service(lambda current, stop: simulator.main(current, options, stop))


@produce.command("manufacturing")
def produce_manufacturing(
    rows: Annotated[int, typer.Option(help="initial load rows")] = 20_000,
    devices: Annotated[int, typer.Option(help="devices")] = 60,
    full: Annotated[
        bool, typer.Option("--full", help="the original's initial load: ~400k rows, ~60 devices")
    ] = False,
    seed: Annotated[int, typer.Option(help="seed of every draw")] = 0,
    more: Annotated[int, typer.Option(help="batches of 'more data' after the initial load")] = 0,
    more_rows: Annotated[int, typer.Option(help="rows per more batch")] = 2_000,
    more_devices: Annotated[int, typer.Option(help="devices per more batch")] = 10,
    more_only: Annotated[
        bool, typer.Option("--more-only", help="land only the --more batches, not the initial")
    ] = False,
    live: Annotated[
        bool, typer.Option("--live", help="land a batch every --interval s, ending now")
    ] = False,
    interval: Annotated[float, typer.Option(help="live: seconds between batches")] = 30.0,
    live_devices: Annotated[
        int, typer.Option(help="live: devices, one reading a minute each")
    ] = 20,
    backfill_minutes: Annotated[
        int, typer.Option(help="live: minutes the first batch covers")
    ] = 60,
    day_minutes: Annotated[
        float, typer.Option(help="live: wall-clock minutes per simulated day")
    ] = 60.0,
    batches: Annotated[
        int | None, typer.Option(help="live: stop after this many (default: until SIGTERM)")
    ] = None,
) -> None:
    """Sensor and inspection CSV files into the manufacturing landing paths."""
    from iotlake.preflight import pipeline_services
    from services.producers import manufacturing_generator as generator

    def initial() -> generator.BatchConfig:
        if full:
            return generator.original_initial(seed)
        return generator.BatchConfig(rows=rows, devices=devices, seed=seed)

    options = _checked(
        lambda: generator.GeneratorOptions(
            initial=initial(),
            more_batches=more,
            more_rows=more_rows,
            more_devices=more_devices,
            more_only=more_only,
            live=live,
            live_devices=live_devices,
            backfill_minutes=backfill_minutes,
            day_minutes=day_minutes,
            interval=interval,
            batches=batches,
        )
    )
    require(pipeline_services(settings(), "manufacturing"))

    def work(current: Settings, stop: threading.Event) -> int:
        try:
            return generator.main(current, options, stop)
        except OSError as error:
            raise fail(f"cannot write landing files: {error}") from None

    _service(work)


@app.command()
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


@produce.command("text-sentiment")
def produce_text_sentiment(
    rate: Annotated[
        float | None, typer.Option(help="posts per second (default: text_sentiment.rate, 5)")
    ] = None,
    count: Annotated[
        int | None,
        typer.Option(help="stop after this many posts (default: text_sentiment.max_posts, 50000)"),
    ] = None,
    per_file: Annotated[
        int | None,
        typer.Option(help="posts per file (default: text_sentiment.posts_per_file, 5)"),
    ] = None,
    languages: Annotated[str, typer.Option(help="language mix")] = "en=0.6,de=0.2,es=0.2",
    seed: Annotated[int | None, typer.Option(help="reproducible posts")] = None,
    start_ms: Annotated[
        int | None, typer.Option(help="epoch ms of the first post (default: now)")
    ] = None,
    landing: Annotated[
        str | None, typer.Option(help="landing directory or s3:// URI (default: the lake's)")
    ] = None,
    progress_every: ProgressEvery = 10.0,
) -> None:
    """Seeded multilingual posts, 5 per `tweets_<epoch>.json` file, into the landing path."""
    from services.producers import post_stream
    from spark_jobs.io.storage import is_local

    config = settings().text_sentiment
    options = _checked(
        lambda: post_stream.RunOptions(
            stream=post_stream.StreamConfig(
                seed=seed, languages=post_stream.language_mix(languages)
            ),
            rate=config.rate if rate is None else rate,
            count=config.max_posts if count is None else count,
            per_file=config.posts_per_file if per_file is None else per_file,
            start_ms=start_ms,
            landing=landing,
            progress_every=progress_every,
        )
    )
    if not is_local(landing or settings().lake_root):
        require(["aws"])
    _service(lambda current, stop: post_stream.main(current, options, stop))


@app.command()
def bridge(
    client_id: Annotated[
        str | None, typer.Option(help="MQTT client id (default: arduino.bridge_client_id)")
    ] = None,
    session_expiry: Annotated[
        int,
        typer.Option(
            help="seconds the broker keeps the session and queues messages while the bridge "
            "is away (one week)"
        ),
    ] = 7 * 24 * 3600,
    progress_every: ProgressEvery = 10.0,
    stop_timeout: StopTimeout = 30.0,
) -> None:
    """Forward the Arduino MQTT topics to their Kafka topics, at least once, in order."""
    from services.arduino import bridge as mqtt_kafka

    options = mqtt_kafka.BridgeOptions(
        client_id=client_id,
        session_expiry_seconds=session_expiry,
        progress_every=progress_every,
        stop_timeout=stop_timeout,
    )
    require(["mqtt", "kafka"])
    _service(lambda current, stop: mqtt_kafka.main(current, options, stop))


@app.command()
def gateway(
    host: Annotated[
        str | None,
        typer.Option(help="bind address (default: gateway.host); 0.0.0.0 for phones on the LAN"),
    ] = None,
    port: Annotated[int | None, typer.Option(help="port (default: gateway.port)")] = None,
    to: Annotated[
        Literal["kinesis", "kafka", "both"] | None,
        typer.Option(
            "--to", "--target", help="kinesis, kafka or both (default: seismograph.transport)"
        ),
    ] = None,
    certfile: Annotated[
        Path | None, typer.Option(help="TLS certificate: phones send motion only over HTTPS")
    ] = None,
    keyfile: Annotated[Path | None, typer.Option(help="TLS key (PEM)")] = None,
) -> None:
    """Serve the seismograph phone page and forward its events to `seismograph.stream`."""
    from services.gateway.server import GatewayError, serve

    def work(current: Settings, stop: threading.Event) -> int:
        try:
            serve(
                current, stop, target=to, host=host, port=port, certfile=certfile, keyfile=keyfile
            )
        except GatewayError as error:
            raise fail(str(error)) from None
        return 0

    _service(work)


@app.command()
def emulator(
    port: Annotated[int, typer.Option(help="port to serve S3 and Kinesis on")],
    host: Annotated[str, typer.Option(help="interface to bind")] = "127.0.0.1",
    journal: Annotated[
        Path | None, typer.Option(help="journal file; none keeps state in memory")
    ] = None,
) -> None:
    """The embedded S3 + Kinesis emulator (moto) in the foreground; `iotlake up` starts it."""
    from services.embedded import aws_emulator

    aws_emulator.serve(host, port, journal)


bench = typer.Typer(help="Benchmarks that print figures measured in one run")
app.add_typer(bench, name="bench")


def _numbers(text: str, option: str) -> tuple[float, ...]:
    try:
        return tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        message = f"{option} {text!r}: give numbers separated by commas, e.g. 1,10,100"
        raise fail(message, 2) from None


@bench.callback(invoke_without_command=True)
def bench_run(
    ctx: typer.Context,
    loads: Annotated[str, typer.Option(help="multiples of the DAIS load (650 events/s)")] = (
        "1,10,100"
    ),
    transports: Annotated[str, typer.Option(help="kafka, kinesis or both")] = "kafka,kinesis",
    seconds: Annotated[float, typer.Option(help="seconds of load per level")] = 60.0,
    pack: Annotated[
        int | None, typer.Option(help="events per record (default: 1 at 1x, more above)")
    ] = None,
    drain_seconds: Annotated[
        float, typer.Option(help="longest wait for the pipeline to catch up after a level")
    ] = 30.0,
    out: Annotated[Path, typer.Option(help="where the JSON and PNG go")] = Path("bench-results"),
    skip_cold_start: Annotated[
        bool, typer.Option("--skip-cold-start", help="do not time `iotlake demo`")
    ] = False,
    keep_state: Annotated[
        bool, typer.Option("--keep-state", help="keep the private stack's logs and tables")
    ] = False,
) -> None:
    """Without a subcommand: the seismograph flow at 1x/10x/100x on Kafka and Kinesis
    (throughput, lag, event -> gold latency, RSS), the bare-client ratio and the cold start."""
    if ctx.invoked_subcommand is not None:
        return
    from iotlake.bench import BenchConfig, BenchError, Timing, run_bench

    try:
        config = BenchConfig(
            loads=_numbers(loads, "--loads"),
            transports=tuple(name.strip() for name in transports.split(",") if name.strip()),
            pack=pack,
            timing=Timing(seconds=seconds, drain_seconds=drain_seconds),
            out_dir=out,
            cold_start=not skip_cold_start,
            keep_state=keep_state,
        )
        run_bench(settings(), config, report=typer.echo)
    except BenchError as error:
        raise fail(str(error)) from None


@bench.command("io")
def bench_io_command(
    kafka_rows: Annotated[int, typer.Option(help="records through the Kafka paths")] = 200_000,
    kinesis_rows: Annotated[int, typer.Option(help="records through the Kinesis paths")] = 5_000,
) -> None:
    """Broker -> Delta rows/s through Spark against bare client -> delta-rs loops."""
    from spark_jobs.io.bench import bench_io
    from spark_jobs.session import spark_session

    spark = spark_session(settings(), "iotlake-bench-io")
    spark.sparkContext.setLogLevel("ERROR")
    try:
        bench_io(spark, settings(), kafka_rows, kinesis_rows, report=typer.echo)
    finally:
        spark.stop()


@bench.command("demo")
def bench_demo_command(
    minutes: Annotated[float, typer.Option(help="how long to watch the demo")] = 30.0,
    sample_seconds: Annotated[float, typer.Option(help="seconds between samples")] = 10.0,
    out: Annotated[Path, typer.Option(help="where the JSON and PNG go")] = Path("bench-results"),
    keep_state: Annotated[
        bool, typer.Option("--keep-state", help="keep the private stack's logs and tables")
    ] = False,
) -> None:
    """Everything `iotlake demo` runs, for --minutes on a private stack: backlog per table,
    RSS per process, event -> table latency, and whether the five systems keep up."""
    from iotlake.bench.demo import DemoBenchConfig, run_demo_bench
    from iotlake.bench.processes import BenchError

    try:
        config = DemoBenchConfig(
            minutes=minutes, sample_seconds=sample_seconds, out_dir=out, keep_state=keep_state
        )
        run_demo_bench(settings(), config, report=typer.echo)
    except BenchError as error:
        raise fail(str(error)) from None
