"""Headless Debian chromium through chromedriver, and pages rendered and captured in it."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
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
]


def chromium(profile_dir: Path, window: str = "1400,1000"):
    """A headless chromium driver with a throw-away profile; skips where none is installed."""
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.skip("needs Debian chromium and chromium-driver (`make deps` installs them)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in [*CHROME_FLAGS, f"--window-size={window}", f"--user-data-dir={profile_dir}"]:
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)


def render(driver, url: str, plots: int, text: str) -> int:
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


def capture(driver, path: Path) -> None:
    """A screenshot of the whole page: grow the window to the content's height first."""
    height = driver.execute_script(
        "const main = document.querySelector('[data-testid=\"stMain\"]')"
        " || document.documentElement; return main.scrollHeight;"
    )
    driver.set_window_size(1400, max(1000, min(int(height) + 120, 4000)))
    time.sleep(1.0)
    driver.save_screenshot(str(path))
