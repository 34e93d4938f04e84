"""The Deployments table of the operations page: read API rows joined with the gateway's
breakers, every cell written out (no None, no NaN)."""

from __future__ import annotations

from dashboards.operations_data import BREAKER_UNKNOWN, DEPLOYMENT_COLUMNS, deployment_table


def _row(deployment: str, provider: str = "openai", **extra: object) -> dict:
    return {
        "deployment": deployment,
        "provider": provider,
        "groups": ["gpt-4o"],
        "requests": 1200,
        "tries": 1500,
        "errors": 300,
        "error_rate": 0.2,
        "retries": 250,
        "fallbacks_from": 40,
        "fallbacks_to": 0,
        "latency_p50_ms": 120.0,
        "latency_p95_ms": 2345.678,
        **extra,
    }


def _state(deployment: str, breaker: str, failures: int = 0, **extra: object) -> dict:
    return {
        "deployment": deployment,
        "provider": "openai",
        "group": "gpt-4o",
        "model": None,
        "breaker": breaker,
        "consecutive_failures": failures,
        "in_flight": 0,
        "latency_ms": None,
        **extra,
    }


def _no_artefacts(table) -> None:
    cells = [str(v) for v in table.to_numpy().ravel()]
    assert not any(c in ("None", "nan", "NaN", "") or "@" in c for c in cells), cells


def test_rows_are_written_out_and_breakers_unknown_without_the_gateway() -> None:
    table = deployment_table(
        [_row("openai/gpt-4o"), _row("local/llama", provider="", groups=[], latency_p95_ms=None)]
    )
    assert list(table.columns) == DEPLOYMENT_COLUMNS
    first = table.iloc[0].to_dict()
    assert first == {
        "Deployment": "openai/gpt-4o",
        "Provider": "openai",
        "Groups": "gpt-4o",
        "Requests": "1,200",
        "Tries": "1,500",
        "Error rate": "20.00%",
        "Retries": "250",
        "Fell back from": "40",
        "Served after fallback": "0",
        "p95 latency": "2,345.7 ms",
        "Breaker": BREAKER_UNKNOWN,
    }
    second = table.iloc[1]
    assert (second["Provider"], second["Groups"], second["p95 latency"]) == ("—", "—", "—")
    _no_artefacts(table)


def test_breakers_come_from_the_gateway_and_idle_deployments_get_a_row() -> None:
    table = deployment_table(
        [_row("openai/gpt-4o"), _row("azure/gpt-4o"), _row("gone/gpt-4")],
        [
            _state("openai/gpt-4o", "open", failures=5),
            _state("azure/gpt-4o", "closed", failures=2),
            _state("anthropic/claude", "half_open", group=None, provider="anthropic"),
        ],
    )
    breakers = dict(zip(table["Deployment"], table["Breaker"], strict=True))
    assert breakers == {
        "openai/gpt-4o": "open",
        "azure/gpt-4o": "closed (2 failed in a row)",
        "gone/gpt-4": "not routed now",  # in the range's data, no longer configured
        "anthropic/claude": "half-open",  # no traffic in the range
    }
    idle = table.set_index("Deployment").loc["anthropic/claude"]
    assert (idle["Provider"], idle["Groups"], idle["Requests"], idle["Error rate"]) == (
        "anthropic",
        "—",
        "0",
        "—",
    )
    _no_artefacts(table)


def test_no_deployments_and_no_gateway_is_an_empty_table() -> None:
    table = deployment_table([], None)
    assert table.empty and list(table.columns) == DEPLOYMENT_COLUMNS
    assert deployment_table([], []).empty
