"""The text-sentiment page shows the top posts, the word cloud, the label pie and languages.

Its tables are seeded from generated posts scored with VADER here, and written with delta-rs
as the pipeline writes them; expected figures come from pandas over the same posts.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest
from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from dashboards.charts.text_sentiment import wordcloud_stopwords
from dashboards.queries import TEXT_SENTIMENT
from iotlake.config import Settings
from services.producers.post_stream import StreamConfig, generate_posts
from tests.support.browser import capture, render
from tests.support.dashboard import (
    figures,
    lake_environment,
    open_page,
    streamlit_server,
    trace_values,
)
from tests.support.seed import write_table

PAGE = "views/text_sentiment.py"
START_MS = 1_653_500_000_000


def _label(score: float) -> str:
    return "POS" if score >= 0.05 else "NEG" if score <= -0.05 else "NEU"


def _seed(settings: Settings, posts: int = 400) -> dict[str, pd.DataFrame]:
    """Gold tables of `posts` generated posts: sentiment by VADER, counts and ranks by pandas."""
    generated = pd.DataFrame(generate_posts(StreamConfig(seed=21), START_MS, posts))
    model = SentimentIntensityAnalyzer()
    english = generated[generated["lang"] == "en"].copy()
    english["geo"] = english["geo"].map(lambda geo: None if geo is None else json.dumps(geo))
    english["score"] = english["text"].map(lambda text: model.polarity_scores(text)["compound"])
    english["label"] = english["score"].map(_label)
    sentiment = english[["id", "geo", "lang", "text", "label", "score"]]
    counts = generated["lang"].value_counts()
    languages = pd.DataFrame({"lang": counts.index, "count": counts.to_numpy()})
    positive = sentiment[sentiment["label"] == "POS"].sort_values(
        ["score", "id"], ascending=[False, True]
    )
    negative = sentiment[sentiment["label"] == "NEG"].sort_values(["score", "id"])
    top = pd.concat(
        frame.head(15).assign(rank=np.arange(1, len(frame.head(15)) + 1, dtype="int32"))
        for frame in (positive, negative)
    )[["label", "rank", "id", "text", "score"]]
    silver = sentiment[["id", "geo", "lang", "text"]]
    tables = {"sentiment": sentiment, "languages": languages, "top_posts": top, "silver": silver}
    for table, frame in tables.items():
        write_table(settings, TEXT_SENTIMENT, table, frame)
    return tables


def _open() -> AppTest:
    return open_page(PAGE, timeout=90)


def _figures(app: AppTest) -> dict[str, dict]:
    """The first trace of each drawn plotly figure, by its title."""
    return {title: figure["data"][0] for title, figure in figures(app).items()}


def _values(trace: dict, key: str) -> list:
    return trace_values(trace, key).tolist()


def test_page_shows_label_pie_languages_word_cloud_and_ranked_posts_as_pandas_computes(lake):
    tables = _seed(lake)
    sentiment = tables["sentiment"]

    app = _open()

    figures = _figures(app)
    pie = figures["Posts per sentiment label"]
    want_labels = sentiment["label"].value_counts().sort_index()
    assert dict(zip(pie["labels"], _values(pie, "values"), strict=True)) == want_labels.to_dict()
    bars = figures["Posts per language (bronze, before the EN filter)"]
    want_languages = tables["languages"].sort_values(["count", "lang"], ascending=[False, True])
    assert list(bars["x"]) == want_languages["lang"].tolist()
    assert _values(bars, "y") == want_languages["count"].tolist()

    metrics = {metric.label: metric.value for metric in app.metric}
    assert metrics == {"Posts scored": f"{len(sentiment):,}", "Posts ingested": "400"}
    frames = [frame.value for frame in app.dataframe]
    assert len(frames) == 3
    ranked, geo = frames[:2], frames[2]
    top = tables["top_posts"]
    for shown, label in zip(ranked, ("POS", "NEG"), strict=True):
        want = top[top["label"] == label]
        assert shown["text"].tolist() == want["text"].tolist()
        assert shown["rank"].tolist() == list(range(1, len(want) + 1))
    with_geo = tables["silver"].dropna(subset=["geo"]).sort_values("id")
    assert geo["id"].tolist() == with_geo["id"].astype(str).head(25).tolist()
    notes = [markdown.value for markdown in app.markdown]
    assert f"Languages in `silver`: en: {len(tables['silver']):,}" in notes
    images = app.get("image")
    assert len(images) == 1 and len(images[0].value) == 1, "one word cloud"
    assert "https, RT, how" in images[0].captions[0]
    assert not app.info


def test_word_cloud_keeps_no_stopword_and_only_words_of_the_positive_posts(lake):
    from dashboards.charts.text_sentiment import word_cloud

    sentiment = _seed(lake)["sentiment"]
    positive = sentiment[sentiment["label"] == "POS"].nlargest(100, "score")["text"]

    cloud = word_cloud(positive, max_words=100)

    words = set(cloud.words_)
    stopwords = {word.lower() for word in wordcloud_stopwords()}
    assert 0 < len(words) <= 100
    assert not {word.lower() for word in words} & stopwords
    # Entries are words or two-word collocations, each word found in the posts.
    vocabulary = " ".join(positive).lower()
    assert all(part.lower() in vocabulary for word in words for part in word.split())
    assert not [word for word in words if "t.co" in word or word.startswith("https")]


def test_page_on_an_empty_lake_says_which_tables_have_no_data_yet(lake):
    app = _open()

    messages = [info.value for info in app.info]
    for table in ("sentiment", "languages", "top_posts"):
        assert any(f"No data yet in `{table}`" in message for message in messages)
    assert all("iotlake run text-sentiment" in message for message in messages)
    assert not app.get("plotly_chart")


@pytest.mark.slow
def test_page_renders_in_chromium_with_its_charts_and_word_cloud(
    tmp_path,
    browser,
    artifacts,
):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    settings, environment = lake_environment(tmp_path)
    _seed(settings)
    with streamlit_server(environment, tmp_path / "streamlit.log") as url:
        plots = render(browser, f"{url}/text-sentiment", 2, "Top 15 positive posts")

        def cloud_drawn(driver) -> bool:
            images = driver.find_elements(By.CSS_SELECTOR, '[data-testid="stImage"] img')
            return bool(images) and driver.execute_script(
                "return arguments[0].complete && arguments[0].naturalWidth", images[0]
            )

        width = WebDriverWait(browser, 60, poll_frequency=0.5).until(cloud_drawn)
        capture(browser, artifacts / "dashboard_text_sentiment.png")

    assert plots >= 2
    assert width >= 500
    assert (artifacts / "dashboard_text_sentiment.png").stat().st_size > 10_000
