"""Prometheus text of the processors worker."""

from __future__ import annotations

from decimal import Decimal

from processors.metrics import ProcessorMetrics


def test_counts_are_rendered() -> None:
    metrics = ProcessorMetrics()
    metrics.event_processed("cost")
    metrics.event_processed("cost")
    metrics.cost_emitted(Decimal("0.000435"), priced=True, model="gpt-4o-mini")
    metrics.cost_emitted(Decimal(0), priced=False, model="mystery")
    metrics.dead_letter("processors.cost")

    text = metrics.render()

    assert 'meterline_processors_events_processed_total{agent="cost"} 2' in text
    assert "meterline_processors_costs_emitted_total 2" in text
    assert "meterline_processors_cost_usd_total 0.000435" in text
    assert 'meterline_processors_unpriced_total{model="mystery"} 1' in text
    assert 'meterline_processors_dead_letters_total{stage="processors.cost"} 1' in text
    assert "# TYPE meterline_processors_unpriced_total counter" in text
    assert text.endswith("\n")


def test_label_values_are_escaped() -> None:
    metrics = ProcessorMetrics()
    metrics.cost_emitted(Decimal(0), priced=False, model='evil"\nmodel\\')

    assert 'model="evil\\"\\nmodel\\\\"' in metrics.render()


def test_model_labels_are_capped() -> None:
    metrics = ProcessorMetrics(max_model_labels=2)
    for name in ("a", "b", "c", "d", "a"):
        metrics.cost_emitted(Decimal(0), priced=False, model=name)

    assert metrics.unpriced_by_model == {"a": 2, "b": 1, "__other__": 2}


def test_each_instance_counts_on_its_own() -> None:
    # One registry per app: several workers (or tests) in one process never share counts.
    first, second = ProcessorMetrics(), ProcessorMetrics()
    first.event_processed("cost")

    assert 'events_processed_total{agent="cost"} 1.0' in first.render()
    assert 'agent="cost"' not in second.render()
    assert "_created" not in first.render()


def test_a_negative_amount_never_raises_into_the_stream() -> None:
    # prometheus_client refuses to decrease a counter; the agents must not see that.
    metrics = ProcessorMetrics()
    metrics.cost_emitted(Decimal("-0.5"), priced=True, model="m")
    metrics.recosted(-1)

    assert "meterline_processors_cost_usd_total 0.0" in metrics.render()
