"""Plotly figures for the dashboard: pure functions from query results to figures.

Each builder reproduces one chart of the originals (the motion demo's notebooks and DBSQL
dashboard, the AWS PoC's two SQL visualisations) from the frame a query in `queries` returns,
so a test can check a figure's data against values computed independently. There is one
module per page, named as the page's view in `dashboards.views`.
"""
