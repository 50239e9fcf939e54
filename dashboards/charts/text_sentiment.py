"""The text sentiment page: posts per label and language, and the word cloud of the posts."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from dashboards.charts.common import layout

# The original notebook's colours are matplotlib's defaults; these keep POS green, NEG red.
LABEL_COLORS = {"POS": "#00A972", "NEU": "#9AA0A6", "NEG": "#FF3621"}
# The original's extra stopwords beside WordCloud's own list.
EXTRA_STOPWORDS = ("https", "RT", "how")


def label_pie(counts: pd.DataFrame) -> go.Figure:
    """The original's pie chart: posts per sentiment label."""
    labels = counts["label"].astype(str)
    figure = go.Figure(
        go.Pie(
            labels=labels,
            values=counts["posts"].astype(int),
            marker={"colors": [LABEL_COLORS.get(label, "#636EFA") for label in labels]},
            sort=False,
        )
    )
    return layout(figure, "Posts per sentiment label")


def languages_bar(languages: pd.DataFrame) -> go.Figure:
    """Posts per language as ingested, before silver keeps only English."""
    figure = go.Figure(go.Bar(x=languages["lang"].astype(str), y=languages["count"].astype(int)))
    figure.update_xaxes(title="lang")
    figure.update_yaxes(title="count")
    return layout(figure, "Posts per language (bronze, before the EN filter)")


def wordcloud_stopwords() -> set[str]:
    """WordCloud's STOPWORDS plus the original's "https", "RT" and "how"."""
    from wordcloud import STOPWORDS

    return set(STOPWORDS) | set(EXTRA_STOPWORDS)


def word_cloud(texts: pd.Series, max_words: int = 100, seed: int = 1):
    """A word cloud of `texts` (a `wordcloud.WordCloud`, drawn with `.to_array()`).

    URL fragments ("t.co" codes) are dropped with the stopwords' "https"; the seed fixes the
    layout, so the same texts draw the same picture.
    """
    from wordcloud import WordCloud

    text = " ".join(texts.dropna().astype(str))
    text = " ".join(word for word in text.split() if not word.startswith("https://"))
    cloud = WordCloud(
        width=1000,
        height=420,
        background_color="white",
        max_words=max_words,
        stopwords=wordcloud_stopwords(),
        random_state=seed,
    )
    return cloud.generate(text)
