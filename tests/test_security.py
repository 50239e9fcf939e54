"""No secrets in the tree, and every embedded service listens on loopback only."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import psutil

from services.embedded.process import read_handle

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
