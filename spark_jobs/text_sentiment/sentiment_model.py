"""The sentiment model: VADER (vaderSentiment on PyPI), a lexicon and rules that run offline.
A helper module of the pipeline's `sentiment` table (the pipeline's folder is on `sys.path`).

The original's Hugging Face model cannot be downloaded here. VADER's lexicon ships inside its
wheel, it needs no GPU and scores a short post in well under a millisecond, so every post can
be scored as it streams through, not only the first 127 as one original version did.

- `score` is VADER's compound score: the sum of the post's word valences, adjusted for
  negation, intensifiers, capitals and punctuation, normalised to [-1, 1].
- `label` is POS when score >= the positive threshold (0.05), NEG when score <= the negative
  one (-0.05), NEU otherwise: the thresholds VADER's authors recommend, and the original
  model's three labels (pipeline configuration `sentiment.positive_threshold` and
  `sentiment.negative_threshold`).
"""

from __future__ import annotations

import pandas as pd
from pyspark.sql import Column
from pyspark.sql import functions as F
from pyspark.sql.types import DoubleType
from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

LABELS = ("POS", "NEG", "NEU")


_analyzers: list[SentimentIntensityAnalyzer] = []


def analyzer() -> SentimentIntensityAnalyzer:
    """One analyzer per Python worker: loading the lexicon costs ~20 ms, scoring much less.
    (A plain list, not functools.lru_cache: this module travels to the workers by value.)"""
    if not _analyzers:
        _analyzers.append(SentimentIntensityAnalyzer())
    return _analyzers[0]


def compound(texts: pd.Series) -> pd.Series:
    """VADER's compound score of each text; a missing text scores 0 (neutral)."""
    model = analyzer()
    return texts.map(
        lambda text: model.polarity_scores(text)["compound"] if isinstance(text, str) else 0.0
    ).astype("float64")


@F.pandas_udf(DoubleType())
def score_udf(texts: pd.Series) -> pd.Series:
    """`compound` as a vectorised Spark UDF."""
    return compound(texts)


def check_thresholds(positive: float, negative: float) -> None:
    """Refuse thresholds that would make a score both POS and NEG."""
    if negative >= positive:
        raise ValueError(
            "text_sentiment.negative_threshold must be below text_sentiment.positive_threshold "
            f"(got {negative} and {positive}); fix them in iotlake.yml or "
            "IOTLAKE_TEXT_SENTIMENT__*"
        )


def label(score: Column, positive: float, negative: float) -> Column:
    """POS / NEG / NEU from the compound score and the thresholds."""
    check_thresholds(positive, negative)
    return F.when(score >= positive, "POS").when(score <= negative, "NEG").otherwise("NEU")
