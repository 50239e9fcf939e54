"""`streamlit run dashboards/app.py` serves pages that a real browser renders with their charts.

The server runs as a child process on a free port over seeded Delta tables; headless Debian
chromium opens it through chromedriver. Screenshots land in the test artifacts directory.
The `dashboard` and `browser` fixtures are in tests/dashboards/conftest.py.
"""

from __future__ import annotations

import time

import pytest

from tests.support.browser import capture, render
from tests.support.seed import write_table

pytestmark = pytest.mark.slow


def test_seismograph_aws_iot_and_data_quality_pages_render_their_charts(
    dashboard, browser, artifacts
):
    # The seismograph is the default page: st.navigation serves it at the root URL.
    seismograph = render(browser, f"{dashboard.url}/", 3, "Max magnitude")
    capture(browser, artifacts / "dashboard_seismograph.png")
    aws_iot = render(browser, f"{dashboard.url}/aws-iot", 2, "Critical readings, 24 h")
    capture(browser, artifacts / "dashboard_aws_iot.png")
    quality = render(browser, f"{dashboard.url}/data-quality", 2, "Latest batch per table")
    capture(browser, artifacts / "dashboard_data_quality.png")

    assert seismograph >= 3
    assert aws_iot >= 2
    assert quality >= 2
    for page in ("seismograph", "aws_iot", "data_quality"):
        assert (artifacts / f"dashboard_{page}.png").stat().st_size > 10_000


def test_open_page_follows_new_table_versions_without_a_reload(dashboard, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    render(browser, f"{dashboard.url}/", 3, "Max magnitude")
    stat = dashboard.seeded["seismograph"].tables["global_stat"].assign(events=987_654)
    write_table(dashboard.settings, "seismograph", "global_stat", stat)
    started = time.monotonic()

    WebDriverWait(browser, 30, poll_frequency=0.5).until(
        lambda d: "987,654" in d.find_element(By.TAG_NAME, "body").text
    )
    # The default refresh is 5 s; allow one interval plus a render.
    elapsed = time.monotonic() - started
    assert elapsed < 15, f"the page showed the new version after {elapsed:.1f} s"
