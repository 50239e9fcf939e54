"""The text-sentiment system's post stream: a seeded multilingual corpus, replayed as files.

The original read live tweets (Tweepy `Stream.filter(languages=["en", "de", "es"],
track=[...])`) and wrote each batch of 5 as JSON lines to `tweets_<epoch>.json`, stopping
after 50 000. That API is gone, so iotlake generates posts of the same shape instead: the
tweet JSON fields (`created_at`, `id`, `id_str`, `text`, `lang`, `geo`, `user {...}`,
`entities {...}`, counts and flags, 38 top-level keys, every key in every post so the
inferred schema never has to evolve), about the topics the original tracked, in English,
German and Spanish, with positive, negative and neutral wording. The same seed and start time
give the same posts, byte for byte, without any network.

Files land in `storage.landing_uri(settings, "text-sentiment/posts")` (a local directory or
`s3://`), named `tweets_<epoch ms of the batch's first post>.json`. A local file is written
under a dot-name first and renamed, so Auto Loader (which skips dot-names) never reads half
a file.

`generate_posts` is the pure generator; `batches` groups posts into files; `run` paces the
files in real time and writes them; `main` is what `iotlake produce text-sentiment` runs.
The words posts are made of live in `services.producers.post_corpus`.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from iotlake.config import Settings
from services.producers.post_corpus import (
    CLOSERS,
    FIRST_NAMES,
    LAST_NAMES,
    MOODS,
    OPENERS,
    PLACES,
    SOURCES,
    TEMPLATES,
    TOPICS,
)
from services.runtime import say

if TYPE_CHECKING:
    from services.producers.transport import Report

LANDING = "text-sentiment/posts"
POSTS_PER_FILE = 5
MAX_POSTS = 50_000
# The languages the original asked for.
LANGUAGES = ("en", "de", "es")
DEFAULT_MIX = {"en": 0.6, "de": 0.2, "es": 0.2}
# Twitter's snowflake ids of mid 2022, so ids look like the original's (and need a BIGINT).
FIRST_ID = 1_530_000_000_000_000_000


@dataclass(frozen=True)
class StreamConfig:
    """What the stream produces: language mix, retweet and geo shares, users, seed."""

    seed: int | None = None
    languages: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_MIX))
    retweet_share: float = 0.2
    geo_share: float = 0.05
    users: int = 200

    def __post_init__(self) -> None:
        unknown = sorted(set(self.languages) - set(TEMPLATES))
        if unknown:
            raise ValueError(f"no corpus for language(s) {unknown}; known: {sorted(TEMPLATES)}")
        if not self.languages or any(weight < 0 for weight in self.languages.values()):
            raise ValueError("language weights must be non-negative, at least one given")
        if sum(self.languages.values()) <= 0:
            raise ValueError("language weights must not all be zero")
        for name in ("retweet_share", "geo_share"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in [0, 1]")
        if self.users < 1:
            raise ValueError("users must be at least 1")


def created_at(epoch_ms: int) -> str:
    """Twitter's `created_at` format, e.g. `Wed May 25 18:56:56 +0000 2022`."""
    return datetime.fromtimestamp(epoch_ms / 1000, UTC).strftime("%a %b %d %H:%M:%S +0000 %Y")


def _user(rng: random.Random, index: int, start_ms: int) -> dict:
    """One account, as the tweet's `user` object carries it; the index keeps ids unique."""
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    screen_name = f"{first.lower()}_{last.lower()}{index}"
    user_id = 10_000_000 + index * 7919
    place = rng.choice(PLACES)
    joined_ms = start_ms - rng.randint(30, 4000) * 86_400_000
    return {
        "id": user_id,
        "id_str": str(user_id),
        "name": f"{first} {last}",
        "screen_name": screen_name,
        "location": place[0] if rng.random() < 0.7 else None,
        "url": None,
        "description": f"{rng.choice(TOPICS)} | {rng.choice(TOPICS)} | opinions are my own",
        "protected": False,
        "verified": rng.random() < 0.05,
        "followers_count": rng.randint(0, 50_000),
        "friends_count": rng.randint(0, 3_000),
        "listed_count": rng.randint(0, 300),
        "favourites_count": rng.randint(0, 20_000),
        "statuses_count": rng.randint(1, 40_000),
        "created_at": created_at(joined_ms),
        "default_profile": rng.random() < 0.3,
        "profile_image_url_https": f"https://pbs.twimg.com/profile_images/{user_id}/p_normal.jpg",
    }


