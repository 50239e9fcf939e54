"""`streamlit run dashboards/app.py` serves pages that a real browser renders with their charts.

The server runs as a child process on a free port over seeded Delta tables; headless Debian
chromium opens it through chromedriver. Screenshots land in the test artifacts directory.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import pytest

from iotlake.config import Settings, load_settings
from tests.conftest import free_port
from tests.dashboards.seed import SeededSystem, seed_lake, write_table

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
APP = REPO / "dashboards" / "app.py"
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
STARTUP_SECONDS = 60
RENDER_SECONDS = 90
PLOTS = ".js-plotly-plot"
CHROME_FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--window-size=1400,1000",
]


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


class Dashboard(NamedTuple):
    url: str
    settings: Settings
    seeded: dict[str, SeededSystem]


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dashboard]:
    """A dashboard server over freshly seeded tables; stopped by PID afterwards."""
    tmp_path = tmp_path_factory.mktemp("dashboard")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("IOTLAKE_LAKE__ROOT", str(tmp_path / "lake"))
        patch.setenv("IOTLAKE_STATE_DIR", str(tmp_path))
        settings = load_settings()
        environment = dict(os.environ)
    seeded = seed_lake(settings)
    port = free_port()
    log = tmp_path / "streamlit.log"
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
        yield Dashboard(url, settings, seeded)
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=10)


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory):
    """Headless chromium with a throw-away profile; quit afterwards."""
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.skip("needs Debian chromium and chromium-driver (`make deps` installs them)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in [*CHROME_FLAGS, f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def _render(driver, url: str, plots: int, text: str) -> int:
    """Open `url`, wait until `plots` plotly charts and `text` are drawn; return the count."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver.set_window_size(1400, 1000)
    driver.get(url)

    def drawn(d) -> int | bool:
        count = len(d.find_elements(By.CSS_SELECTOR, f"{PLOTS} .main-svg"))
        return count >= plots and text in d.find_element(By.TAG_NAME, "body").text and count

    count = WebDriverWait(driver, RENDER_SECONDS, poll_frequency=0.5).until(drawn)
    not_found = driver.find_elements(By.XPATH, "//*[contains(text(), 'Page not found')]")
    assert not not_found, f"{url} is not a page of the app"
    time.sleep(1.5)  # let plotly finish its layout pass before the capture
    return len(driver.find_elements(By.CSS_SELECTOR, PLOTS)) or count


def _capture(driver, path: Path) -> None:
    """A screenshot of the whole page: grow the window to the content's height first."""
    height = driver.execute_script(
        "const main = document.querySelector('[data-testid=\"stMain\"]')"
        " || document.documentElement; return main.scrollHeight;"
    )
    driver.set_window_size(1400, max(1000, min(int(height) + 120, 4000)))
    time.sleep(1.0)
    driver.save_screenshot(str(path))


def test_seismograph_aws_iot_and_data_quality_pages_render_their_charts(
    dashboard, browser, artifacts
):
    # The seismograph is the default page: st.navigation serves it at the root URL.
    seismograph = _render(browser, f"{dashboard.url}/", 3, "Max magnitude")
    _capture(browser, artifacts / "dashboard_seismograph.png")
    aws_iot = _render(browser, f"{dashboard.url}/aws-iot", 2, "Critical readings, 24 h")
    _capture(browser, artifacts / "dashboard_aws_iot.png")
    quality = _render(browser, f"{dashboard.url}/data-quality", 2, "Latest batch per table")
    _capture(browser, artifacts / "dashboard_data_quality.png")

    assert seismograph >= 3
    assert aws_iot >= 2
    assert quality >= 2
    for page in ("seismograph", "aws_iot", "data_quality"):
        assert (artifacts / f"dashboard_{page}.png").stat().st_size > 10_000


def test_open_page_follows_new_table_versions_without_a_reload(dashboard, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    _render(browser, f"{dashboard.url}/", 3, "Max magnitude")
    stat = dashboard.seeded["seismograph"].tables["global_stat"].assign(events=987_654)
    write_table(dashboard.settings, "seismograph", "global_stat", stat)
    started = time.monotonic()

    WebDriverWait(browser, 30, poll_frequency=0.5).until(
        lambda d: "987,654" in d.find_element(By.TAG_NAME, "body").text
    )
    # The default refresh is 5 s; allow one interval plus a render.
    elapsed = time.monotonic() - started
    assert elapsed < 15, f"the page showed the new version after {elapsed:.1f} s"
