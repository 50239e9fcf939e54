"""Seeded post files -> Auto Loader bronze -> silver -> gold, every table checked against pandas.

The posts land in a private local lake; the pipeline runs twice with the shared Spark session.
Expected values come from the generated posts alone: languages by `value_counts`, sentiment by
calling VADER directly, top posts by sorting.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from expectations.suites import validate
from services.producers.post_stream import LandingWriter, StreamConfig, batches, generate_posts
from spark_jobs.runner import load_system, location, run_once
from tests.support.lake import read_table
from tests.support.settings import settings_for

SYSTEM = "text-sentiment"
START_MS = 1_653_500_000_000  # May 2022, the DAIS 2022 run of the original
FIRST_POSTS = 120
LATER_POSTS = 40
BROKEN_NAME = "tweets_1653600000000.json"  # one line cut off: not JSON


def _land(settings, posts: list[dict]) -> dict[str, int]:
    """Write the posts 5 per file into the landing path; return posts per file name."""
    writer = LandingWriter(settings)
    files = list(batches(posts))
    for post_file in files:
        writer.write(post_file)
    return {post_file.name: len(post_file.posts) for post_file in files}


def _rows_per_file(bronze: pd.DataFrame) -> dict[str, int]:
    """How many bronze rows came from each landing file (a file read twice counts double)."""
    return dict(Counter(Path(path).name for path in bronze["_file_path"]))


def _without_id(post: dict) -> dict:
    """An English post whose id is missing: `valid_id` must drop it."""
    return {**post, "id": None, "id_str": None, "lang": "en", "text": "Lakehouse is great"}


def _expected_sentiment(posts: list[dict], settings) -> pd.DataFrame:
    """Score and label of every English post with an id, from VADER called here."""
    model = SentimentIntensityAnalyzer()
    config = settings.text_sentiment
    rows = []
    for post in posts:
        if post["lang"] != "en" or post["id"] is None:
            continue
        score = model.polarity_scores(post["text"])["compound"]
        if score >= config.positive_threshold:
            label = "POS"
        elif score <= config.negative_threshold:
            label = "NEG"
        else:
            label = "NEU"
        rows.append({"id": post["id"], "text": post["text"], "label": label, "score": score})
    return pd.DataFrame(rows).sort_values("id").reset_index(drop=True)


def _expected_top(sentiment: pd.DataFrame, top: int) -> pd.DataFrame:
    """Top POS by score (highest first) and top NEG by score (lowest first), ties by id."""
    positive = sentiment[sentiment["label"] == "POS"].sort_values(
        ["score", "id"], ascending=[False, True]
    )
    negative = sentiment[sentiment["label"] == "NEG"].sort_values(["score", "id"])
    parts = []
    for frame in (positive.head(top), negative.head(top)):
        parts.append(frame.assign(rank=range(1, len(frame) + 1)))
    return pd.concat(parts)[["label", "rank", "id", "score"]].reset_index(drop=True)


def _check_gold(settings, posts: list[dict], unreadable: int = 0) -> None:
    """languages, sentiment and top_posts equal what pandas and VADER compute from `posts`;
    `unreadable` lines count under the undetermined language `und`."""
    languages = read_table(settings, SYSTEM, "languages").set_index("lang")["count"]
    langs = [post["lang"] for post in posts] + ["und"] * unreadable
    want_languages = pd.Series(langs).value_counts()
    assert languages.sort_index().to_dict() == want_languages.sort_index().to_dict()

    sentiment = read_table(settings, SYSTEM, "sentiment").sort_values("id").reset_index(drop=True)
    want = _expected_sentiment(posts, settings)
    assert list(sentiment.columns) == ["id", "geo", "lang", "text", "label", "score"]
    assert sentiment["id"].tolist() == want["id"].tolist()
    assert sentiment["text"].tolist() == want["text"].tolist()
    assert sentiment["label"].tolist() == want["label"].tolist()
    assert sentiment["score"].tolist() == pytest.approx(want["score"].tolist(), abs=1e-9)

    top = read_table(settings, SYSTEM, "top_posts")
    top = top.sort_values(["label", "rank"], ascending=[False, True]).reset_index(drop=True)
    want_top = _expected_top(want, settings.text_sentiment.top_posts)
    assert top[["label", "rank", "id"]].values.tolist() == (
        want_top[["label", "rank", "id"]].values.tolist()
    )
    assert top["score"].tolist() == pytest.approx(want_top["score"].tolist(), abs=1e-9)


@pytest.mark.slow
def test_seeded_posts_build_every_table_and_a_rerun_reads_only_new_files(spark, tmp_path):
    settings = settings_for(tmp_path)
    config = StreamConfig(seed=11)
    generated = generate_posts(config, START_MS, FIRST_POSTS + LATER_POSTS)
    first = [*generated[:FIRST_POSTS], _without_id(generated[0])]
    later = generated[FIRST_POSTS:]
    # The pipeline starts before any file lands, as in the demo.
    run_once(spark, settings, SYSTEM, report=print)
    assert read_table(settings, SYSTEM, "bronze").empty
    assert read_table(settings, SYSTEM, "top_posts").empty
    files = _land(settings, first)

    began = time.monotonic()
    run_once(spark, settings, SYSTEM, report=print)
    print(
        f"first run: {time.monotonic() - began:.1f}s for {len(first)} posts in {len(files)} files"
    )

    bronze = read_table(settings, SYSTEM, "bronze")
    assert len(bronze) == len(first)
    assert bronze["_rescued_data"].isna().all(), "every field fits the evolved schema"
    for column in ("id", "id_str", "created_at", "text", "lang", "geo", "user", "entities"):
        assert column in bronze.columns
    assert _rows_per_file(bronze) == files

    silver = read_table(settings, SYSTEM, "silver")
    assert list(silver.columns) == ["id", "geo", "lang", "text"]
    assert set(silver["lang"]) == {"en"}
    english = [post for post in first if post["lang"] == "en" and post["id"] is not None]
    assert sorted(silver["id"]) == sorted(post["id"] for post in english)
    with_geo = sum(post["geo"] is not None for post in english)
    assert silver["geo"].notna().sum() == with_geo

    log = read_table(settings, SYSTEM, "event_log")
    rules = log[(log["table"] == "silver") & log["expectation"].notna()]
    failed = rules.groupby("expectation")["failed"].sum()
    assert failed["valid_language"] == sum(post["lang"] != "en" for post in first)
    assert failed["valid_id"] == 1
    _check_gold(settings, first)

    files_later = _land(settings, later)
    Path(LandingWriter(settings).root, BROKEN_NAME).write_text('{"id": 17, "text": "cut off\n')
    files_later[BROKEN_NAME] = 1
    began = time.monotonic()
    run_once(spark, settings, SYSTEM, report=print)
    print(f"second run: {time.monotonic() - began:.1f}s for {len(later)} new posts")

    bronze = read_table(settings, SYSTEM, "bronze")
    assert len(bronze) == len(first) + len(later) + 1
    assert _rows_per_file(bronze) == files | files_later, "each file read once"
    rescued = bronze[bronze["_rescued_data"].notna()]
    assert len(rescued) == 1 and "_corrupt_record" in rescued["_rescued_data"].iloc[0]
    log = read_table(settings, SYSTEM, "event_log")
    flows = log[(log["table"] == "bronze") & log["expectation"].isna()]
    assert flows["rows_in"].sum() == len(first) + len(later) + 1
    assert flows.sort_values("timestamp")["rows_in"].iloc[-1] == len(later) + 1
    rules = log[(log["table"] == "silver") & (log["expectation"] == "valid_language")]
    assert rules["failed"].sum() == sum(post["lang"] != "en" for post in first + later) + 1
    _check_gold(settings, first + later, unreadable=1)
    refreshes = log[(log["table"] == "top_posts") & log["expectation"].isna()]
    counted = refreshes.sort_values("batch_id")["rows_in"].tolist()
    assert len(counted) == 3 and counted[0] == 0
    assert counted[-1] == len(read_table(settings, SYSTEM, "top_posts"))
    for spec in load_system(SYSTEM, settings):
        if spec.layer != "bronze":
            frame = spark.read.format("delta").load(location(settings, spec))
            unmet = {o.expectation: o.unexpected for o in validate(frame, spec) if not o.success}
            assert unmet == {}, f"{spec.name}: the whole table breaks {unmet}"
    sizes = {
        table: len(read_table(settings, SYSTEM, table))
        for table in ("bronze", "silver", "languages", "sentiment", "top_posts")
    }
    print(f"rows per table: {sizes}")
