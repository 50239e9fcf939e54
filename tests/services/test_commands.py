"""Every service is a typer command of `iotlake`, taking the options its callers pass.

`iotlake up`, the demo's jobs and the benchmark start the services as `python -m
services.<package>.<module> ...`; those spellings run the same commands.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.cli import run_cli

REPO = Path(__file__).resolve().parents[2]
OPTIONS = {
    ("produce", "seismograph"): (
        "--phones --rate-per-phone --duration --events --shaken-fraction --peak --pack "
        "--target --stream --seed --progress-every --retry-sleep --linger-ms --stop-timeout"
    ),
    ("produce", "aws-iot"): (
        "--devices --rate --duration --records --target --stream --seed --progress-every "
        "--retry-sleep --linger-ms --stop-timeout"
    ),
    ("produce", "arduino"): (
        "--dht-period --distance-hz --detections-per-minute --duration --seed --client-id "
        "--progress-every --stop-timeout"
    ),
    ("produce", "manufacturing"): (
        "--rows --devices --full --seed --more --more-rows --more-devices --more-only --live "
        "--interval --live-devices --backfill-minutes --day-minutes --batches"
    ),
    ("produce", "text-sentiment"): (
        "--rate --count --per-file --languages --seed --start-ms --landing --progress-every"
    ),
    ("bridge",): "--client-id --session-expiry --progress-every --stop-timeout",
    ("gateway",): "--host --port --to --target --certfile --keyfile",
    ("emulator",): "--host --port --journal",
}
MODULES = {
    "services.producers.phone_simulator": "--rate-per-phone",
    "services.producers.aws_iot_producer": "--retry-sleep",
    "services.producers.manufacturing_generator": "--more-only",
    "services.producers.post_stream": "--per-file",
    "services.arduino.simulator": "--dht-period",
    "services.arduino.bridge": "--session-expiry",
    "services.gateway.server": "--certfile",
    "services.embedded.aws_emulator": "--journal",
}


@pytest.mark.parametrize("command", list(OPTIONS), ids=" ".join)
def test_each_command_takes_every_option_its_callers_use(command):
    result = run_cli(None, *command, "--help")

    assert result.exit_code == 0, result.output
    for option in OPTIONS[command].split():
        assert option in result.stdout, option


@pytest.mark.parametrize("module", list(MODULES))
def test_python_dash_m_runs_the_same_command(module):
    environment = {name: value for name, value in os.environ.items() if name != "COLUMNS"}
    result = subprocess.run(
        [sys.executable, "-m", module, "--help"],
        cwd=REPO,
        env=environment | {"COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 0, result.stderr
    assert "Usage: iotlake" in result.stdout
    assert MODULES[module] in result.stdout


def test_a_bad_value_stops_the_command_with_exit_code_2_before_anything_starts():
    result = run_cli(None, "produce", "seismograph", "--pack", "0")

    assert result.exit_code == 2
    assert result.stderr.strip() == "iotlake: pack must be at least 1"
