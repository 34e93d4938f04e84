"""deploy/grafana/meterline.json asks only for series the services really export, by labels
they really carry: each service's /metrics text is rendered here from its own code."""

from __future__ import annotations

import json
import re
from decimal import Decimal
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from gateway.metrics import Metrics
from gateway.pricing import PriceEstimator
from ingest.metrics import ingest_registry, render
from ingest.otlp.stats import OtlpStats
from ingest.sink.status import SinkStatus
from processors.metrics import ProcessorMetrics

DASHBOARD = Path(__file__).resolve().parents[3] / "deploy" / "grafana" / "meterline.json"
_BY = re.compile(r"\bby \(([^)]*)\)")
_NAME = re.compile(r"\bmeterline_[a-z0-9_]+")


def _exported() -> dict[str, set[str]]:
    """Sample name -> its label names, over the three services' /metrics."""
    gateway = Metrics()
    gateway.price_with(PriceEstimator().rates)
    gateway.observe("/v1/chat/completions", 200, 0.1, 10, 5, "openai", "gpt-4o-mini", (10, 5, 0, 0))
    gateway.observe_upstream("openai", "east", "gpt-4o-mini", "200", 0.1)
    processors = ProcessorMetrics()
    processors.event_processed("cost")
    processors.cost_emitted(Decimal("0.1"), False, "m")
    processors.dead_letter("processors.cost")
    processors.consumer_lag({"requests": 3})
    processors.batch_committed({"requests": 0.2})
    ingest = render(ingest_registry(SinkStatus(), OtlpStats())).decode()
    labels: dict[str, set[str]] = {}
    for text in (gateway.render(), processors.render(), ingest):
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                labels.setdefault(sample.name, set()).update(sample.labels)
    return labels


def test_every_query_uses_exported_series_and_labels() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    exported = _exported()
    targets = [t for panel in dashboard["panels"] for t in panel["targets"]]
    assert len(targets) >= 12
    for target in targets:
        expr = target["expr"]
        names = _NAME.findall(expr)
        assert names, expr
        for name in names:
            assert name in exported, f"{name} is not exported by any service ({expr})"
        carried = set.union(*(exported[name] for name in names))
        for group in _BY.findall(expr):
            wanted = {label.strip() for label in group.split(",")}
            assert wanted <= carried, f"{expr}: no label {sorted(wanted - carried)}"
    # The series the issue asks for are on the board.
    used = {name for target in targets for name in _NAME.findall(target["expr"])}
    for needed in (
        "meterline_gateway_model_tokens_total",
        "meterline_gateway_provider_errors_total",
        "meterline_gateway_cost_estimate_usd_total",
        "meterline_ingest_sink_rows_written_total",
        "meterline_processors_dead_letters_total",
        "meterline_processors_consumer_lag_messages",
    ):
        assert needed in used, needed


def test_the_board_is_a_grafana_dashboard() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids)) and dashboard["uid"] == "meterline"
    assert {v["name"] for v in dashboard["templating"]["list"]} == {"datasource"}
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == "${datasource}" and panel["targets"]
        assert [t["refId"] for t in panel["targets"]] == [
            chr(ord("A") + i) for i in range(len(panel["targets"]))
        ]
