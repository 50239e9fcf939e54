"""The sentiment model's labels follow the configured thresholds of the compound score."""

from __future__ import annotations

import pandas as pd
import pytest
from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from spark_jobs.text_sentiment.sentiment_model import check_thresholds, compound


def test_compound_is_vaders_score_and_a_missing_text_is_neutral():
    texts = pd.Series(["DLT is great, I love it!", "Awful outage, terrible night", None])
    model = SentimentIntensityAnalyzer()

    scores = compound(texts)

    assert scores.tolist() == [
        model.polarity_scores(texts[0])["compound"],
        model.polarity_scores(texts[1])["compound"],
        0.0,
    ]
    assert scores[0] > 0 > scores[1]


def test_thresholds_that_overlap_are_refused_naming_the_keys_to_fix():
    with pytest.raises(ValueError, match="negative_threshold must be below .*positive_threshold"):
        check_thresholds(positive=-0.1, negative=0.1)
