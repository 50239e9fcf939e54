"""No secrets in the tree, services on loopback only, the pipeline's S3 user limited to its buckets.

Compose credentials come only from `.env` (its variables and `.env.example`'s placeholders
are checked in tests/compose/test_compose_file.py); the gateway's input limits (body size,
events per request, per-device rate) in tests/services/gateway/test_gateway.py.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import psutil
import pyarrow as pa
import pytest
import requests
import yaml
from botocore.exceptions import ClientError
from deltalake import DeltaTable, write_deltalake

from services.embedded.process import read_handle
from services.embedded.spec import free_port
from tests.support.processes import stop

REPO = Path(__file__).resolve().parents[1]
SECRET_PATTERNS = {
    "AWS access key id": re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b"),
    "private key": re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    "AWS secret key": re.compile(r"aws_secret_access_key\s*=\s*['\"]?[A-Za-z0-9/+]{40}"),
    "password literal": re.compile(r"(?i)password\s*[:=]\s*['\"][^'\"${}]{8,}['\"]"),
}


def test_no_credential_is_committed():
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split()
    found = []
    for name in tracked:
        path = REPO / name
        if not path.is_file() or path.suffix in {".png", ".lock"}:
            continue
        text = path.read_text(errors="ignore")
        found += [f"{name}: {kind}" for kind, rx in SECRET_PATTERNS.items() if rx.search(text)]
    assert found == []


def test_every_embedded_service_listens_on_loopback_only(stack):
    listening = {}
    for name in ("aws", "kafka", "mqtt"):
        process = psutil.Process(read_handle(stack.run_dir, name).pid)
        members = [process, *process.children(recursive=True)]
        listening[name] = {
            conn.laddr.ip
            for member in members
            for conn in member.net_connections(kind="inet")
            if conn.status == psutil.CONN_LISTEN
        }
    assert listening == {"aws": {"127.0.0.1"}, "kafka": {"127.0.0.1"}, "mqtt": {"127.0.0.1"}}


# --- credentials of the compose stack ----------------------------------------------------------

COMPOSE_FILE = REPO / "docker-compose.yml"
PIPELINE_POLICY = REPO / "compose" / "minio" / "pipeline-policy.json"
LAKE_BUCKETS = ("iotlake-lake", "iotlake-landing")


def test_env_file_is_ignored_by_git_and_never_tracked():
    ignored = subprocess.run(
        ["git", "check-ignore", "--quiet", ".env"], cwd=REPO, capture_output=True, check=False
    )
    tracked = subprocess.run(
        ["git", "ls-files", "--error-unmatch", ".env"], cwd=REPO, capture_output=True, check=False
    )
    assert ignored.returncode == 0, ".env is not in .gitignore"
    assert tracked.returncode != 0, ".env is tracked by git"


def test_minio_root_credentials_reach_only_minio_and_its_setup_job():
    services = yaml.safe_load(COMPOSE_FILE.read_text())["services"]
    holders = {
        name
        for name, service in services.items()
        if any("MINIO_ROOT" in str(value) for value in (service.get("environment") or {}).values())
    }
    assert holders == {"minio", "minio-init"}


def test_pipeline_policy_names_only_the_lake_buckets_and_no_wildcard_action():
    policy = json.loads(PIPELINE_POLICY.read_text())
    allowed = {f"arn:aws:s3:::{bucket}" for bucket in LAKE_BUCKETS}
    allowed |= {f"{arn}/*" for arn in allowed}
    for statement in policy["Statement"]:
        assert statement["Effect"] == "Allow"
        actions = statement["Action"]
        assert all(action.startswith("s3:") and "*" not in action for action in actions)
        assert set(statement["Resource"]) <= allowed, statement["Resource"]
    init = (REPO / "compose" / "minio" / "init.sh").read_text()
    assert 'policy attach iotlake iotlake-pipeline --user "$MINIO_PIPELINE_ACCESS_KEY"' in init


# --- the pipeline's S3 user is limited to its buckets (moto's IAM enforcement) -----------------


@pytest.fixture
def moto_with_iam(tmp_path: Path) -> Iterator[str]:
    """A private moto server on a free port; the caller turns IAM enforcement on."""
    port = free_port()
    log = (tmp_path / "moto.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                requests.get(f"{url}/moto-api/", timeout=2)
                break
            except requests.ConnectionError:
                time.sleep(0.2)
        yield url
    finally:
        stop(process, timeout=15)
        log.close()


def _pipeline_user(url: str) -> dict[str, str]:
    """Buckets, and an IAM user holding the compose stack's pipeline policy; its keys."""
    root = {"endpoint_url": url, "region_name": "us-east-1"}
    root |= {"aws_access_key_id": "test", "aws_secret_access_key": "test"}
    s3, iam = boto3.client("s3", **root), boto3.client("iam", **root)
    for bucket in (*LAKE_BUCKETS, "another-team"):
        s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket="another-team", Key="private.csv", Body=b"secret")
    iam.create_user(UserName="iotlake-pipeline")
    policy = iam.create_policy(
        PolicyName="iotlake-pipeline", PolicyDocument=PIPELINE_POLICY.read_text()
    )
    iam.attach_user_policy(UserName="iotlake-pipeline", PolicyArn=policy["Policy"]["Arn"])
    key = iam.create_access_key(UserName="iotlake-pipeline")["AccessKey"]
    return {"AccessKeyId": key["AccessKeyId"], "SecretAccessKey": key["SecretAccessKey"]}


