"""Text sentiment: the DLT Twitter demo's outputs (Twitter-SentimentAnalysis.py).

The most positive and most negative posts, a word cloud of the top positive ones, the pie
chart of labels and the languages seen before the English-only filter.
"""

from __future__ import annotations

import streamlit as st

from dashboards import queries
from dashboards.charts import text_sentiment as charts
from dashboards.views import common

SYSTEM = queries.TEXT_SENTIMENT


def labels_and_languages() -> None:
    """The pie chart of labels beside the languages chart."""
    left, right = st.columns(2)
    with left:
        counts = common.read(SYSTEM, "sentiment", queries.label_counts)
        if counts is not None:
            st.metric("Posts scored", f"{int(counts['posts'].sum()):,}")
            common.chart(charts.label_pie(counts), key="text-sentiment-labels")
    with right:
        languages = common.read(SYSTEM, "languages", queries.languages)
        if languages is not None:
            st.metric("Posts ingested", f"{int(languages['count'].sum()):,}")
            common.chart(charts.languages_bar(languages), key="text-sentiment-languages")


def cloud() -> None:
    """The word cloud of the top positive posts (the original's 100 posts, 100 words)."""
    config = common.settings().text_sentiment
    texts = common.read(SYSTEM, "sentiment", queries.positive_texts, config.wordcloud_posts)
    if texts is None:
        return
    st.subheader(f"Word cloud of the top {len(texts)} positive posts")
    try:
        image = charts.word_cloud(texts["text"], max_words=config.wordcloud_words).to_array()
    except ValueError:  # every word was a stopword
        st.info("The top positive posts have no words left after removing stopwords")
        return
    st.image(image, caption="stopwords: WordCloud STOPWORDS + https, RT, how")


def ranked(label: str, title: str) -> None:
    """One ranked list of posts: rank, text and score."""
    rows = common.read(SYSTEM, "top_posts", queries.top_posts, label)
    if rows is None:
        return
    st.subheader(title)
    st.dataframe(
        rows[["rank", "text", "score"]],
        hide_index=True,
        column_config={"score": st.column_config.NumberColumn(format="%.4f")},
    )


def checks() -> None:
    """The sentiment notebook's SQL checks on silver: its languages and posts with `geo`."""
    settings = common.settings()
    with st.expander("Checks on silver (the notebook's SQL)"):
        languages = common.read(SYSTEM, "silver", queries.silver_languages)
        if languages is not None:
            shown = ", ".join(f"{row.lang}: {row.count:,}" for row in languages.itertuples())
            st.markdown(f"Languages in `silver`: {shown}")
        geo = queries.silver_geo(settings)
        st.markdown(f"Posts with a `geo` value (first {len(geo)} of up to 25):")
        st.dataframe(geo, hide_index=True)


def page() -> None:
    """The page: labels and languages on top, the word cloud, then the ranked posts."""
    st.title("Text sentiment")
    config = common.settings().text_sentiment
    st.caption(
        "Posts (en, de, es) → `tweets_<epoch>.json` files → Auto Loader `bronze` → `silver` "
        "(English only) → `sentiment` → `top_posts`. Score: VADER's compound score in [-1, 1]; "
        f"POS at ≥ {config.positive_threshold:g}, NEG at ≤ {config.negative_threshold:g}, "
        "else NEU."
    )

    def body() -> None:
        labels_and_languages()
        cloud()
        top = common.settings().text_sentiment.top_posts
        left, right = st.columns(2)
        with left:
            ranked("POS", f"Top {top} positive posts")
        with right:
            ranked("NEG", f"Top {top} negative posts")
        checks()

    common.live(body)


page()
