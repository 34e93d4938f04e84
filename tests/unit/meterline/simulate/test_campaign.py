"""The campaign generator: parameters from wide ranges, steps that follow them, legitimate
changes that stay benign."""

from __future__ import annotations

import random
from collections import Counter

from meterline.simulate.catalog import EXPENSIVE_MODELS
from meterline.simulate.scenarios.campaign import (
    LEGIT_CHANGES,
    RAMPS,
    campaign_steps,
    draw_campaign,
    draw_legit_change,
    legit_change_steps,
)
from meterline.simulate.scenarios.normal import normal_keys


def test_draws_cover_every_ramp_identity_and_stage_over_wide_ranges() -> None:
    rng = random.Random(1)
    draws = [draw_campaign(rng) for _ in range(300)]
    assert set(Counter(d.ramp for d in draws)) == set(RAMPS)
    assert {d.copy_user_agent for d in draws} == {True, False}
    assert {d.models for d in draws} == {"expensive", "mixed", "victim"}
    assert {(d.probe, d.enumerate, d.validate) for d in draws} >= {
        (False, False, False),
        (True, True, True),
    }
    warmups = sorted(d.warmup_s for d in draws)
    assert warmups[0] < 120 and warmups[-1] > 1200  # a minute to days of compressed history
    networks = [d.networks for d in draws]
    assert min(networks) == 1 and max(networks) >= 30
    rates = [d.peak_rate for d in draws]
    assert min(rates) < 0.1 and max(rates) > 20
    assert {d.concurrency for d in draws} >= {1, 16}


def test_steps_follow_the_drawn_parameters() -> None:
    rng = random.Random(2)
    victim = normal_keys(random.Random(3))[0]
    params = draw_campaign(rng)
    params = type(params)(**{**params.__dict__, "copy_user_agent": True, "models": "expensive"})
    steps = list(campaign_steps(rng, victim, params, start_s=100.0))
    ramp = [s for s in steps if s.stage == "ramp"]
    assert steps and all(s.malicious and s.detector == "llmjacking" for s in steps)
    assert all(s.key == victim.spec.name and s.at_s >= 100.0 for s in steps)
    assert [s.at_s for s in steps] == sorted(s.at_s for s in steps)
    assert {s.user_agent for s in ramp} == {victim.user_agent}
    assert {s.model for s in ramp} <= set(EXPENSIVE_MODELS)
    assert len({s.client_ip.rsplit(".", 1)[0] for s in ramp if s.client_ip}) <= params.networks
    stages = {s.stage for s in steps}
    assert ("probe" in stages) == params.probe and ("enumerate" in stages) == params.enumerate


def test_legitimate_changes_are_benign_and_changed_as_drawn() -> None:
    rng = random.Random(4)
    key = normal_keys(random.Random(5))[0]
    seen = set()
    for _ in range(40):
        change = draw_legit_change(rng)
        seen.add(change.kind)
        steps = list(legit_change_steps(rng, key, change, 50.0, rate=0.5))
        assert steps and not any(s.malicious for s in steps)
        assert {s.user_agent for s in steps} == {key.user_agent}
        if change.kind == "model_upgrade":
            assert {s.model for s in steps} <= set(EXPENSIVE_MODELS)
        if change.kind in ("new_network", "new_region"):
            home = {h.rsplit(".", 1)[0] for h in key.hosts}
            assert not {s.client_ip.rsplit(".", 1)[0] for s in steps if s.client_ip} & home
    assert seen == set(LEGIT_CHANGES)
