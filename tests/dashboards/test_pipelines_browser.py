"""The pipelines page in a real browser: Graphviz draws the pipeline's graph in the page (no
server-side graphviz), beside the tables of rates and expectations.

The server and headless chromium are the dashboard tests' fixtures (conftest.py); the
seismograph's event log is re-seeded just before the page opens, so its batches are recent.
"""

from __future__ import annotations

import pytest

from dashboards import pipeline_queries
from tests.support.browser import RENDER_SECONDS, capture
from tests.support.pipelines import EXPECTED_STATUS, declared_expectations
from tests.support.seed import seed_pipeline_log

pytestmark = pytest.mark.slow

GRAPH_NODES = '[data-testid="stGraphVizChart"] svg g.node'
GRAPH_EDGES = '[data-testid="stGraphVizChart"] svg g.edge'
TABLES = '[data-testid="stDataFrame"]'


def test_pipelines_page_draws_the_graph_and_its_tables(dashboard, browser, artifacts):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    settings = dashboard.settings
    seed_pipeline_log(settings, declared_expectations(settings, "seismograph"))
    graph = pipeline_queries.pipeline_graph(settings, "seismograph")
    edges = sum(len(dataset.upstream) for dataset in graph)

    browser.set_window_size(1400, 1000)
    browser.get(f"{dashboard.url}/pipelines")

    def drawn(driver) -> bool:
        nodes = driver.find_elements(By.CSS_SELECTOR, GRAPH_NODES)
        frames = driver.find_elements(By.CSS_SELECTOR, TABLES)
        return len(nodes) == len(graph) and len(frames) >= 2

    WebDriverWait(browser, RENDER_SECONDS, poll_frequency=0.5).until(drawn)
    capture(browser, artifacts / "dashboard_pipelines.png")

    titles = {
        node.find_element(By.TAG_NAME, "title").get_attribute("textContent")
        for node in browser.find_elements(By.CSS_SELECTOR, GRAPH_NODES)
    }
    assert titles == {dataset.name for dataset in graph}
    assert len(browser.find_elements(By.CSS_SELECTOR, GRAPH_EDGES)) == edges
    text = browser.find_element(By.CSS_SELECTOR, '[data-testid="stGraphVizChart"]').text
    for table, status in EXPECTED_STATUS.items():
        assert table in text
        assert status in text
    body = browser.find_element(By.TAG_NAME, "body").text
    assert "Falling behind" in body and "Not started" in body
    assert (artifacts / "dashboard_pipelines.png").stat().st_size > 10_000
