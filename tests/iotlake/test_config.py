"""Configuration: profiles and targets merge as documented, and wrong values read clearly."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from iotlake.config import ConfigError, load_settings

CONFIG = Path(__file__).resolve().parents[2] / "iotlake.yml"


def test_embedded_dev_is_the_default_and_binds_loopback():
    settings = load_settings(path=CONFIG)
    assert (settings.profile, settings.target) == ("embedded", "dev")
    hosts = {
        settings.kafka.host,
        settings.aws.host,
        settings.mqtt.host,
        settings.dashboard.host,
        settings.gateway.host,
    }
    assert hosts == {"127.0.0.1"}
    assert settings.lake_root == ".iotlake/lake/dev"


def test_compose_prod_takes_its_profile_and_target_sections():
    settings = load_settings("compose", "prod", path=CONFIG)
    assert settings.aws.emulator == "localstack"
    assert settings.spark.master == "local[2]"
    assert settings.spark.shuffle_partitions == 16
    assert settings.lake_root == "s3://iotlake-lake/prod"


def test_environment_overrides_the_file(monkeypatch):
    monkeypatch.setenv("IOTLAKE_KAFKA__PORT", "19092")
    assert load_settings(path=CONFIG).kafka.bootstrap_servers == "127.0.0.1:19092"


def test_wrong_type_names_the_key_and_the_variable(monkeypatch):
    monkeypatch.setenv("IOTLAKE_KAFKA__PORT", "ninety")
    with pytest.raises(ConfigError) as error:
        load_settings(path=CONFIG)
    message = str(error.value)
    assert "\n" not in message
    assert "'kafka.port'" in message and "IOTLAKE_KAFKA__PORT" in message and "'ninety'" in message


def test_unknown_profile_lists_the_known_ones():
    with pytest.raises(ConfigError, match=r"no profile 'staging' \(known: compose, embedded\)"):
        load_settings("staging", path=CONFIG)


def test_misspelt_key_in_file_is_refused(tmp_path):
    bad = tmp_path / "iotlake.yml"
    bad.write_text("profiles:\n  embedded:\n    kafka:\n      prot: 1\n")
    with pytest.raises(ConfigError, match=r"'kafka.prot': Extra inputs are not permitted"):
        load_settings(path=bad)
    bad.write_text("profiles:\n  embedded:\n    kafak:\n      port: 1\n")
    with pytest.raises(ConfigError, match=r"config key 'kafak' is unknown"):
        load_settings(path=bad)


def test_env_file_shared_with_compose_does_not_break_the_cli(tmp_path, monkeypatch):
    (tmp_path / ".env").write_text("MINIO_ROOT_USER=lake\nIOTLAKE_MQTT__PORT=11883\n")
    monkeypatch.chdir(tmp_path)
    assert load_settings(path=CONFIG).mqtt.port == 11883


def test_broken_yaml_names_the_line(tmp_path):
    bad = tmp_path / "iotlake.yml"
    bad.write_text("profiles:\n  embedded: [\n")
    with pytest.raises(ConfigError, match=r"line \d+: not valid YAML"):
        load_settings(path=bad)


def test_cli_prints_one_line_and_exits_2_on_bad_config():
    env = {**os.environ, "IOTLAKE_AWS__EMULATOR": "azure"}
    result = subprocess.run(
        [sys.executable, "-m", "iotlake", "status"],
        env=env,
        capture_output=True,
        text=True,
        cwd=CONFIG.parent,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert "'aws.emulator'" in result.stderr and "IOTLAKE_AWS__EMULATOR" in result.stderr
