"""The one typed configuration of iotlake.

Values come, lowest priority first, from the defaults below, the chosen profile and target
sections of `iotlake.yml`, a `.env` file, and `IOTLAKE_*` environment variables
(`IOTLAKE_KAFKA__PORT=19092` sets `kafka.port`). Nothing else in iotlake reads the
environment for settings: every endpoint, path, credential and rate lives here.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

CONFIG_FILE_ENV = "IOTLAKE_CONFIG"
DEFAULT_CONFIG_FILE = Path("iotlake.yml")
LOOPBACK = "127.0.0.1"
# The checkout iotlake runs from: `make jars` resolves the JVM jars under it.
PROJECT_ROOT = Path(__file__).resolve().parent.parent

Profile = Literal["embedded", "compose"]
Target = Literal["dev", "prod"]


class ConfigError(Exception):
    """A configuration value is wrong; the message is one line naming the key and the fix."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class KafkaConfig(_Section):
    """Where clients reach Kafka; for the embedded broker also its controller port and heap."""

    host: str = LOOPBACK
    port: int = Field(9092, ge=1, le=65535)
    # The embedded broker is its own KRaft controller; clients never use this listener.
    controller_port: int = Field(9093, ge=1, le=65535)
    # The embedded broker's JVM heap (-Xmx): ample for the demo and the benchmark's loads.
    heap: str = Field("256m", pattern=r"^[1-9][0-9]*[kKmMgG]$")

    @field_validator("controller_port")
    @classmethod
    def _not_the_client_port(cls, value: int, info: ValidationInfo) -> int:
        """Both listeners bind on one host, so they need two ports."""
        if value == info.data.get("port"):
            raise ValueError("must differ from kafka.port")
        return value

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.host}:{self.port}"


class AwsConfig(_Section):
    """S3 + Kinesis: an emulator (moto or LocalStack) or real AWS (`emulator: aws`)."""

    emulator: Literal["moto", "localstack", "aws"] = "moto"
    host: str = LOOPBACK
    port: int = Field(4566, ge=1, le=65535)
    region: str = "us-east-1"
    # Emulators accept any key; real AWS takes them from the environment or `.env`.
    access_key_id: SecretStr = SecretStr("test")
    secret_access_key: SecretStr = SecretStr("test")
    localstack_python: Path = Path(".venv-localstack/bin/python")
    # moto journals its state changes and replays them on start, so a killed emulator comes
    # back with its streams and objects; `false` keeps state in memory only.
    journal: bool = True

    @property
    def endpoint_url(self) -> str | None:
        """The S3/Kinesis endpoint; None means real AWS and boto3's own resolution."""
        return None if self.emulator == "aws" else f"http://{self.host}:{self.port}"

    def boto3_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for `boto3.client(...)` that reach this endpoint."""
        return {
            "endpoint_url": self.endpoint_url,
            "region_name": self.region,
            "aws_access_key_id": self.access_key_id.get_secret_value(),
            "aws_secret_access_key": self.secret_access_key.get_secret_value(),
        }

    def object_store_options(self) -> dict[str, str]:
        """Storage options for delta-rs / object_store (dashboard, alerts, benchmark floors)."""
        options = {
            "AWS_REGION": self.region,
            "AWS_ACCESS_KEY_ID": self.access_key_id.get_secret_value(),
            "AWS_SECRET_ACCESS_KEY": self.secret_access_key.get_secret_value(),
        }
        if self.endpoint_url:
            options |= {
                "AWS_ENDPOINT_URL": self.endpoint_url,
                "AWS_ALLOW_HTTP": "true",
                "AWS_S3_ALLOW_UNSAFE_RENAME": "true",
            }
        return options


class MqttConfig(_Section):
    host: str = LOOPBACK
    port: int = Field(1883, ge=1, le=65535)
    binary: Path = Path("/usr/sbin/mosquitto")


class SparkConfig(_Section):
    """Local mode by default; `iotlake up --cluster` starts a standalone master and worker."""

    master: str = "local[2]"
    master_port: int = Field(7077, ge=1, le=65535)
    master_ui_port: int = Field(8080, ge=1, le=65535)
    worker_ui_port: int = Field(8081, ge=1, le=65535)
    worker_cores: int = Field(1, ge=1)
    worker_memory: str = "2g"
    # Workers of the standalone cluster; two or more let a query outlive a lost worker.
    workers: int = Field(1, ge=1)
    # The demo's five pipelines hold ~0.5 GB after a full collection; 1g leaves room for
    # micro-batches without the RSS of a bigger heap the collector fills before it collects.
    driver_memory: str = "1g"
    # The address executors use to reach the driver: loopback for the embedded stack, the
    # container's name under compose.
    driver_host: str = LOOPBACK
    ui_enabled: bool = False
    shuffle_partitions: int = Field(4, ge=1)

    @property
    def cluster_url(self) -> str:
        return f"spark://{LOOPBACK}:{self.master_port}"


class LakeConfig(_Section):
    """Where Delta tables, checkpoints and landing files live: a local path or `s3://...`."""

    root: str = ".iotlake/lake"
    bucket: str = "iotlake-lake"
    landing_bucket: str = "iotlake-landing"


class DashboardConfig(_Section):
    host: str = LOOPBACK
    port: int = Field(8501, ge=1, le=65535)


class GatewayConfig(_Section):
    host: str = LOOPBACK
    port: int = Field(8000, ge=1, le=65535)
    max_event_bytes: int = Field(4096, ge=64)
    max_events_per_second_per_client: float = Field(10.0, gt=0)


class PipelinesConfig(_Section):
    """How the runner drives streaming queries."""

    trigger_seconds: float = Field(2.0, gt=0)
    # Materialized views are recomputed whole; how often, at most, while upstream changes.
    refresh_seconds: float = Field(30.0, gt=0)


class SeismographConfig(_Section):
    """The DAIS motion demo's numbers (docs/originals.md): bins, windows and watermark."""

    transport: Literal["kinesis", "kafka"] = "kinesis"
    stream: str = "dais2023"
    heatmap_bin_seconds: int = Field(2, ge=1)
    plot3d_bin_seconds: int = Field(10, ge=1)
    live_window_seconds: int = Field(1, ge=1)
    live_watermark_seconds: int = Field(3, ge=0)
    live_windows_shown: int = Field(30, ge=1)
    # Bounds the heat map's streaming state: bins older than this behind the newest event
    # are final. The original computed it in batch; an hour covers any live demo.
    heatmap_watermark_seconds: int = Field(3600, ge=0)


