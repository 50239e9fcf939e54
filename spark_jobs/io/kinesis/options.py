"""The options of format `kinesis`, read once into `KinesisOptions`.

Names follow the Databricks Kinesis source and are case-insensitive; a blank value means the
default:

- `streamName` (required): the stream to read.
- `region`: the AWS region; default: boto3's own resolution (environment, config file).
- `endpointUrl` (alias `endpoint`): the Kinesis endpoint, e.g. `http://127.0.0.1:4566` for an
  emulator; default: the region's AWS endpoint.
- `awsAccessKey` / `awsSecretKey`: static credentials, both or neither; default: boto3's
  credential chain.
- `initialPosition`: where a new query starts; later runs resume from the checkpoint.
  `latest` (default, as on Databricks): records that arrive after the query starts;
  `trim_horizon` or `earliest`: everything the stream retains;
  `{"at_timestamp": "2024-06-25T10:23:45Z"}`: records that arrived at or after that instant.
  The timestamp is ISO-8601 (a bare one without an offset is UTC); an optional `"format"` key
  takes a Python `strptime` pattern instead (Databricks' Java patterns are not understood).
  A bare ISO-8601 timestamp is accepted as a shorthand for the JSON form.
- `maxRecordsPerFetch`: `Limit` of each GetRecords call, 1..10000 (default 10000).
- `maxRecordsPerTrigger`: at most this many records per micro-batch, spread over the shards
  being read (default: no limit, so one batch takes what `maxFetchDuration` allows).
- `maxFetchDuration`: how long one batch may spend fetching, e.g. `10s` (default `10s`).
- `minFetchPeriod`: how long to leave a shard alone after it answered with nothing, e.g.
  `400ms` (default), so an idle query stays within the 5 GetRecords calls/s/shard of AWS.
- `shardFetchInterval`: how often to list the stream's shards to find reshards (default `1s`);
  an idle query asks for new data every few milliseconds.

A `path` option (Spark adds one for `.load(path)`) is accepted and ignored.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar

from spark_jobs.io.options import (
    Invalid,
    OptionError,
    SourceOptions,
    duration,
    integer,
    option,
)

if TYPE_CHECKING:
    from iotlake.config import Settings

GET_RECORDS_MAX_LIMIT = 10_000
# The Unix epoch as an aware datetime: instants become whole ms or µs exactly, without floats.
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_POSITIONS = (
    'latest, trim_horizon, earliest, an ISO-8601 timestamp or {"at_timestamp": "<ISO-8601>", '
    '"format": "<optional strptime pattern>"}'
)


class KinesisOptionError(OptionError):
    """An option of the Kinesis source is wrong; the message is one line naming it."""


@dataclass(frozen=True)
class StartPosition:
    """Where a new query starts: TRIM_HORIZON, LATEST, or AT_TIMESTAMP at `ms` (UTC epoch)."""

    kind: str
    ms: int | None = None


def parse_initial_position(raw: str) -> StartPosition:
    """`latest`, `trim_horizon`/`earliest`, `{"at_timestamp": ...}` or a bare ISO timestamp."""
    text = raw.strip()
    lowered = text.lower()
    if lowered == "latest":
        return StartPosition("LATEST")
    if lowered in ("trim_horizon", "earliest"):
        return StartPosition("TRIM_HORIZON")
    if text.startswith("{"):
        try:
            spec = json.loads(text)
        except json.JSONDecodeError:
            raise Invalid(f"valid JSON, one of {_POSITIONS}") from None
        if not isinstance(spec, dict) or not spec.get("at_timestamp"):
            raise Invalid(_POSITIONS)
        return StartPosition("AT_TIMESTAMP", _timestamp_ms(str(spec["at_timestamp"]), spec))
    try:
        return StartPosition("AT_TIMESTAMP", _timestamp_ms(text, {}))
    except Invalid:
        raise Invalid(_POSITIONS) from None


def _timestamp_ms(value: str, spec: dict[str, Any]) -> int:
    """An at_timestamp as epoch ms, read with the spec's `format` or as ISO-8601."""
    pattern = spec.get("format")
    try:
        moment = (
            datetime.strptime(value, str(pattern)) if pattern else datetime.fromisoformat(value)
        )
    except ValueError:
        how = f"matching the format {pattern!r}" if pattern else "in ISO-8601"
        raise Invalid(f"an at_timestamp {how}", value) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - EPOCH) // timedelta(milliseconds=1)


@dataclass(frozen=True)
class KinesisOptions(SourceOptions):
    """The source's options, parsed and checked once, then shipped to every process."""

    SOURCE: ClassVar[str] = "kinesis"
    ERROR: ClassVar[type[OptionError]] = KinesisOptionError
    IGNORED: ClassVar[tuple[str, ...]] = ("path",)

    stream_name: str = option("streamName", required='.option("streamName", "<stream>")')
    region: str | None = option("region", default=None)
    endpoint_url: str | None = option("endpointUrl", "endpoint", default=None)
    access_key: str | None = option("awsAccessKey", default=None)
    secret_key: str | None = option("awsSecretKey", default=None)
    start: StartPosition = option(
        "initialPosition", parse=parse_initial_position, default=StartPosition("LATEST")
    )
    max_records_per_fetch: int = option(
        "maxRecordsPerFetch",
        parse=integer(1, GET_RECORDS_MAX_LIMIT),
        default=GET_RECORDS_MAX_LIMIT,
    )
    max_records_per_trigger: int | None = option(
        "maxRecordsPerTrigger", parse=integer(), default=None
    )
    max_fetch_seconds: float = option("maxFetchDuration", parse=duration, default=10.0)
    min_fetch_period_seconds: float = option("minFetchPeriod", parse=duration, default=0.4)
    shard_fetch_interval_seconds: float = option("shardFetchInterval", parse=duration, default=1.0)

    def validate(self) -> None:
        """Static credentials come as a pair: one key alone would sign every call wrongly."""
        if bool(self.access_key) != bool(self.secret_key):
            missing, other = (
                ("awsSecretKey", "awsAccessKey")
                if self.access_key
                else ("awsAccessKey", "awsSecretKey")
            )
            raise self.missing(missing, f"set it with {other}, or set neither")


def kinesis_options(settings: Settings, stream: str) -> dict[str, str]:
    """The source options that reach `stream` where `settings` point (emulator or AWS).

    Emulator keys are passed as they are; on real AWS the placeholder keys are left out, so
    boto3's own chain (environment, profile, instance role) supplies the credentials.
    """
    aws = settings.aws
    options = {"streamName": stream, "region": aws.region}
    if aws.endpoint_url:
        options["endpointUrl"] = aws.endpoint_url
    access = aws.access_key_id.get_secret_value()
    secret = aws.secret_access_key.get_secret_value()
    placeholder = type(aws).model_fields["access_key_id"].default.get_secret_value()
    if aws.emulator != "aws" or access != placeholder:
        options |= {"awsAccessKey": access, "awsSecretKey": secret}
    return options
