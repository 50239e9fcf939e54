"""S3 + Kinesis emulator: moto server (default) or LocalStack in host mode."""

from __future__ import annotations

import sys

import boto3
from botocore.config import Config

from iotlake.config import Settings
from services.embedded.spec import ServiceSpec

_QUICK = Config(connect_timeout=1, read_timeout=3, retries={"max_attempts": 0})


def s3_answers(settings: Settings) -> bool:
    """Healthy means S3 lists buckets; both emulators serve S3 and Kinesis from one port."""
    try:
        boto3.client("s3", config=_QUICK, **settings.aws.boto3_kwargs()).list_buckets()
    except Exception:
        return False
    return True


def spec(settings: Settings) -> ServiceSpec:
    aws = settings.aws
    if aws.emulator == "localstack":
        command = [str(aws.localstack_python), "-m", "localstack.runtime.main"]
        env = {
            "GATEWAY_LISTEN": f"{aws.host}:{aws.port}",
            "DNS_ADDRESS": "0",
            "SERVICES": "s3,kinesis",
            "LOCALSTACK_VOLUME_DIR": str((settings.data_dir / "localstack").resolve()),
        }
        hint = "LocalStack runs on Python 3.13: run `make localstack` to create .venv-localstack"
        timeout = 180.0
    else:
        command = [sys.executable, "-m", "moto.server", "-H", aws.host, "-p", str(aws.port)]
        env = {}
        hint = "moto is a Python dependency: run `make venv`"
        timeout = 60.0
    return ServiceSpec(
        name="aws",
        command=command,
        endpoint=aws.endpoint_url or "aws",
        host=aws.host,
        ports=(aws.port,),
        healthy=lambda: s3_answers(settings),
        install_hint=hint,
        env=env,
        start_timeout=timeout,
    )
