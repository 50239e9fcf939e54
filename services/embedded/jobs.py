"""The demo's jobs as supervised processes: producers, pipelines, gateway and dashboard.

They start after the services, through the same PID files, so `iotlake down` stops them too
and `iotlake status` shows their memory.
"""

from __future__ import annotations

import sys
import urllib.request
from pathlib import Path

from iotlake.config import Settings
from services.embedded.spec import ServiceSpec

REPO = Path(__file__).resolve().parents[2]


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as reply:
            return reply.status == 200
    except OSError:
        return False


def _tables_exist(settings: Settings) -> bool:
    """The pipelines are up once every declared table exists (created at query start)."""
    from spark_jobs.io.delta_source import open_table
    from spark_jobs.io.storage import storage_options
    from spark_jobs.runner import SYSTEMS, load_system, location

    for system in SYSTEMS:
        for spec in load_system(system):
            uri = location(settings, spec)
            if open_table(uri, storage_options(settings, uri)) is None:
                return False
    return True


# Job output goes to a log file: unbuffered, so `iotlake logs` shows progress as it happens.
UNBUFFERED = {"PYTHONUNBUFFERED": "1"}


def _python(*args: str) -> list[str]:
    return [sys.executable, *args]


def demo_specs(settings: Settings, phones: int = 130) -> list[ServiceSpec]:
    """Producers at the originals' load, every pipeline, the phone gateway, the dashboard."""
    dashboard, gateway = settings.dashboard, settings.gateway
    return [
        ServiceSpec(
            name="pipelines",
            command=_python("-m", "iotlake", "run", "all", "--continuous"),
            endpoint=settings.lake_root,
            host=settings.dashboard.host,
            ports=(),
            healthy=lambda: _tables_exist(settings),
            install_hint="run `make venv`",
            env=UNBUFFERED,
            start_timeout=240.0,
        ),
        ServiceSpec(
            name="producer-seismograph",
            command=_python("-m", "services.producers.phone_simulator", "--phones", str(phones)),
            endpoint=f"{settings.seismograph.transport}:{settings.seismograph.stream}",
            host=settings.dashboard.host,
            ports=(),
            healthy=lambda: True,
            install_hint="run `make venv`",
            env=UNBUFFERED,
        ),
        ServiceSpec(
            name="producer-aws-iot",
            command=_python("-m", "services.producers.aws_iot_producer"),
            endpoint=f"{settings.aws_iot.transport}:{settings.aws_iot.stream}",
            host=settings.dashboard.host,
            ports=(),
            healthy=lambda: True,
            install_hint="run `make venv`",
            env=UNBUFFERED,
        ),
        ServiceSpec(
            name="bridge-arduino",
            command=_python("-m", "services.arduino.bridge"),
            endpoint=f"mqtt -> kafka {settings.kafka.bootstrap_servers}",
            host=settings.dashboard.host,
            ports=(),
            healthy=lambda: True,
            install_hint="run `make venv`",
            env=UNBUFFERED,
        ),
        ServiceSpec(
            name="producer-arduino",
            command=_python("-m", "services.arduino.simulator"),
            endpoint=f"mqtt://{settings.mqtt.host}:{settings.mqtt.port}",
            host=settings.dashboard.host,
            ports=(),
            healthy=lambda: True,
            install_hint="run `make venv`",
            env=UNBUFFERED,
        ),
        ServiceSpec(
            name="gateway",
            command=_python("-m", "services.gateway.server"),
            endpoint=f"http://{gateway.host}:{gateway.port}",
            host=gateway.host,
            ports=(gateway.port,),
            healthy=lambda: http_ok(f"http://{gateway.host}:{gateway.port}/healthz"),
            install_hint="run `make venv`",
            env=UNBUFFERED,
        ),
        ServiceSpec(
            name="dashboard",
            command=_python(
                "-m",
                "streamlit",
                "run",
                str(REPO / "dashboards" / "app.py"),
                "--server.headless",
                "true",
                "--server.address",
                dashboard.host,
                "--server.port",
                str(dashboard.port),
                "--browser.gatherUsageStats",
                "false",
            ),
            endpoint=f"http://{dashboard.host}:{dashboard.port}",
            host=dashboard.host,
            ports=(dashboard.port,),
            healthy=lambda: http_ok(f"http://{dashboard.host}:{dashboard.port}/_stcore/health"),
            install_hint="run `make venv`",
            env=UNBUFFERED,
            start_timeout=90.0,
        ),
    ]