class AwsIotConfig(_Section):
    """The AWS Kinesis -> Delta PoC: stream name and its single anomaly rule."""

    transport: Literal["kinesis", "kafka"] = "kinesis"
    stream: str = "iot-sensor-data-stream"
    critical_temperature_c: float = 28.0


class ArduinoConfig(_Section):
    """The Arduino system: the Kafka topic of each sensor kind and the bridge's MQTT identity.

    MQTT topics are `dht_temp`, `dht_hum`, `sr04_distance` and `pir_test/1`, after
    `mqtt_prefix`; the bridge forwards each to its Kafka topic here.
    """

    temperature_topic: str = "dht_temp"
    humidity_topic: str = "dht_hum"
    distance_topic: str = "sr04_distance"
    pir_topic: str = "pir_test"
    mqtt_prefix: str = ""
    bridge_client_id: str = "iotlake-bridge"


class TextSentimentConfig(_Section):
    """The DLT Twitter demo: the post stream's pace and the sentiment labels' thresholds.

    `score` is VADER's compound score in [-1, 1]; a post is POS at or above
    `positive_threshold`, NEG at or below `negative_threshold`, NEU between (VADER's
    authors recommend +/-0.05).
    """

    # A Unity Catalog volume path, as the pipeline reads it (`iotlake.storage.volume_uri`).
    landing_path: str = "/Volumes/main/tweets/landing/posts"
    rate: float = Field(5.0, gt=0)
    posts_per_file: int = Field(5, ge=1)
    max_posts: int = Field(50_000, ge=0)
    positive_threshold: float = Field(0.05, ge=-1, le=1)
    negative_threshold: float = Field(-0.05, ge=-1, le=1)
    top_posts: int = Field(15, ge=1)
    wordcloud_posts: int = Field(100, ge=1)
    wordcloud_words: int = Field(100, ge=1)


class ManufacturingConfig(_Section):
    """The IoT time-series solution: its landing paths and SQL alert (docs/originals.md).

    The alert counts `anomaly_detected` rows newer than `alert_minutes` and fires when there
    are any; it starts muted as the original does (it still evaluates and shows, it only
    notifies nobody).
    """

    # The original's volumes: /Volumes/{catalog}/{schema}/sensor_bronze and .../inspection_bronze
    sensor_landing: str = "/Volumes/default/iot_anomaly_detection/sensor_bronze"
    inspection_landing: str = "/Volumes/default/iot_anomaly_detection/inspection_bronze"
    alert_minutes: int = Field(10, ge=1)
    alert_muted: bool = True


