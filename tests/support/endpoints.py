"""Service endpoints for integration tests: containers where Docker answers, else embedded.

The same integration tests run against either: they only see `Endpoints`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from iotlake.config import Settings

LOCALSTACK_IMAGE = "localstack/localstack:4.14.0"  # last release that needs no auth token
KAFKA_IMAGE = "confluentinc/cp-kafka:7.6.0"
MINIO_IMAGE = "quay.io/minio/minio:RELEASE.2025-04-22T22-12-26Z"


@dataclass(frozen=True)
class Endpoints:
    """Settings that reach Kafka + S3/Kinesis, and every S3 endpoint to exercise."""

    shape: str
    settings: Settings
    s3_targets: dict[str, dict[str, Any]] = field(default_factory=dict)


def docker_unavailable_reason() -> str | None:
    """None when a Docker engine answers; otherwise why the container path cannot run."""
    try:
        import docker

        docker.from_env(timeout=3).ping()
    except Exception as error:  # the docker SDK raises several types for "no engine"
        return f"no Docker engine answers ({type(error).__name__}); containers path skipped"
    return None


def embedded_endpoints(settings: Settings) -> Endpoints:
    return Endpoints("embedded", settings, {"aws-emulator": settings.aws.boto3_kwargs()})


@contextlib.contextmanager
def container_endpoints(base: Settings) -> Iterator[Endpoints]:
    """Kafka, LocalStack and MinIO as throwaway containers, mapped onto `Settings`."""
    from testcontainers.community.kafka import KafkaContainer
    from testcontainers.community.localstack import LocalStackContainer
    from testcontainers.community.minio import MinioContainer

    with (
        KafkaContainer(KAFKA_IMAGE).with_kraft() as kafka,
        LocalStackContainer(LOCALSTACK_IMAGE).with_services("kinesis", "s3") as localstack,
        MinioContainer(MINIO_IMAGE) as minio,
    ):
        host, port = kafka.get_bootstrap_server().rsplit(":", 1)
        aws_url = localstack.get_url().removeprefix("http://")
        aws_host, aws_port = aws_url.rsplit(":", 1)
        settings = base.model_copy(
            update={
                "kafka": base.kafka.model_copy(update={"host": host, "port": int(port)}),
                "aws": base.aws.model_copy(
                    update={"emulator": "localstack", "host": aws_host, "port": int(aws_port)}
                ),
            }
        )
        minio_config = minio.get_config()
        yield Endpoints(
            "containers",
            settings,
            {
                "localstack": settings.aws.boto3_kwargs(),
                "minio": {
                    "endpoint_url": f"http://{minio_config['endpoint']}",
                    "aws_access_key_id": minio_config["access_key"],
                    "aws_secret_access_key": minio_config["secret_key"],
                    "region_name": settings.aws.region,
                },
            },
        )
