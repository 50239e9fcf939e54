"""Tests of the Streamlit dashboard: charts, pages (AppTest) and a real browser."""
