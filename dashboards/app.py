"""Meterline dashboards: `meterline dashboard` runs this (Streamlit multipage app).

Pages live in `views/`; each talks only to the read API and the gateway admin API.
Alerts link to `/security?subject=...`, hence the fixed url paths.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

VIEWS = Path(__file__).parent / "views"

st.set_page_config(page_title="Meterline", page_icon=":material/monitoring:", layout="wide")

showback = st.Page(VIEWS / "showback.py", title="Showback", icon=":material/payments:")


def home() -> None:
    # The root URL opens Showback at its own address, so `/showback` (a bookmark, a link
    # in the README) is a page like every other rather than "Page not found".
    st.switch_page(showback, query_params=st.query_params.to_dict())


pages = {
    "": [st.Page(home, title="Home", url_path="home", default=True, visibility="hidden")],
    "Finance": [
        showback,
        st.Page(VIEWS / "budgets.py", title="Budgets", icon=":material/savings:"),
    ],
    "Security & operations": [
        st.Page(VIEWS / "security.py", title="Security", icon=":material/shield:"),
        st.Page(VIEWS / "operations.py", title="Operations", icon=":material/speed:"),
    ],
    "Administration": [
        st.Page(VIEWS / "admin.py", title="Admin", icon=":material/admin_panel_settings:"),
        st.Page(VIEWS / "audit.py", title="Audit", icon=":material/history:"),
    ],
}
st.navigation(pages).run()