class Settings(BaseSettings):
    """Everything iotlake needs to know about where it runs."""

    model_config = SettingsConfigDict(
        env_prefix="IOTLAKE_",
        env_nested_delimiter="__",
        env_file=".env",
        # `.env` is shared with docker compose (MinIO credentials...): ignore its other keys.
        # Unknown keys in iotlake.yml are refused by `_check_keys` instead.
        extra="ignore",
    )

    profile: Profile = "embedded"
    target: Target = "dev"
    state_dir: Path = Path(".iotlake")
    # Spark's connectors and the Kafka broker, resolved by `make jars` (see iotlake/jars.py).
    jars_dir: Path = PROJECT_ROOT / ".jars"
    kafka: KafkaConfig = KafkaConfig()
    aws: AwsConfig = AwsConfig()
    mqtt: MqttConfig = MqttConfig()
    spark: SparkConfig = SparkConfig()
    lake: LakeConfig = LakeConfig()
    dashboard: DashboardConfig = DashboardConfig()
    gateway: GatewayConfig = GatewayConfig()
    pipelines: PipelinesConfig = PipelinesConfig()
    seismograph: SeismographConfig = SeismographConfig()
    aws_iot: AwsIotConfig = AwsIotConfig()
    arduino: ArduinoConfig = ArduinoConfig()
    text_sentiment: TextSentimentConfig = TextSentimentConfig()
    manufacturing: ManufacturingConfig = ManufacturingConfig()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Environment beats `.env`, which beats the file sections passed as init values."""
        return env_settings, dotenv_settings, init_settings

    @property
    def run_dir(self) -> Path:
        return self.state_dir / "run"

    @property
    def log_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def data_dir(self) -> Path:
        return self.state_dir / "data"

    @property
    def lake_root(self) -> str:
        """The target's table root: `<lake.root>/<target>`, so dev and prod never mix."""
        return f"{self.lake.root.rstrip('/')}/{self.target}"


def _deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _read_file(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        content = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}{where}: not valid YAML; fix the syntax there") from error
    if not isinstance(content, dict):
        raise ConfigError(f"{path}: expected a mapping with 'profiles' and 'targets'")
    return content


def _section(content: dict[str, Any], group: str, name: str, path: Path) -> dict[str, Any]:
    sections = content.get(group) or {}
    if name not in sections:
        if not sections:
            return {}
        known = ", ".join(sorted(sections))
        raise ConfigError(f"{path}: no {group[:-1]} '{name}' (known: {known}); pick one of those")
    return sections[name] or {}


def _check_keys(values: dict[str, Any], path: Path) -> None:
    """Refuse a misspelt top-level key in the file, which `extra="ignore"` would hide."""
    known = set(Settings.model_fields)
    for key in values:
        if key not in known:
            raise ConfigError(
                f"config key '{key}' is unknown; known keys: {', '.join(sorted(known))} "
                f"(fix it in {path})"
            )


def _one_line(error: ValidationError, path: Path) -> str:
    first = error.errors()[0]
    key = ".".join(str(part) for part in first["loc"])
    env = "IOTLAKE_" + "__".join(str(part).upper() for part in first["loc"])
    given = first.get("input")
    shown = "" if isinstance(given, dict) else f" (got {given!r})"
    return f"config key '{key}': {first['msg']}{shown}; fix it in {path} or {env}"


def load_settings(
    profile: str | None = None,
    target: str | None = None,
    path: Path | None = None,
    **overrides: Any,
) -> Settings:
    """Build the settings for one profile and target; raise ConfigError with one line."""
    path = path or Path(os.environ.get(CONFIG_FILE_ENV, DEFAULT_CONFIG_FILE))
    content = _read_file(path)
    profile = profile or os.environ.get("IOTLAKE_PROFILE") or "embedded"
    target = target or os.environ.get("IOTLAKE_TARGET") or "dev"
    values = _deep_merge(
        _section(content, "profiles", profile, path),
        _section(content, "targets", target, path),
    )
    values = _deep_merge(values, overrides) | {"profile": profile, "target": target}
    _check_keys(values, path)
    try:
        return Settings(**values)
    except ValidationError as error:
        raise ConfigError(_one_line(error, path)) from None
