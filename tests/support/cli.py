"""The `iotlake` command: run in this process (`run_cli`), or as a child process in an empty
working directory with every service port closed (`iotlake`)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from click.testing import Result
from typer.testing import CliRunner

from iotlake.cli import app
from iotlake.config import Settings
from services.embedded.spec import free_port
from tests.support.settings import settings_env


def run_cli(settings: Settings | None, *args: str) -> Result:
    """`iotlake ARGS` against `settings`' stack (or the defaults), output captured."""
    environment = settings_env(settings) if settings is not None else {}
    return CliRunner().invoke(app, list(args), env=environment)


CLI_TIMEOUT_SECONDS = 120


def closed_environment(tmp_path: Path, **variables: str | None) -> dict[str, str]:
    """The test's own variables, nothing from the developer's IOTLAKE_* or `.env`; a
    variable given as None is left out."""
    base = {name: value for name, value in os.environ.items() if not name.startswith("IOTLAKE_")}
    closed = {
        "IOTLAKE_STATE_DIR": str(tmp_path / "state"),
        "IOTLAKE_LAKE__ROOT": str(tmp_path / "lake"),
        "IOTLAKE_KAFKA__PORT": str(free_port()),
        "IOTLAKE_AWS__PORT": str(free_port()),
        "IOTLAKE_MQTT__PORT": str(free_port()),
    }
    merged = base | closed | variables
    return {name: value for name, value in merged.items() if value is not None}


def iotlake(
    tmp_path: Path, *args: str, config: str | None = None, **variables: str | None
) -> subprocess.CompletedProcess[str]:
    """Run `iotlake ARGS` in `tmp_path` (with `config` as its iotlake.yml, if given)."""
    if config is not None:
        (tmp_path / "iotlake.yml").write_text(config)
    return subprocess.run(
        [sys.executable, "-m", "iotlake", *args],
        cwd=tmp_path,
        env=closed_environment(tmp_path, **variables),
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_SECONDS,
    )


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    """stderr, asserted to be exactly one line starting with `iotlake:`."""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got:\n{result.stderr}"
    assert lines[0].startswith("iotlake: "), lines[0]
    return lines[0]