def _entities(text: str, hashtag: str | None, url: str | None, mention: dict | None) -> dict:
    """Hashtags, urls and mentions with their character indices in `text`, as Twitter gives."""

    def span(fragment: str) -> list[int]:
        start = text.find(fragment)
        return [start, start + len(fragment)]

    return {
        "hashtags": [{"text": hashtag, "indices": span(f"#{hashtag}")}] if hashtag else [],
        "urls": (
            [
                {
                    "url": url,
                    "expanded_url": f"https://www.databricks.com/blog/{url[-6:]}",
                    "display_url": f"databricks.com/blog/{url[-6:]}",
                    "indices": span(url),
                }
            ]
            if url
            else []
        ),
        "user_mentions": (
            [
                {
                    "screen_name": mention["screen_name"],
                    "name": mention["name"],
                    "id": mention["id"],
                    "id_str": mention["id_str"],
                    "indices": span(f"@{mention['screen_name']}"),
                }
            ]
            if mention
            else []
        ),
        "symbols": [],
    }


def _geo(rng: random.Random) -> tuple[dict, dict, dict]:
    """geo (lat, lon), coordinates (lon, lat) and place, as tweets with a location carry."""
    index = rng.randrange(len(PLACES))
    name, code, country, lat, lon = PLACES[index]
    lat, lon = round(lat + rng.uniform(-0.05, 0.05), 6), round(lon + rng.uniform(-0.05, 0.05), 6)
    place = {
        "id": f"{0x5A0C1D00 + index * 0x1F3:016x}",
        "place_type": "city",
        "name": name.split(",")[0],
        "full_name": name,
        "country_code": code,
        "country": country,
    }
    return (
        {"type": "Point", "coordinates": [lat, lon]},
        {"type": "Point", "coordinates": [lon, lat]},
        place,
    )


