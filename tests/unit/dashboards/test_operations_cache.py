"""Operations' response-cache figures: hit ratios from the read API, memory from a gateway."""

from __future__ import annotations

from dashboards.operations_data import cache_figures

RANGE = {
    "lookups": 200,
    "hits": 50,
    "semantic_hits": 10,
    "hit_ratio": 0.3,
    "semantic_hit_ratio": 0.05,
}
GATEWAY = {
    "bytes": 3 * 1024 * 1024,
    "max_bytes": 64 * 1024 * 1024,
    "entries": 1200,
    "max_entries": 10000,
}


def test_ratios_and_memory() -> None:
    assert cache_figures(RANGE, GATEWAY) == {
        "Hit ratio": "30.0%",
        "Semantic hit ratio": "5.0%",
        "Lookups": "200",
        "Cache memory": "3.0 MiB of 64.0 MiB",
        "Entries": "1,200 of 10,000",
    }


def test_nothing_known_is_a_dash_not_zero() -> None:
    empty = {
        "lookups": 0,
        "hits": 0,
        "semantic_hits": 0,
        "hit_ratio": None,
        "semantic_hit_ratio": None,
    }
    figures = cache_figures(empty, None)
    assert figures["Hit ratio"] == figures["Cache memory"] == "—"
    assert cache_figures(None, None)["Lookups"] == "0"
