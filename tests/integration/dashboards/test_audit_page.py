"""The Audit page against the real read API over seeded control records and decisions."""

from __future__ import annotations

import json

import pytest
from streamlit.testing.v1 import AppTest

from tests.integration.dashboards.conftest import APP

LIMITS = {"team:acme/search": "100", "org:globex": "20", "org:umbrella": "5"}  # the seed's


pytestmark = pytest.mark.integration


def test_audit_lists_changes_and_decisions_with_who_and_what(read_api, dashboard_env) -> None:
    dashboard_env(read_api.url)
    app = AppTest.from_file(APP, default_timeout=30).run()
    app.switch_page("views/audit.py").run()
    assert not app.exception and not app.error, app.error
    table = app.dataframe[0].value
    # the seed: three budgets created (by the default actor) and one automatic block
    assert sorted(table["What"]) == ["budget create"] * 3 + ["enforcement block"]
    budgets = table[table["What"] == "budget create"].set_index("Subject")
    assert set(budgets["Who"]) == {"admin"}
    assert "limit_usd: 100" in budgets.loc["team:acme/search", "Change"]
    assert "period: month" in budgets.loc["team:acme/search", "Change"]
    block = table[table["What"] == "enforcement block"].iloc[0]
    assert (block["Subject"], block["Source"]) == ("key:k1", "llmjacking")
    assert block["Reason"].startswith("llmjacking: enumeration")

    # the chosen entry's whole record, before and after (a creation has nothing before)
    first = list(table["What"]).index("budget create")
    app.selectbox(key="audit_entry").set_value(first).run()
    before, after = (json.loads(j.value) for j in app.json)
    assert before == {} and after["limit_usd"] == LIMITS[after["subject"]]

    app.selectbox(key="audit_kind").set_value("enforcement").run()
    assert list(app.dataframe[0].value["What"]) == ["enforcement block"]
    app.selectbox(key="audit_kind").set_value("every kind").run()
    app.text_input(key="audit_subject").input("org:globex").run()
    assert list(app.dataframe[0].value["Subject"]) == ["org:globex"]
