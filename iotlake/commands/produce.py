"""`iotlake produce ...`: the simulated producers, each a service command."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Literal, TypeVar

import typer

from iotlake.commands.common import (
    Duration,
    LingerMs,
    ProgressEvery,
    RetrySleep,
    StopTimeout,
    checked,
    fail,
    require,
    run_as_service,
    settings,
)
from iotlake.config import Settings

if TYPE_CHECKING:
    from services.producers.pump import StreamOptions

Options = TypeVar("Options", bound="StreamOptions")

produce = typer.Typer(no_args_is_help=True, help="Run a simulated producer.")


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
    from services.producers import phone_simulator as phones_module

    options = checked(
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
    _serve_stream(phones_module.main, options, settings().seismograph.transport)


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
    from services.producers import aws_iot_producer

    options = checked(
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
    _serve_stream(aws_iot_producer.main, options, settings().aws_iot.transport)


def _serve_stream(
    main: Callable[[Settings, Options, threading.Event], int], options: Options, transport: str
) -> None:
    """Run a Kinesis/Kafka producer once its target (default: the system's) answers."""
    from iotlake.preflight import transport_service

    require([transport_service(options.target or transport)])
    run_as_service(lambda current, stop: main(current, options, stop))


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

    options = checked(
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
    run_as_service(lambda current, stop: simulator.main(current, options, stop))


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
    from services.producers.manufacturing_batch import BatchConfig, original_initial

    def initial() -> BatchConfig:
        if full:
            return original_initial(seed)
        return BatchConfig(rows=rows, devices=devices, seed=seed)

    options = checked(
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

    run_as_service(work)


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
    options = checked(
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
    run_as_service(lambda current, stop: post_stream.main(current, options, stop))
