"""Dashboard pages, one script per page; `common` holds what they share.

The folder is not called `pages`: Streamlit treats a `pages/` folder beside the entry script
as an old-style multipage app and, on a server's first session, routes a deep link such as
`/aws-iot` through that folder instead of through `st.navigation` in `app.py`.
"""
