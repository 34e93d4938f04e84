"""Dates ClickHouse cannot take are a 400 naming the parameter on every read-API route,
never a 500 (issue 10: `/api/requests?since=0047-08-02T10:53:07Z` was a 500)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from ingest.api import create_app

pytestmark = pytest.mark.integration

ANCIENT = "0047-08-02T10:53:07Z"


@pytest.fixture
def api(harness) -> TestClient:
    return TestClient(create_app(harness.client), raise_server_exceptions=False)


@pytest.mark.parametrize(
    ("path", "query", "param"),
    [
        ("/api/requests", {"since": ANCIENT}, "since"),
        ("/api/requests", {"from": "0047-08-02"}, "from"),
        ("/api/requests", {"to": "2400-01-01T00:00:00Z"}, "to"),
        ("/api/showback", {"from": ANCIENT}, "from"),
        ("/api/showback", {"from": "2020-01-01", "to": "9999-12-31"}, "to"),
        ("/api/showback/timeseries", {"from": "0001-01-01", "to": "2020-01-01"}, "from"),
        ("/api/spend", {"subject": "org:acme", "from": ANCIENT, "to": "2020-01-01"}, "from"),
        ("/api/budgets", {"from": "1899-12-31"}, "from"),
        ("/api/anomalies", {"to": "2300-01-01T00:00:01Z"}, "to"),
        ("/api/enforcement/history", {"from": ANCIENT}, "from"),
        ("/api/drift", {"from": ANCIENT}, "from"),
        ("/api/operations", {"from": ANCIENT}, "from"),
        ("/api/export/focus", {"from": ANCIENT, "to": "2020-01-01"}, "from"),
        # Year 1 at +01:00 is before datetime's own minimum once made UTC.
        ("/api/requests", {"since": "0001-01-01T00:00:00+01:00"}, "since"),
        # The previous period of a valid range would start before 1900.
        (
            "/api/showback",
            {"from": "1950-01-01", "to": "2200-01-01", "compare": "previous"},
            "compare",
        ),
    ],
)
def test_out_of_range_dates_are_400_naming_the_parameter(
    api: TestClient, path: str, query: dict[str, str], param: str
) -> None:
    response = api.get(path, params=query)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == param


def test_the_edges_of_the_range_are_accepted(api: TestClient) -> None:
    assert api.get("/api/requests", params={"since": "1900-01-01T00:00:00Z"}).status_code == 200
    edges = {"from": "1900-01-01", "to": "2299-12-31"}  # `to` a date: through that day
    assert api.get("/api/showback", params=edges).status_code == 200
