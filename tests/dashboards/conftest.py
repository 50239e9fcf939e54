"""Fixtures of the dashboard tests: the app pointed at a private lake, a seeded dashboard
server and a headless browser."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import pytest
import streamlit as st

from iotlake.config import Settings
from tests.support.browser import chromium
from tests.support.dashboard import lake_environment, point_app_at, streamlit_server
from tests.support.seed import SeededSystem, seed_lake


@pytest.fixture
def lake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """An empty lake under `tmp_path` that the app (run by AppTest in this process) reads."""
    yield point_app_at(monkeypatch, str(tmp_path / "lake"), tmp_path)
    st.cache_resource.clear()


class Dashboard(NamedTuple):
    url: str
    settings: Settings
    seeded: dict[str, SeededSystem]


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dashboard]:
    """A dashboard server over freshly seeded tables; stopped by PID afterwards."""
    tmp_path = tmp_path_factory.mktemp("dashboard")
    settings, environment = lake_environment(tmp_path)
    seeded = seed_lake(settings)
    with streamlit_server(environment, tmp_path / "streamlit.log") as url:
        yield Dashboard(url, settings, seeded)


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory):
    """Headless chromium with a throw-away profile; quit afterwards."""
    driver = chromium(tmp_path_factory.mktemp("chromium-profile"))
    try:
        yield driver
    finally:
        driver.quit()
