"""The post stream: seeded, multilingual, tweet-shaped posts, 5 to a file, at the chosen rate."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from services.producers.post_stream import (
    DEFAULT_MIX,
    TOPICS,
    RunOptions,
    StreamConfig,
    batches,
    generate_posts,
    run,
)
from tests.support.cli import run_cli
from tests.support.settings import settings_for

START_MS = 1_653_500_000_000
# The fields the pipeline's tables read, and a few more of the tweet JSON shape.
USED = ("id", "geo", "lang", "text")
SHAPE = ("created_at", "id_str", "user", "entities", "timestamp_ms", "retweet_count", "source")


def _landing(settings) -> Path:
    from spark_jobs.io.storage import landing_uri

    return Path(landing_uri(settings, settings.text_sentiment.landing_path))


def test_the_same_seed_gives_the_same_posts_and_another_seed_other_posts():
    first = generate_posts(StreamConfig(seed=4), START_MS, 300)
    again = generate_posts(StreamConfig(seed=4), START_MS, 300)
    other = generate_posts(StreamConfig(seed=5), START_MS, 300)

    assert json.dumps(first) == json.dumps(again)
    assert [post["text"] for post in first] != [post["text"] for post in other]


def test_posts_have_the_tweet_fields_and_unique_ids_about_the_tracked_topics():
    posts = generate_posts(StreamConfig(seed=1), START_MS, 500)

    keys = set(posts[0])
    assert all(set(post) == keys for post in posts), "every post carries every key"
    assert len(keys) >= 30
    assert set(USED + SHAPE) <= keys
    assert {"id", "screen_name", "followers_count"} <= set(posts[0]["user"])
    assert {"hashtags", "urls", "user_mentions"} <= set(posts[0]["entities"])
    assert len({post["id"] for post in posts}) == len(posts)
    assert all(post["id_str"] == str(post["id"]) for post in posts)
    assert all(any(topic in post["text"] for topic in TOPICS) for post in posts)
    assert any(post["text"].startswith("RT @") for post in posts)
    assert 0 < sum(post["geo"] is not None for post in posts) < len(posts)


def test_languages_follow_the_configured_mix():
    posts = generate_posts(StreamConfig(seed=2), START_MS, 4000)

    shares = {lang: n / len(posts) for lang, n in Counter(p["lang"] for p in posts).items()}

    assert set(shares) == set(DEFAULT_MIX)
    for lang, weight in DEFAULT_MIX.items():
        assert shares[lang] == pytest.approx(weight, abs=0.03)
    only_english = generate_posts(StreamConfig(seed=2, languages={"en": 1}), START_MS, 50)
    assert {post["lang"] for post in only_english} == {"en"}


def test_posts_are_spaced_by_the_rate_and_files_hold_five_named_by_the_first_posts_time():
    posts = generate_posts(StreamConfig(seed=3), START_MS, 23, rate=4.0)

    files = list(batches(posts))

    times = [int(post["timestamp_ms"]) for post in posts]
    assert [b - a for a, b in zip(times, times[1:], strict=False)] == [250] * 22
    assert [len(f.posts) for f in files] == [5, 5, 5, 5, 3]
    assert [f.name for f in files] == [f"tweets_{times[i]}.json" for i in range(0, 23, 5)]
    lines = files[0].content().decode().splitlines()
    assert [json.loads(line) for line in lines] == posts[:5]


def test_a_run_stops_after_count_posts_and_writes_them_at_the_rate(tmp_path):
    settings = settings_for(tmp_path)
    options = RunOptions(stream=StreamConfig(seed=6), rate=40.0, count=42, start_ms=START_MS)

    began = time.monotonic()
    result = run(settings, options, report=lambda line: None)
    elapsed = time.monotonic() - began

    landing = _landing(settings)
    names = sorted(path.name for path in landing.iterdir())
    assert result.posts == 42 and result.files == 9
    assert len(names) == 9 and all(name.startswith("tweets_") for name in names)
    written = [json.loads(line) for name in names for line in (landing / name).open()]
    assert written == generate_posts(StreamConfig(seed=6), START_MS, 42, rate=40.0)
    # The last file is due when its last post is: 41 intervals of 25 ms after the first.
    assert elapsed >= 41 / 40.0 - 0.05
    assert elapsed < 41 / 40.0 + 10


def test_a_stopped_run_keeps_what_it_wrote_and_leaves_no_partial_file(tmp_path):
    settings = settings_for(tmp_path)
    stop = threading.Event()
    options = RunOptions(stream=StreamConfig(seed=7), rate=10.0, count=1000, start_ms=START_MS)
    threading.Timer(1.2, stop.set).start()

    result = run(settings, options, stop=stop, report=lambda line: None)

    names = [path.name for path in _landing(settings).iterdir()]
    assert 0 < result.files < 200
    assert len(names) == result.files
    assert not [name for name in names if name.startswith(".")]


def test_bad_options_stop_the_command_with_a_message_naming_them(tmp_path):
    settings = settings_for(tmp_path)

    unknown = run_cli(settings, "produce", "text-sentiment", "--languages", "en=0.5,fr=0.5")
    no_rate = run_cli(settings, "produce", "text-sentiment", "--rate", "0")

    assert unknown.exit_code == 2
    assert "no corpus for language(s) ['fr']" in unknown.stderr
    assert no_rate.exit_code == 2
    assert "--rate must be positive" in no_rate.stderr


def test_posts_land_as_objects_in_the_landing_bucket_of_an_s3_lake(stack):
    import boto3

    from spark_jobs.io.storage import landing_uri

    settings = stack.model_copy(
        update={"lake": stack.lake.model_copy(update={"root": f"s3://{stack.lake.bucket}/ts"})}
    )
    landing = f"{settings.text_sentiment.landing_path}-{time.time_ns()}"
    uri = landing_uri(settings, landing)
    options = RunOptions(
        stream=StreamConfig(seed=8), rate=200.0, count=12, start_ms=START_MS, landing=uri
    )

    result = run(settings, options, report=lambda line: None)

    s3 = boto3.client("s3", **settings.aws.boto3_kwargs())
    bucket = f"s3://{settings.lake.landing_bucket}/"
    assert uri.startswith(bucket)
    # The volume path is the object key: s3://<landing bucket>/Volumes/<catalog>/...
    assert uri.removeprefix(bucket) == landing.removeprefix("/")
    listed = s3.list_objects_v2(
        Bucket=settings.lake.landing_bucket, Prefix=f"{uri.removeprefix(bucket)}/"
    )
    keys = sorted(item["Key"] for item in listed.get("Contents", []))
    assert result.files == 3
    assert [key.rsplit("/", 1)[1] for key in keys] == [
        f.name for f in batches(generate_posts(StreamConfig(seed=8), START_MS, 12, rate=200.0))
    ]
    body = s3.get_object(Bucket=settings.lake.landing_bucket, Key=keys[0])["Body"].read()
    assert len(body.decode().splitlines()) == 5


def test_iotlake_produce_text_sentiment_writes_the_landing_files(tmp_path):
    environment = {
        **os.environ,
        "IOTLAKE_LAKE__ROOT": str(tmp_path / "lake"),
        "IOTLAKE_STATE_DIR": str(tmp_path),
    }
    command = [sys.executable, "-m", "iotlake", "produce", "text-sentiment"]
    args = ["--count", "11", "--rate", "100", "--seed", "9", "--start-ms", str(START_MS)]

    done = subprocess.run(
        [*command, *args], env=environment, capture_output=True, text=True, timeout=120
    )

    assert done.returncode == 0, done.stderr
    assert "stopped: 11 posts in 3 files" in done.stdout
    landing = _landing(settings_for(tmp_path))
    assert sorted(path.name for path in landing.iterdir()) == [
        f.name for f in batches(generate_posts(StreamConfig(seed=9), START_MS, 11, rate=100.0))
    ]
