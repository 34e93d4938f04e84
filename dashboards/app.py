"""Meterline dashboards: `meterline dashboard` runs this (Streamlit multipage app).

Pages live in `views/`; each talks only to the read API and the gateway admin API.
Alerts link to `/security?subject=...`, hence the fixed url paths.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

VIEWS = Path(__file__).parent / "views"

st.set_page_config(page_title="Meterline", page_icon=":material/monitoring:", layout="wide")

pages = {
    "Finance": [
        st.Page(VIEWS / "showback.py", title="Showback", icon=":material/payments:", default=True),
        st.Page(VIEWS / "budgets.py", title="Budgets", icon=":material/savings:"),
    ],
    "Security & operations": [
        st.Page(VIEWS / "security.py", title="Security", icon=":material/shield:"),
        st.Page(VIEWS / "operations.py", title="Operations", icon=":material/speed:"),
    ],
}
st.navigation(pages).run()
