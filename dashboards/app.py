"""The iotlake dashboard: `streamlit run dashboards/app.py`.

This entry script is the frame around every page: it loads the settings, offers the refresh
interval and routes to one page per system plus the pipelines and data-quality pages. A new
system adds its page to `PAGES`.
"""

from __future__ import annotations

import streamlit as st

from dashboards.views import common
from iotlake.config import ConfigError

# (section, script under dashboards/, title, url path). The first page is the default, which
# st.navigation serves at the root URL (its url path only names it in links).
PAGES: list[tuple[str, str, str, str]] = [
    ("Systems", "views/seismograph.py", "Seismograph", "seismograph"),
    ("Systems", "views/aws_iot.py", "AWS IoT", "aws-iot"),
    ("Systems", "views/arduino.py", "Arduino", "arduino"),
    ("Systems", "views/text_sentiment.py", "Text sentiment", "text-sentiment"),
    ("Systems", "views/manufacturing.py", "Manufacturing", "manufacturing"),
    ("Pipelines", "views/pipelines.py", "Pipelines", "pipelines"),
    ("Pipelines", "views/data_quality.py", "Data quality", "data-quality"),
]


def navigation() -> dict[str, list[st.Page]]:
    """The pages grouped by section, as `st.navigation` lists them in the sidebar."""
    sections: dict[str, list[st.Page]] = {}
    for index, (section, script, title, url_path) in enumerate(PAGES):
        page = st.Page(script, title=title, url_path=url_path, default=index == 0)
        sections.setdefault(section, []).append(page)
    return sections


def sidebar(lake_root: str) -> None:
    """The refresh interval every page uses, and where the tables are read from."""
    st.sidebar.number_input(
        "Refresh every (seconds, 0 = off)",
        min_value=0,
        max_value=3600,
        value=common.DEFAULT_REFRESH_SECONDS,
        key=common.REFRESH_KEY,
    )
    st.sidebar.caption(f"Lake: `{lake_root}`")


def main() -> None:
    """Check the settings, draw the frame, run the chosen page."""
    st.set_page_config(page_title="iotlake", layout="wide")
    try:
        settings = common.settings()
    except ConfigError as error:
        st.error(str(error))
        st.stop()
    current = st.navigation(navigation())
    sidebar(settings.lake_root)
    current.run()


main()
