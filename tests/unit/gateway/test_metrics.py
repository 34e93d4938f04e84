from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from gateway.metrics import Metrics
from gateway.pricing import PriceEstimator


def test_metrics_render_counters_histogram_and_gauges() -> None:
    metrics = Metrics()
    metrics.gauge("meterline_gateway_spool_events", "spooled", lambda: 3)
    metrics.observe("/v1/embeddings", 200, 0.004, 10, 0)
    metrics.observe("/v1/embeddings", 401, 0.0001, 0, 0)
    text = metrics.render()
    assert 'meterline_gateway_requests_total{endpoint="/v1/embeddings",status="200"} 1' in text
    assert 'meterline_gateway_request_seconds_bucket{le="0.005"} 2' in text
    assert 'meterline_gateway_request_seconds_bucket{le="0.001"} 1' in text
    assert 'meterline_gateway_tokens_total{direction="input"} 10' in text
    assert "meterline_gateway_spool_events 3" in text


def _families(text: str) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """Parsed with prometheus_client's own parser: the exposition format is valid."""
    found: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return found


def test_per_model_and_provider_series_and_a_cost_estimate() -> None:
    metrics = Metrics()
    metrics.price_with(PriceEstimator().rates)
    metrics.observe(
        "/v1/chat/completions", 200, 0.2, 1000, 100, "openai", "gpt-4o-mini", (1000, 100, 0, 0)
    )
    metrics.observe("/v1/chat/completions", 502, 0.1, 0, 0, "openai", "gpt-4o-mini", None)
    metrics.observe("/v1/chat/completions", 401, 0.001, 0, 0, None, None, None, "key_1")
    found = _families(metrics.render())
    mini = (("model", "gpt-4o-mini"), ("provider", "openai"))
    assert found["meterline_gateway_model_requests_total"][mini] == 2
    assert found["meterline_gateway_model_errors_total"][mini] == 1
    assert found["meterline_gateway_model_tokens_total"][(("direction", "output"), *mini)] == 100
    assert found["meterline_gateway_model_request_seconds_count"][mini] == 2
    assert found["meterline_gateway_provider_requests_total"][(("provider", "openai"),)] == 2
    refused = (("model", "(none)"), ("provider", "(none)"))
    assert found["meterline_gateway_model_errors_total"][refused] == 1
    # 1000 x $0.15/M + 100 x $0.60/M, as the budget guard estimates it
    cost = found["meterline_gateway_cost_estimate_usd_total"][mini]
    assert abs(cost - (1000 * 0.15 + 100 * 0.6) / 1e6) < 1e-12
    assert not any(name.startswith("meterline_gateway_key_") for name in found)  # off by default
    assert (
        'meterline_gateway_requests_total{endpoint="/v1/chat/completions",status="200"} 1'
        in metrics.render()
    )


def test_per_key_series_only_when_enabled_and_models_are_bounded() -> None:
    metrics = Metrics(per_key=True)
    metrics.observe("/v1/embeddings", 200, 0.01, 5, 0, "openai", "m", (5, 0, 0, 0), "key_1")
    assert _families(metrics.render())["meterline_gateway_key_requests_total"] == {
        (("key_id", "key_1"),): 1
    }
    for i in range(3000):  # names chosen by clients
        metrics.observe("/v1/embeddings", 404, 0.01, 0, 0, None, f"model-{i}", None)
    assert len(metrics.requests) <= 2001
    models = _families(metrics.render())["meterline_gateway_model_requests_total"]
    assert models[(("model", "other"), ("provider", "(none)"))] > 0
