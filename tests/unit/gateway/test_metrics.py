from __future__ import annotations

from gateway.metrics import Metrics


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
