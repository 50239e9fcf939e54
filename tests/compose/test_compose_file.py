"""The compose stack's file, checked with the real docker-compose.

No Docker engine is needed: `docker-compose config` (Compose v1, from Debian) parses,
interpolates and validates a Compose-spec file without one. Each test runs it against the
repository's docker-compose.yml with an env file the test controls and an environment
scrubbed of the variables the file reads, so a developer's own `.env` or shell never
changes the outcome.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yml"
ENV_EXAMPLE = REPO / ".env.example"
LOOPBACK = "127.0.0.1"

# `${NAME`, but not the escaped `$${NAME` that Compose passes through to the container.
VARIABLE_REFERENCE = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)")
# A variable with no default: `${NAME:?message}` or `${NAME?message}`.
REQUIRED_REFERENCE = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*):?\?")
# Environment keys whose values are credentials.
SECRET_KEY_NAME = re.compile(r"PASSWORD|SECRET|ACCESS_KEY|TOKEN|_USER$")
ENV_ASSIGNMENT = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=(.*)$")


def _docker_compose() -> str:
    path = shutil.which("docker-compose")
    if path is None:
        pytest.fail(
            "docker-compose is not installed: run `make deps` (it installs Debian's "
            "docker-compose, whose `config` validates docker-compose.yml without a Docker engine)"
        )
    return path


def _variables_read_by_compose_file() -> set[str]:
    return set(VARIABLE_REFERENCE.findall(COMPOSE_FILE.read_text()))


def _required_variables() -> set[str]:
    return set(REQUIRED_REFERENCE.findall(COMPOSE_FILE.read_text()))


def _env_example() -> dict[str, str]:
    values = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        match = ENV_ASSIGNMENT.match(line.strip())
        if match:
            values[match.group(1)] = match.group(2)
    return values


def _compose_config(env_file: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run `docker-compose config` on the repository's file with only `env_file`'s values."""
    scrubbed = {
        name: value
        for name, value in os.environ.items()
        if name not in _variables_read_by_compose_file() and not name.startswith("COMPOSE_")
    }
    command = [
        _docker_compose(),
        "--file",
        str(COMPOSE_FILE),
        "--project-directory",
        str(REPO),
        # Replaces the project directory's `.env`, so a developer's real one is never read.
        "--env-file",
        str(env_file),
        "config",
        *args,
    ]
    return subprocess.run(command, capture_output=True, text=True, env=scrubbed, timeout=60)


@pytest.fixture
def example_env_file(tmp_path: Path) -> Path:
    env_file = tmp_path / ".env"
    shutil.copyfile(ENV_EXAMPLE, env_file)
    return env_file