class PostStream:
    """An endless, seeded sequence of posts, one every `1000 / rate` ms from `start_ms`."""

    def __init__(self, config: StreamConfig, start_ms: int, rate: float) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive (posts per second)")
        self.config = config
        self.start_ms = start_ms
        self.rate = rate
        self._rng = random.Random(config.seed)
        self.users = [_user(self._rng, index, start_ms) for index in range(config.users)]
        self._languages = list(config.languages)
        self._weights = [config.languages[name] for name in self._languages]
        self.produced = 0

    def __iter__(self) -> Iterator[dict]:
        return self

    def __next__(self) -> dict:
        post = self._post(self.produced)
        self.produced += 1
        return post

    def _text(self, lang: str) -> str:
        """A sentence of a random mood about two tracked topics, maybe with an opener and a
        closer of the same mood, so scores spread instead of repeating a few values."""
        rng = self._rng
        topic, other = rng.sample(TOPICS, 2)
        mood = rng.choice(MOODS)
        parts = [rng.choice(TEMPLATES[lang][mood]).format(topic=topic, other=other)]
        if rng.random() < 0.3:
            parts.insert(0, rng.choice(OPENERS[lang]))
        if rng.random() < 0.5:
            parts.append(rng.choice(CLOSERS[lang][mood]))
        return " ".join(parts)

    def _post(self, index: int) -> dict:
        """Post number `index`: due `index / rate` s after the start, every key present."""
        rng = self._rng
        epoch_ms = self.start_ms + int(index * 1000 / self.rate)
        lang = rng.choices(self._languages, self._weights)[0]
        user = rng.choice(self.users)
        body = self._text(lang)
        hashtag = rng.choice(("DLT", "Databricks", "lakehouse", "DataEngineering", None))
        if hashtag:
            body += f" #{hashtag}"
        url = f"https://t.co/{rng.getrandbits(40):010x}" if rng.random() < 0.5 else None
        if url:
            body += f" {url}"
        mention = None
        retweet = rng.random() < self.config.retweet_share
        if retweet:
            mention = rng.choice(self.users)
            text = f"RT @{mention['screen_name']}: {body}"
        else:
            text = body
        post_id = FIRST_ID + index * 4096 + rng.randrange(4096)
        geo, coordinates, place = (
            _geo(rng) if rng.random() < self.config.geo_share else (None, None, None)
        )
        count = rng.randint(0, 40) if not retweet else 0
        return {
            "created_at": created_at(epoch_ms),
            "id": post_id,
            "id_str": str(post_id),
            "text": text,
            "display_text_range": [0, len(text)],
            "source": rng.choice(SOURCES),
            "truncated": False,
            "in_reply_to_status_id": None,
            "in_reply_to_status_id_str": None,
            "in_reply_to_user_id": None,
            "in_reply_to_user_id_str": None,
            "in_reply_to_screen_name": None,
            "user": user,
            "geo": geo,
            "coordinates": coordinates,
            "place": place,
            "contributors": None,
            "retweeted_status": (
                {"id": post_id - 4096 * 50, "user": {"screen_name": mention["screen_name"]}}
                if retweet and mention
                else None
            ),
            "is_quote_status": False,
            "quoted_status_id": None,
            "quoted_status_id_str": None,
            "quote_count": 0,
            "reply_count": rng.randint(0, 5),
            "retweet_count": count,
            "favorite_count": rng.randint(0, 3 * count + 1),
            "entities": _entities(text, hashtag, url, mention),
            "favorited": False,
            "retweeted": False,
            "possibly_sensitive": False if url else None,
            "filter_level": "low",
            "lang": lang,
            "timestamp_ms": str(epoch_ms),
            "matching_rules": None,
            "extended_tweet": None,
            "extended_entities": None,
            "quoted_status": None,
            "scopes": None,
            "withheld_in_countries": [],
        }


def generate_posts(
    config: StreamConfig, start_ms: int, count: int, rate: float = 5.0
) -> list[dict]:
    """The first `count` posts of the stream, without writing anything."""
    stream = PostStream(config, start_ms, rate)
    return [next(stream) for _ in range(count)]


@dataclass(frozen=True)
class PostFile:
    """One landing file: its name (`tweets_<epoch ms>.json`) and its posts."""

    name: str
    posts: tuple[dict, ...]

    def content(self) -> bytes:
        """JSON lines, one post per line, as the original wrote `tweet._json`."""
        return "".join(json.dumps(post, ensure_ascii=False) + "\n" for post in self.posts).encode()


def batches(posts: Iterable[dict], per_file: int = POSTS_PER_FILE) -> Iterator[PostFile]:
    """Posts grouped `per_file` at a time into files named `tweets_<epoch ms>.json`.

    Names come from the first post's time; a name already used (more than `per_file` posts
    per millisecond) moves on by a millisecond, so no file overwrites another.
    """
    if per_file < 1:
        raise ValueError("per_file must be at least 1")
    last = -1
    group: list[dict] = []

    def close() -> PostFile:
        nonlocal last
        at_ms = max(int(group[0]["timestamp_ms"]), last + 1)
        last = at_ms
        return PostFile(f"tweets_{at_ms}.json", tuple(group))

    for post in posts:
        group.append(post)
        if len(group) == per_file:
            yield close()
            group = []
    if group:
        yield close()