def test_pipeline_user_writes_delta_to_the_lake_and_is_denied_other_buckets(moto_with_iam):
    url = moto_with_iam
    key = _pipeline_user(url)
    # From here on moto checks every request's signature and the caller's IAM policies.
    requests.post(f"{url}/moto-api/reset-auth", data=b"0", timeout=10).raise_for_status()
    options = {
        "AWS_ENDPOINT_URL": url,
        "AWS_ALLOW_HTTP": "true",
        "AWS_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": key["AccessKeyId"],
        "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"],
        "AWS_S3_ALLOW_UNSAFE_RENAME": "true",
    }
    user = boto3.client(
        "s3",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id=key["AccessKeyId"],
        aws_secret_access_key=key["SecretAccessKey"],
    )

    # What a pipeline does: Delta commits in the lake bucket, files in the landing bucket.
    table = "s3://iotlake-lake/dev/seismograph/sensor"
    write_deltalake(table, pa.table({"magn": [1.0, 2.0]}), storage_options=options)
    write_deltalake(table, pa.table({"magn": [3.0]}), storage_options=options, mode="append")
    user.put_object(Bucket="iotlake-landing", Key="posts/a.json", Body=b"{}\n")

    assert DeltaTable(table, storage_options=options).to_pyarrow_table().num_rows == 3
    assert [o["Key"] for o in user.list_objects_v2(Bucket="iotlake-landing")["Contents"]] == [
        "posts/a.json"
    ]
    denied = {
        "read another bucket": lambda: user.get_object(Bucket="another-team", Key="private.csv"),
        "write another bucket": lambda: user.put_object(Bucket="another-team", Key="x", Body=b""),
        "list another bucket": lambda: user.list_objects_v2(Bucket="another-team"),
        "create a bucket": lambda: user.create_bucket(Bucket="iotlake-extra"),
        "delete a lake bucket": lambda: user.delete_bucket(Bucket="iotlake-landing"),
    }
    codes = {}
    for name, call in denied.items():
        with pytest.raises(ClientError) as refused:
            call()
        codes[name] = refused.value.response["Error"]["Code"]
    assert set(codes.values()) == {"AccessDenied"}, codes
    with pytest.raises(Exception, match="privileges"):
        write_deltalake("s3://another-team/t", pa.table({"x": [1]}), storage_options=options)