@pytest.fixture(scope="module")
def resolved(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The file as Compose resolves it with `.env.example`'s values (resolved once)."""
    env_file = tmp_path_factory.mktemp("compose") / ".env"
    shutil.copyfile(ENV_EXAMPLE, env_file)
    result = _compose_config(env_file)
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


@pytest.fixture
def services(resolved: dict) -> dict[str, dict]:
    return resolved["services"]


def _one_shot_services(services: dict[str, dict]) -> set[str]:
    """Services others wait on to finish: the ones run to completion, not kept running."""
    return {
        name
        for service in services.values()
        for name, dependency in (service.get("depends_on") or {}).items()
        if dependency.get("condition") == "service_completed_successfully"
    }


def _host_ip(port: str | dict) -> str | None:
    """The host address of a published port, in either of Compose's port syntaxes."""
    if isinstance(port, dict):
        return port.get("host_ip")
    parts = str(port).split("/")[0].split(":")
    return parts[0] if len(parts) == 3 else None


def _published_port(port: str | dict) -> int:
    if isinstance(port, dict):
        return int(port["published"])
    return int(str(port).split("/")[0].split(":")[-2])


def test_compose_file_validates_with_docker_compose(example_env_file: Path) -> None:
    result = _compose_config(example_env_file, "-q")
    assert result.returncode == 0, f"docker-compose config -q failed:\n{result.stderr}"


def test_stack_has_every_service_of_the_design(services: dict[str, dict]) -> None:
    expected = {
        "kafka",
        "localstack",
        "minio",
        "minio-init",
        "mosquitto",
        "spark-master",
        "spark-worker-1",
        "spark-worker-2",
        "provision",
        "pipelines",
        "dashboard",
    }
    assert set(services) == expected


def test_every_published_port_binds_loopback(services: dict[str, dict]) -> None:
    published = {}
    for name, service in services.items():
        for port in service.get("ports", []):
            assert _host_ip(port) == LOOPBACK, f"{name} publishes {port} beyond {LOOPBACK}"
            published[_published_port(port)] = name
    # The ports users and host-side tools connect to.
    for port, name in {
        9092: "kafka",
        4566: "localstack",
        9000: "minio",
        1883: "mosquitto",
        7077: "spark-master",
        8080: "spark-master",
        8501: "dashboard",
    }.items():
        assert published.get(port) == name, f"{name} should publish {port} on {LOOPBACK}"


def test_every_long_running_service_has_a_healthcheck(services: dict[str, dict]) -> None:
    one_shot = _one_shot_services(services)
    assert one_shot == {"minio-init", "provision"}
    for name, service in services.items():
        if name in one_shot:
            assert service.get("restart") == "no", f"one-shot {name} must not be restarted"
            continue
        healthcheck = service.get("healthcheck") or {}
        test = healthcheck.get("test") or []
        # Compose writes `disable: true` as the test ["NONE"].
        assert test and test[0] != "NONE", f"{name} runs until stopped but has no healthcheck"
        assert not healthcheck.get("disable"), f"{name} disables its healthcheck"


def test_dependencies_wait_for_health(services: dict[str, dict]) -> None:
    one_shot = _one_shot_services(services)
    for name, service in services.items():
        for dependency, spec in (service.get("depends_on") or {}).items():
            wanted = (
                "service_completed_successfully" if dependency in one_shot else "service_healthy"
            )
            assert spec.get("condition") == wanted, (
                f"{name} starts when {dependency} is {spec.get('condition')}, not {wanted}"
            )

    def waits_on(name: str) -> set[str]:
        return set(services[name].get("depends_on") or {})

    assert waits_on("minio-init") >= {"minio"}
    assert waits_on("provision") >= {"kafka", "localstack", "minio-init"}
    assert waits_on("pipelines") >= {"provision", "spark-worker-1", "spark-worker-2"}
    assert waits_on("spark-worker-1") >= {"spark-master"}
    assert waits_on("spark-worker-2") >= {"spark-master"}


def test_iotlake_containers_reach_the_other_services_by_name(services: dict[str, dict]) -> None:
    kafka_env = services["kafka"]["environment"]
    advertised = kafka_env["KAFKA_ADVERTISED_LISTENERS"].split(",")
    # Containers use the internal listener; the host uses the published port.
    assert any(listener.endswith("//kafka:19092") for listener in advertised)
    assert any(listener.endswith(f"//{LOOPBACK}:9092") for listener in advertised)

    env = services["pipelines"]["environment"]
    assert env["IOTLAKE_PROFILE"] == "compose"
    assert env["IOTLAKE_SPARK__MASTER"] == "spark://spark-master:7077"
    assert (env["IOTLAKE_KAFKA__HOST"], str(env["IOTLAKE_KAFKA__PORT"])) == ("kafka", "19092")
    assert env["IOTLAKE_AWS__HOST"] == "localstack"
    assert env["IOTLAKE_MQTT__HOST"] == "mosquitto"
    assert env["IOTLAKE_LAKE__ROOT"] == "s3://iotlake-lake"
    for host in ("kafka", "localstack", "mosquitto", "spark-master"):
        assert host in services
    assert services["pipelines"]["command"] == ["iotlake", "run", "all", "--continuous"]
    assert services["provision"]["command"] == ["iotlake", "provision"]


@pytest.mark.parametrize("service", ["provision", "pipelines", "dashboard", "spark-worker-1"])
def test_iotlake_settings_resolve_to_the_container_endpoints(
    service: str, services: dict[str, dict], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """iotlake's own config loader, given a container's environment, finds the services."""
    from iotlake.config import load_settings

    for name in list(os.environ):
        if name.startswith("IOTLAKE_"):
            monkeypatch.delenv(name)
    for name, value in services[service]["environment"].items():
        monkeypatch.setenv(name, str(value))
    # The image's working directory holds iotlake.yml and no .env.
    workdir = tmp_path / "app"
    workdir.mkdir()
    shutil.copyfile(REPO / "iotlake.yml", workdir / "iotlake.yml")
    monkeypatch.chdir(workdir)

    settings = load_settings()
    assert settings.profile == "compose"
    assert settings.spark.master == "spark://spark-master:7077"
    assert settings.kafka.bootstrap_servers == "kafka:19092"
    assert settings.aws.endpoint_url == "http://localstack:4566"
    assert (settings.mqtt.host, settings.mqtt.port) == ("mosquitto", 1883)
    assert settings.lake_root == "s3://iotlake-lake/dev"


def test_one_network_and_named_volumes_for_broker_and_storage_data(resolved: dict) -> None:
    assert list(resolved["networks"]) == ["iotlake"]
    for name, service in resolved["services"].items():
        assert list(service["networks"]) == ["iotlake"], f"{name} is not on the iotlake network"
    for service, volume in {
        "kafka": "kafka-data",
        "minio": "minio-data",
        "mosquitto": "mosquitto-data",
    }.items():
        assert volume in resolved["volumes"]
        sources = [str(mount).split(":")[0] for mount in resolved["services"][service]["volumes"]]
        assert volume in sources, f"{service} does not keep its data in the {volume} volume"


def test_every_image_is_pinned_to_a_version(services: dict[str, dict]) -> None:
    for name, service in services.items():
        image = service["image"]
        repository, _, tag = image.rpartition(":")
        assert repository and "/" not in tag, f"{name}: image {image} has no tag"
        assert tag != "latest", f"{name}: image {image} is not pinned"


def test_files_the_stack_mounts_and_builds_from_exist(services: dict[str, dict]) -> None:
    for name, service in services.items():
        for mount in service.get("volumes", []):
            source = str(mount).split(":")[0]
            if source.startswith("/"):
                assert Path(source).exists(), f"{name} mounts missing {source}"
        build = service.get("build")
        if build:
            dockerfile = Path(build["context"]) / build.get("dockerfile", "Dockerfile")
            assert dockerfile.is_file(), f"{name} builds from missing {dockerfile}"
            # Every literal COPY source must be in the build context.
            for line in dockerfile.read_text().splitlines():
                if line.startswith("COPY "):
                    for source in line.split()[1:-1]:
                        if not source.startswith("--") and "*" not in source:
                            path = Path(build["context"]) / source
                            assert path.exists(), f"{dockerfile.name} copies missing {source}"


def test_missing_env_file_fails_with_a_clear_message(tmp_path: Path) -> None:
    empty = tmp_path / ".env"
    empty.write_text("")
    result = _compose_config(empty, "-q")
    assert result.returncode != 0, "docker-compose accepted a stack with no credentials"
    named = [name for name in _required_variables() if name in result.stderr]
    assert named, f"the error names no missing variable:\n{result.stderr}"
    assert ".env" in result.stderr, f"the error does not point at .env:\n{result.stderr}"


@pytest.mark.parametrize(
    "variable",
    sorted(REQUIRED_REFERENCE.findall(COMPOSE_FILE.read_text())),
)
def test_each_missing_secret_is_named(variable: str, tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text(
        "".join(f"{name}={value}\n" for name, value in _env_example().items() if name != variable)
    )
    result = _compose_config(env_file, "-q")
    assert result.returncode != 0, f"docker-compose accepted a stack without {variable}"
    assert variable in result.stderr, f"the error does not name {variable}:\n{result.stderr}"


def test_no_secret_values_in_compose_file() -> None:
    text = COMPOSE_FILE.read_text()
    raw = yaml.safe_load(text)  # before interpolation: what is written in the file
    required = _required_variables()
    for name, service in raw["services"].items():
        environment = service.get("environment") or {}
        assert isinstance(environment, dict), f"{name}: write environment as a mapping"
        for key, value in environment.items():
            if SECRET_KEY_NAME.search(key):
                match = re.fullmatch(r"\$\{([A-Za-z0-9_]+):\?[^}]+\}", str(value))
                assert match, f"{name}.{key} must be ${{VAR:?message}}, not a literal or default"
                assert match.group(1) in required
    # No secret variable has a default, and no value from .env.example leaks into the file.
    for variable in required:
        assert f"${{{variable}:-" not in text and f"${{{variable}-" not in text
        value = _env_example().get(variable, "")
        if len(value) >= 8:
            assert value not in text, f"the value of {variable} is written in the compose file"


def test_env_example_lists_every_variable_the_compose_file_reads() -> None:
    assert set(_env_example()) == _variables_read_by_compose_file()
    lines = ENV_EXAMPLE.read_text().splitlines()
    for index, line in enumerate(lines):
        if ENV_ASSIGNMENT.match(line.strip()):
            assert index > 0 and lines[index - 1].startswith("#"), (
                f".env.example: {line.split('=')[0]} has no comment above it"
            )


# --- the users' CI workflow (.github/workflows/compose-e2e.yml) -------------------------------

WORKFLOW = REPO / ".github" / "workflows" / "compose-e2e.yml"
MAKEFILE = REPO / "Makefile"
MAKE_TARGET = re.compile(r"^([A-Za-z0-9_.-]+):(?!=)", re.MULTILINE)
MAKE_CALL = re.compile(r"\bmake\s+((?:[A-Za-z0-9_.-]+\s*)+)")


@pytest.fixture(scope="module")
def workflow() -> dict:
    document = yaml.safe_load(WORKFLOW.read_text())
    assert isinstance(document, dict), f"{WORKFLOW} is not a YAML mapping"
    return document


def _steps(workflow: dict) -> list[dict]:
    (job,) = workflow["jobs"].values()
    return job["steps"]


def _make_targets() -> set[str]:
    return set(MAKE_TARGET.findall(MAKEFILE.read_text()))


def _recipe(target: str) -> list[str]:
    """The command lines of one Makefile target."""
    lines = MAKEFILE.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"{target}:"))
    recipe = []
    for line in lines[start + 1 :]:
        if not line.startswith("\t"):
            break
        recipe.append(line.strip())
    return recipe


def test_workflow_parses_and_runs_on_push_and_pull_requests(workflow: dict) -> None:
    # PyYAML reads the bare key `on` as the boolean True.
    triggers = workflow.get("on", workflow.get(True))
    assert {"push", "pull_request"} <= set(triggers)
    (job,) = workflow["jobs"].values()
    assert job["runs-on"].startswith("ubuntu-")
    assert 0 < job["timeout-minutes"] <= 90


def test_workflow_checks_out_sets_up_python_311_and_installs_with_make(workflow: dict) -> None:
    steps = _steps(workflow)
    uses = [step.get("uses", "") for step in steps]
    assert uses[0].startswith("actions/checkout@")
    setup = next(step for step in steps if step.get("uses", "").startswith("actions/setup-python@"))
    assert str(setup["with"]["python-version"]) == "3.11"
    runs = [step.get("run", "") for step in steps]
    assert any(re.search(r"\bmake venv\b", run) for run in runs)


def test_workflow_calls_only_make_targets_that_exist(workflow: dict) -> None:
    called = {
        target
        for step in _steps(workflow)
        for match in MAKE_CALL.finditer(step.get("run", ""))
        for target in match.group(1).split()
    }
    assert called, "the workflow calls no make target"
    assert called <= _make_targets(), f"unknown make targets: {called - _make_targets()}"


def test_workflow_starts_the_stack_healthy_runs_the_tests_and_always_tears_down(
    workflow: dict,
) -> None:
    steps = _steps(workflow)
    runs = [step.get("run", "") for step in steps]
    up = next(i for i, run in enumerate(runs) if "docker compose up" in run)
    tests = next(i for i, run in enumerate(runs) if "make test-compose" in run)
    down = next(i for i, run in enumerate(runs) if "docker compose down" in run)
    env_file = next(i for i, run in enumerate(runs) if "cp .env.example .env" in run)
    assert env_file < up < tests < down
    assert "--wait" in runs[up].split()
    assert steps[down].get("if") == "always()"
    assert "--volumes" in runs[down].split()
    assert ENV_EXAMPLE.is_file() and COMPOSE_FILE.is_file()


def test_workflow_replaces_every_placeholder_secret_of_env_example(workflow: dict) -> None:
    """The throwaway `.env` gets random values for the secrets `.env.example` only names."""
    script = next(s["run"] for s in _steps(workflow) if "cp .env.example .env" in s.get("run", ""))
    placeholders = [
        name for name, value in _env_example().items() if value.startswith("replace-with-")
    ]
    assert placeholders
    for name in placeholders:
        assert f"s/^{name}=.*/{name}=$(openssl rand" in script, f"{name} keeps its placeholder"


def test_make_test_compose_runs_the_compose_stack_tests_that_exist() -> None:
    from tests.support.compose import STACK_VARIABLE

    (command,) = _recipe("test-compose")
    assert f"{STACK_VARIABLE}=compose" in command
    paths = [part for part in command.split() if part.startswith("tests/")]
    assert paths and all((REPO / path).exists() for path in paths)