class LandingWriter:
    """Writes landing files to a local directory or `s3://`, each appearing whole."""

    def __init__(self, settings: Settings, uri: str | None = None) -> None:
        from spark_jobs.io.storage import arrow_filesystem, is_local, landing_uri, storage_options

        self.uri = uri or landing_uri(settings, settings.text_sentiment.landing_path)
        self.local = is_local(self.uri)
        self.fs, self.root = arrow_filesystem(self.uri, storage_options(settings, self.uri))
        if self.local:  # object stores have no directories to create
            self.fs.create_dir(self.root, recursive=True)

    def write(self, post_file: PostFile) -> str:
        """Write one file and return its path; local files go through a dot-name rename."""
        final = f"{self.root}/{post_file.name}"
        staged = f"{self.root}/.{post_file.name}.tmp" if self.local else final
        with self.fs.open_output_stream(staged) as out:
            out.write(post_file.content())
        if staged != final:
            self.fs.move(staged, final)
        return final


@dataclass(frozen=True)
class RunOptions:
    """Everything `iotlake produce text-sentiment` takes."""

    stream: StreamConfig = StreamConfig()
    rate: float = 5.0
    count: int = MAX_POSTS
    per_file: int = POSTS_PER_FILE
    start_ms: int | None = None
    landing: str | None = None
    progress_every: float = 10.0

    def __post_init__(self) -> None:
        if self.rate <= 0:
            raise ValueError("--rate must be positive")
        if self.count < 0:
            raise ValueError("--count must not be negative")
        if self.per_file < 1:
            raise ValueError("--per-file must be at least 1")


@dataclass
class RunResult:
    """What a run wrote."""

    posts: int = 0
    files: int = 0
    by_language: dict[str, int] = field(default_factory=dict)


def run(
    settings: Settings,
    options: RunOptions,
    *,
    stop: threading.Event | None = None,
    report: Report = say,
) -> RunResult:
    """Write `options.count` posts, `per_file` to a file, at `rate` posts/s in real time.

    A file is written when its last post is due (the original wrote a batch once it had
    collected 5 tweets). Returns early when `stop` is set; what was written stays written.
    """
    stop = stop or threading.Event()
    writer = LandingWriter(settings, options.landing)
    start_ms = options.start_ms if options.start_ms is not None else int(time.time() * 1000)
    stream = PostStream(options.stream, start_ms, options.rate)
    posts = (next(stream) for _ in range(options.count))
    report(
        f"posts -> {writer.uri}: {options.count} posts, {options.per_file} per file, "
        f"{options.rate:g} posts/s"
    )
    began = time.monotonic()
    next_progress = began + options.progress_every
    result = RunResult()
    for post_file in batches(posts, options.per_file):
        due = began + (int(post_file.posts[-1]["timestamp_ms"]) - start_ms) / 1000
        wait = due - time.monotonic()
        if (wait > 0 and stop.wait(wait)) or stop.is_set():
            break
        writer.write(post_file)
        result.files += 1
        result.posts += len(post_file.posts)
        for post in post_file.posts:
            result.by_language[post["lang"]] = result.by_language.get(post["lang"], 0) + 1
        if time.monotonic() >= next_progress:
            report(_progress(result))
            next_progress += options.progress_every
    report(f"stopped: {_progress(result)}")
    return result


def _progress(result: RunResult) -> str:
    languages = ", ".join(f"{lang} {n}" for lang, n in sorted(result.by_language.items()))
    return f"{result.posts} posts in {result.files} files ({languages or 'none'})"


def language_mix(text: str) -> dict[str, float]:
    """`en=0.6,de=0.2,es=0.2` as a dict; a bad item raises ValueError naming it."""
    mix: dict[str, float] = {}
    for item in text.split(","):
        name, _, weight = item.partition("=")
        try:
            mix[name.strip()] = float(weight)
        except ValueError:
            raise ValueError(f"--languages item {item!r}: write lang=weight, e.g. en=0.6") from None
    return mix


def main(settings: Settings, options: RunOptions, stop: threading.Event) -> int:
    """Write the posts until all are written or `stop`; what was written stays written."""
    run(settings, options, stop=stop)
    return 0


if __name__ == "__main__":
    from services.runtime import command_line

    command_line("produce", "text-sentiment")
