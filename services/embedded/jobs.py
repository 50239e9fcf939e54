"""The demo's jobs as supervised processes: producers, pipelines, gateway and dashboard.

They start after the services, through the same PID files, so `iotlake down` stops them too
and `iotlake status` shows their memory.
"""

from __future__ import annotations

import sys
import urllib.request
from pathlib import Path

from iotlake.config import LOOPBACK, Settings
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
    from deltalake import DeltaTable

    from spark_jobs.io.storage import storage_options
    from spark_jobs.runner import SYSTEMS, load_system, location

    for system in SYSTEMS:
        for spec in load_system(system, settings):
            uri = location(settings, spec)
            if not DeltaTable.is_deltatable(uri, storage_options(settings, uri) or None):
                return False
    return True


# Job output goes to a log file: unbuffered, so `iotlake logs` shows progress as it happens.
UNBUFFERED = {"PYTHONUNBUFFERED": "1"}


def _job(
    name: str,
    args: list[str],
    endpoint: str,
    healthy=lambda: True,
    ports: tuple[int, ...] = (),
    host: str = LOOPBACK,
    start_timeout: float = 60.0,
) -> ServiceSpec:
    """A Python job of the demo, run with this interpreter, its output unbuffered."""
    return ServiceSpec(
        name=name,
        command=[sys.executable, *args],
        endpoint=endpoint,
        host=host,
        ports=ports,
        healthy=healthy,
        install_hint="run `make venv`",
        env=UNBUFFERED,
        start_timeout=start_timeout,
    )


def demo_specs(settings: Settings, phones: int = 130) -> list[ServiceSpec]:
    """Producers at the originals' load, every pipeline, the phone gateway, the dashboard."""
    dashboard, gateway = settings.dashboard, settings.gateway
    dashboard_url = f"http://{dashboard.host}:{dashboard.port}"
    gateway_url = f"http://{gateway.host}:{gateway.port}"
    return [
        _job(
            "pipelines",
            ["-m", "iotlake", "run", "all", "--continuous"],
            settings.lake_root,
            healthy=lambda: _tables_exist(settings),
            start_timeout=240.0,
        ),
        _job(
            "producer-seismograph",
            ["-m", "services.producers.phone_simulator", "--phones", str(phones)],
            f"{settings.seismograph.transport}:{settings.seismograph.stream}",
        ),
        _job(
            "producer-aws-iot",
            ["-m", "services.producers.aws_iot_producer"],
            f"{settings.aws_iot.transport}:{settings.aws_iot.stream}",
        ),
        _job(
            "bridge-arduino",
            ["-m", "services.arduino.bridge"],
            f"mqtt -> kafka {settings.kafka.bootstrap_servers}",
        ),
        _job(
            "producer-arduino",
            ["-m", "services.arduino.simulator"],
            f"mqtt://{settings.mqtt.host}:{settings.mqtt.port}",
        ),
        _job(
            # Live CSV batches every 30 s ending now, so the `Defects detected` alert fires.
            "producer-manufacturing",
            ["-m", "services.producers.manufacturing_generator", "--live"],
            f"files: {settings.manufacturing.sensor_landing}, "
            f"{settings.manufacturing.inspection_landing}",
        ),
        _job(
            "producer-text-sentiment",
            ["-m", "services.producers.post_stream"],
            f"files: {settings.text_sentiment.landing_path}",
        ),
        _job(
            "gateway",
            ["-m", "services.gateway.server"],
            gateway_url,
            healthy=lambda: http_ok(f"{gateway_url}/healthz"),
            ports=(gateway.port,),
            host=gateway.host,
        ),
        _job(
            "dashboard",
            [
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
            ],
            dashboard_url,
            healthy=lambda: http_ok(f"{dashboard_url}/_stcore/health"),
            ports=(dashboard.port,),
            host=dashboard.host,
            start_timeout=90.0,
        ),
    ]
