"""The clients' view of each answer names exactly the fields the server sends, so a field
added, renamed or dropped on one side fails here, not in a dashboard."""

from __future__ import annotations

import typing

import pytest
from pydantic import BaseModel

from ingest.api import models as served
from ingest.api.spend import SpendResponse as ServedSpend
from ingest.api.uncosted import UncostedResponse as ServedUncosted
from meterline.clients import read as client
from schemas.events import BudgetRecord, EnforcementDecision, PolicyRecord

READ_ANSWERS: list[tuple[type, type[BaseModel]]] = [
    (client.ShowbackTotals, served.ShowbackTotals),
    (client.ShowbackRow, served.ShowbackRow),
    (client.ShowbackComparison, served.ShowbackComparison),
    (client.ShowbackResponse, served.ShowbackResponse),
    (client.TimeseriesPoint, served.TimeseriesPoint),
    (client.TimeseriesResponse, served.TimeseriesResponse),
    (client.BudgetStatePoint, served.BudgetStatePoint),
    (client.BudgetStatus, served.BudgetStatus),
    (client.BudgetsResponse, served.BudgetsResponse),
    (client.AnomalyRow, served.AnomalyRow),
    (client.AnomaliesResponse, served.AnomaliesResponse),
    (client.DecisionRow, served.DecisionRow),
    (client.EnforcementResponse, served.EnforcementResponse),
    (client.DriftRow, served.DriftRow),
    (client.DriftResponse, served.DriftResponse),
    (client.OperationsResponse, served.OperationsResponse),
    (client.HealthResponse, served.HealthResponse),
    (client.SpendResponse, ServedSpend),
    (client.UncostedPage, ServedUncosted),
]


def wire_names(model: type[BaseModel]) -> set[str]:
    return {field.alias or name for name, field in model.model_fields.items()}


@pytest.mark.parametrize(("view", "model"), READ_ANSWERS, ids=lambda t: t.__name__)
def test_read_client_answers_name_the_served_fields(view: type, model: type[BaseModel]) -> None:
    assert set(typing.get_type_hints(view)) == wire_names(model)


@pytest.mark.parametrize(
    ("view", "record"),
    [
        ("Budget", BudgetRecord),
        ("Decision", EnforcementDecision),
        ("Policy", PolicyRecord),
    ],
)
def test_admin_client_answers_are_fields_of_the_published_records(
    view: str, record: type[BaseModel] | object
) -> None:
    """The admin API answers with the record it published (its JSON), so every field the
    client reads must be one of the record's."""
    from meterline.clients import admin

    # A record that is a discriminated union (Annotated[A | B, ...]): every member.
    members = [record] if isinstance(record, type) else typing.get_args(typing.get_args(record)[0])
    for member in members:
        assert set(typing.get_type_hints(getattr(admin, view))) <= wire_names(member)
