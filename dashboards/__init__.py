"""Streamlit dashboards. They talk only to the read API and the admin API over HTTP."""

__all__: list[str] = []
