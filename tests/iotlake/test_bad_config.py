"""Bad configuration and missing services stop the CLI with one line naming the problem and fix.

Each test runs the real `iotlake` command in a child process, from an empty working
directory holding only the `iotlake.yml` the test writes, with every service port pointing
at a port where nothing listens.
"""

from __future__ import annotations

import pytest

from tests.support.cli import closed_environment, iotlake, one_line


@pytest.mark.parametrize(
    ("config", "named"),
    [
        ("profiles:\n  embedded:\n    kafka:\n      port: nine\n", "'kafka.port'"),
        ("profiles:\n  embedded:\n    gateway:\n      port: 70000\n", "'gateway.port'"),
        ("profiles:\n  embedded:\n    aws:\n      emulator: minio\n", "'aws.emulator'"),
        ("profiles:\n  embedded:\n    kafak:\n      port: 9\n", "'kafak' is unknown"),
        ("profiles:\n  embedded:\n    kafka:\n      prot: 9\n", "'kafka.prot'"),
        ("targets:\n  dev:\n    pipelines:\n      trigger_seconds: -1\n", "trigger_seconds"),
    ],
    ids=["wrong-type", "out-of-range", "not-a-choice", "unknown-section", "unknown-key", "neg"],
)
def test_bad_value_in_iotlake_yml_exits_2_naming_the_key_and_the_file(tmp_path, config, named):
    # No port variable: the file's value is the one read.
    result = iotlake(tmp_path, "status", config=config, IOTLAKE_KAFKA__PORT=None)

    line = one_line(result)
    assert result.returncode == 2
    assert named in line
    assert "iotlake.yml" in line
    assert result.stdout == ""


@pytest.mark.parametrize(
    ("variable", "value", "named"),
    [
        ("IOTLAKE_KAFKA__PORT", "abc", "'kafka.port'"),
        ("IOTLAKE_SPARK__SHUFFLE_PARTITIONS", "0", "'spark.shuffle_partitions'"),
        ("IOTLAKE_KAFKA__PROT", "9092", "'kafka.prot'"),
        ("IOTLAKE_SEISMOGRAPH__TRANSPORT", "mqtt", "'seismograph.transport'"),
    ],
)
def test_bad_environment_variable_exits_2_naming_the_variable(tmp_path, variable, value, named):
    result = iotlake(tmp_path, "status", **{variable: value})

    line = one_line(result)
    assert result.returncode == 2
    assert named in line
    assert variable in line


def test_unknown_profile_exits_2_listing_the_known_ones(tmp_path):
    config = "profiles:\n  embedded: {}\n  compose: {}\n"
    result = iotlake(tmp_path, "--profile", "laptop", "status", config=config)

    line = one_line(result)
    assert result.returncode == 2
    assert "'laptop'" in line and "compose, embedded" in line


def test_broken_yaml_exits_2_naming_the_line(tmp_path):
    result = iotlake(tmp_path, "status", config="profiles:\n  embedded:\n    kafka: [1, 2\n")

    line = one_line(result)
    assert result.returncode == 2
    assert "iotlake.yml line" in line and "not valid YAML" in line


def test_run_of_an_unknown_system_exits_2_listing_the_systems(tmp_path):
    result = iotlake(tmp_path, "run", "seismo", "--once")

    line = one_line(result)
    assert result.returncode == 2
    assert "'seismo'" in line and "seismograph" in line


@pytest.mark.parametrize(
    ("system", "variables", "service", "port_variable"),
    [
        ("arduino", {}, "the Kafka broker", "IOTLAKE_KAFKA__PORT"),
        ("aws-iot", {}, "the S3/Kinesis emulator", "IOTLAKE_AWS__PORT"),
        (
            "seismograph",
            {"IOTLAKE_SEISMOGRAPH__TRANSPORT": "kafka"},
            "the Kafka broker",
            "IOTLAKE_KAFKA__PORT",
        ),
    ],
)
def test_run_with_its_broker_down_exits_1_naming_it_and_how_to_start_it(
    tmp_path, system, variables, service, port_variable
):
    environment = closed_environment(tmp_path, **variables)
    result = iotlake(tmp_path, "run", system, "--once", **environment)

    line = one_line(result)
    assert result.returncode == 1
    assert f"{service} does not answer at 127.0.0.1:{environment[port_variable]}" in line
    assert "`iotlake up`" in line


def test_run_under_the_compose_profile_points_at_docker_compose(tmp_path):
    result = iotlake(tmp_path, "--profile", "compose", "run", "aws-iot", "--once")

    line = one_line(result)
    assert result.returncode == 1
    assert "the S3/Kinesis emulator does not answer" in line
    assert "`docker compose up --wait`" in line


@pytest.mark.parametrize(
    ("producer", "args", "service", "port_variable"),
    [
        ("aws-iot", ["--duration", "2"], "the S3/Kinesis emulator", "IOTLAKE_AWS__PORT"),
        ("seismograph", ["--duration", "2"], "the S3/Kinesis emulator", "IOTLAKE_AWS__PORT"),
        ("seismograph", ["--target", "kafka"], "the Kafka broker", "IOTLAKE_KAFKA__PORT"),
        ("aws-iot", ["--target=kafka"], "the Kafka broker", "IOTLAKE_KAFKA__PORT"),
        ("arduino", ["--duration", "2"], "the MQTT broker", "IOTLAKE_MQTT__PORT"),
    ],
)
def test_produce_with_its_service_down_exits_1_at_once_naming_it(
    tmp_path, producer, args, service, port_variable
):
    environment = closed_environment(tmp_path)
    result = iotlake(tmp_path, "produce", producer, *args, **environment)

    line = one_line(result)
    assert result.returncode == 1
    assert f"{service} does not answer at 127.0.0.1:{environment[port_variable]}" in line
    assert "`iotlake up`" in line
    assert result.stdout == ""  # refused before producing anything


def test_bridge_with_the_brokers_down_exits_1_naming_the_first(tmp_path):
    environment = closed_environment(tmp_path)
    result = iotlake(tmp_path, "bridge", **environment)

    line = one_line(result)
    assert result.returncode == 1
    port = environment["IOTLAKE_MQTT__PORT"]
    assert f"the MQTT broker does not answer at 127.0.0.1:{port}" in line


def test_produce_help_works_with_the_services_down(tmp_path):
    result = iotlake(tmp_path, "produce", "aws-iot", "--help")

    assert result.returncode == 0, result.stderr
    assert "--devices" in result.stdout
