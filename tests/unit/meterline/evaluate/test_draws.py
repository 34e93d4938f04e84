"""In-process campaign draws: events as the gateway makes them, blocks that stop the
attacker's traffic, distributions over draws."""

from __future__ import annotations

import random
from decimal import Decimal

import pytest

from meterline.evaluate.draws import DrawConfig, llmjacking_draw, request_event
from meterline.evaluate.summary import format_llmjacking, percentile, summarize_llmjacking
from meterline.simulate.plan import Step
from meterline.simulate.scenarios.normal import normal_keys
from processors.llmjacking.tiers import ModelTiers

TIERS = ModelTiers()


def test_steps_become_the_gateways_events() -> None:
    key = normal_keys(random.Random(1))[0]
    rng = random.Random(2)

    def make(**fields: object) -> Step:
        return Step(at_s=1.0, key=key.spec.name, scenario="t", stage="t", **fields)  # type: ignore[arg-type]

    words = ({"role": "user", "content": "x" * 400},)
    served = request_event(make(model="gpt-4o", messages=words, max_tokens=64), key, "a", rng)
    assert served.status_code == 200 and served.input_tokens == 108
    assert 16 <= served.output_tokens <= 64 and served.org == key.spec.org
    probe = request_event(make(model="gpt-4o", messages=words, max_tokens=-1), key, "b", rng)
    assert (probe.status_code, probe.error_type, probe.input_tokens) == (
        400,
        "invalid_request_error",
        0,
    )
    guess = request_event(make(model="claude-2.1", messages=words, max_tokens=1), key, "c", rng)
    assert (guess.status_code, guess.error_type) == (404, "model_not_found")
    listing = request_event(make(action="models"), key, "d", rng)
    assert listing.endpoint == "/v1/models" and listing.model_requested is None


def test_a_draw_is_reproducible_and_a_block_stops_the_attackers_traffic() -> None:
    config = DrawConfig(history_s=700.0, legit_changes=1)
    first = llmjacking_draw(5, 0, config, TIERS)
    again = llmjacking_draw(5, 0, config, TIERS)
    assert first.blocked_after_s == again.blocked_after_s and first.served == again.served
    assert first.blocked and first.served < first.attack_requests  # refused after the block
    assert first.usd_to_block == first.usd_served and isinstance(first.usd_served, Decimal)
    assert not first.false_positive_blocks and not any(c["blocked"] for c in first.legit)


@pytest.mark.slow  # a statistical simulation: make test's last lane
def test_percentiles_are_nearest_rank_and_the_summary_reads_the_draws() -> None:
    assert percentile([], 95) is None
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0 and percentile([1.0, 2.0, 3.0], 95) == 3.0
    config = DrawConfig(history_s=700.0, legit_changes=1)
    results = [llmjacking_draw(6, index, config, TIERS) for index in range(2)]
    summary = summarize_llmjacking(results)
    assert summary.draws == 2 and summary.seeds == [6]
    assert summary.recall == sum(r.blocked for r in results) / 2
    assert summary.normal_keys == sum(r.normal_keys for r in results)
    text = format_llmjacking(summary)
    assert "recall (blocked)" in text and "legitimate changes blocked: 0 of 2" in text
    assert summary.time_to_block[0] == pytest.approx(
        percentile([r.blocked_after_s for r in results if r.blocked_after_s is not None], 50)
    )
