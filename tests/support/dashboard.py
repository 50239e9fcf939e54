"""The Streamlit dashboard under test: the app pointed at a lake, pages opened with AppTest,
plotly figures read back, and `streamlit run` as a child process."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from iotlake.config import Settings, load_settings
from services.embedded.spec import free_port
from tests.support.processes import stop

REPO = Path(__file__).resolve().parents[2]
APP = REPO / "dashboards" / "app.py"
STARTUP_SECONDS = 60


def point_app_at(monkeypatch: pytest.MonkeyPatch, root: str, state_dir: Path) -> Settings:
    """Settings the app will load: the lake root and state dir come from IOTLAKE_* variables."""
    monkeypatch.setenv("IOTLAKE_LAKE__ROOT", root)
    monkeypatch.setenv("IOTLAKE_STATE_DIR", str(state_dir))
    # The app caches its settings per process; AppTest runs in this process.
    st.cache_resource.clear()
    return load_settings()


def open_page(page: str, timeout: float = 60, system: str | None = None) -> AppTest:
    """Run the app, switch to `page` (and pick `system`); fail on any exception it raised."""
    app = AppTest.from_file(str(APP), default_timeout=timeout)
    app.run()
    app.switch_page(page).run()
    if system is not None:
        app.selectbox(key="pipelines_system").select(system).run()
    assert not app.exception, [error.message for error in app.exception]
    return app


def figures(app: AppTest) -> dict[str, dict]:
    """The page's plotly figures by title."""
    found = [json.loads(chart.proto.spec) for chart in app.get("plotly_chart")]
    return {figure["layout"]["title"]["text"]: figure for figure in found}


def trace_values(trace: dict, key: str) -> np.ndarray:
    """A trace's values; plotly's JSON packs numeric arrays as base64 with a dtype."""
    values = trace[key]
    if isinstance(values, dict):
        return np.frombuffer(base64.b64decode(values["bdata"]), dtype=values["dtype"])
    return np.asarray(values)


def lake_environment(tmp_path: Path) -> tuple[Settings, dict[str, str]]:
    """Settings for a lake under `tmp_path`, and the environment that points the app at it."""
    environment = {
        **os.environ,
        "IOTLAKE_LAKE__ROOT": str(tmp_path / "lake"),
        "IOTLAKE_STATE_DIR": str(tmp_path),
    }
    settings = load_settings(lake={"root": str(tmp_path / "lake")}, state_dir=str(tmp_path))
    return settings, environment


def _wait_healthy(url: str, server: subprocess.Popen, log: Path) -> None:
    """Poll Streamlit's health endpoint until it answers "ok"; fail with the server's log."""
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"streamlit exited with {server.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as answer:
                if answer.read().strip() == b"ok":
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.5)
    pytest.fail(f"streamlit not healthy after {STARTUP_SECONDS} s:\n{log.read_text()}")


@contextmanager
def streamlit_server(environment: dict[str, str], log: Path) -> Iterator[str]:
    """`streamlit run dashboards/app.py` on a free port, healthy; its URL. Stopped by PID."""
    port = free_port()
    command = [
        sys.executable, "-m", "streamlit", "run", str(APP),
        "--server.headless", "true",
        "--server.address", "127.0.0.1",
        "--server.port", str(port),
        "--browser.gatherUsageStats", "false",
        "--server.fileWatcherType", "none",
    ]  # fmt: skip
    with log.open("wb") as output:
        server = subprocess.Popen(
            command, cwd=REPO, env=environment, stdout=output, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, server, log)
        yield url
    finally:
        stop(server)
