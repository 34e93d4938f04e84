"""Scenario name -> plan. One `random.Random` per scenario part, seeded from the seed and
the part's name, so adding an attack never changes the normal traffic around it."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator

from meterline.simulate.config import SimulationConfig
from meterline.simulate.plan import Plan, Step, merge_steps
from meterline.simulate.scenarios.agent_loop import (
    AgentLoopParams,
    agent_identity,
    agent_keys,
    agent_loop_steps,
)
from meterline.simulate.scenarios.budget_burn import (
    BudgetBurnParams,
    budget_burn_keys,
    budget_burn_steps,
)
from meterline.simulate.scenarios.campaign import (
    campaign_steps,
    draw_campaign,
    draw_legit_change,
    legit_change_steps,
)
from meterline.simulate.scenarios.drift import DriftParams, drift_keys, drift_steps
from meterline.simulate.scenarios.llmjacking import LLMjackingParams, llmjacking_steps
from meterline.simulate.scenarios.normal import NormalKey, normal_keys, normal_steps

__all__ = ["SCENARIOS", "build_plan"]

_DEFAULT_FINITE_S = 120.0  # attack scenarios need an end to place their stages in


def _rng(config: SimulationConfig, part: str) -> random.Random:
    return random.Random(f"{config.seed}:{part}")


def _world(config: SimulationConfig) -> tuple[list[NormalKey], Iterator[Step]]:
    """The everyday traffic every scenario happens in."""
    keys = normal_keys(_rng(config, "keys"))
    steps = normal_steps(
        _rng(config, "normal"),
        keys,
        rate=config.rate,
        duration_s=config.duration_s,
        day_length_s=config.day_length_s,
    )
    return keys, steps


def _span(config: SimulationConfig) -> float:
    return config.duration_s if config.duration_s > 0 else _DEFAULT_FINITE_S


def _llmjacking(config: SimulationConfig, keys: list[NormalKey]) -> Iterator[Step]:
    rng = _rng(config, "llmjacking")
    # The leaked key is one in daily use: its owner keeps calling throughout.
    busy = [key for key in keys if key.weight >= 1.0] or keys
    stolen = rng.choice(busy).spec.name
    span = _span(config)
    start = max(0.3 * span, 10.0)
    params = LLMjackingParams(start_s=start, ramp_duration_s=max(span - start - 10.0, 10.0))
    return llmjacking_steps(rng, stolen, params)


def _agents(config: SimulationConfig) -> Iterator[Step]:
    rng = _rng(config, "agent-loop")
    client_ip, user_agent = agent_identity(rng)
    params = AgentLoopParams(start_s=max(0.1 * _span(config), 3.0))
    return agent_loop_steps(rng, agent_keys()[0].name, params, client_ip, user_agent)


def normal(config: SimulationConfig) -> Plan:
    keys, steps = _world(config)
    return Plan("normal", [k.spec for k in keys], steps)


def llmjacking(config: SimulationConfig) -> Plan:
    keys, steps = _world(config)
    return Plan("llmjacking", [k.spec for k in keys], merge_steps(steps, _llmjacking(config, keys)))


def agent_loop(config: SimulationConfig) -> Plan:
    keys, steps = _world(config)
    specs = [k.spec for k in keys] + agent_keys()
    return Plan("agent-loop", specs, merge_steps(steps, _agents(config)))


def budget_burn(config: SimulationConfig) -> Plan:
    keys, steps = _world(config)
    params = BudgetBurnParams(start_s=5.0, duration_s=_span(config))
    burn_keys, budgets = budget_burn_keys(params)
    burn = budget_burn_steps(_rng(config, "budget-burn"), params)
    return Plan(
        "budget-burn", [k.spec for k in keys] + burn_keys, merge_steps(steps, burn), budgets
    )


def drift(config: SimulationConfig) -> Plan:
    keys, steps = _world(config)
    span = _span(config)
    params = DriftParams(shift_at_s=span / 2, duration_s=span)
    shifted = drift_steps(_rng(config, "drift"), params)
    return Plan("drift", [k.spec for k in keys] + drift_keys(), merge_steps(steps, shifted))


def mixed(config: SimulationConfig) -> Plan:
    """Normal traffic with a stolen key and runaway agents hidden in it."""
    keys, steps = _world(config)
    specs = [k.spec for k in keys] + agent_keys()
    attacks = merge_steps(steps, _llmjacking(config, keys), _agents(config))
    return Plan("mixed", specs, attacks)


def campaign(config: SimulationConfig) -> Plan:
    """One LLMjacking campaign drawn from wide ranges (scenarios/campaign.py) on a busy key,
    while two other keys make legitimate changes; `meterline eval detections` runs many of
    these in process."""
    keys, steps = _world(config)
    rng = _rng(config, "campaign")
    params = draw_campaign(rng, config.day_length_s)
    busy = [key for key in keys if key.weight >= 1.0] or keys
    victim, *changed = rng.sample(busy, min(3, len(busy)))
    start = max(0.3 * _span(config), 10.0)
    total = sum(key.weight for key in keys)
    changes = [
        legit_change_steps(
            rng, key, draw_legit_change(rng), start, config.rate * 0.68 * key.weight / total
        )
        for key in changed
    ]
    attack = campaign_steps(rng, victim, params, start)
    return Plan("campaign", [k.spec for k in keys], merge_steps(steps, attack, *changes))


SCENARIOS: dict[str, Callable[[SimulationConfig], Plan]] = {
    "normal": normal,
    "llmjacking": llmjacking,
    "agent-loop": agent_loop,
    "budget-burn": budget_burn,
    "drift": drift,
    "mixed": mixed,
    "campaign": campaign,
}


def build_plan(config: SimulationConfig) -> Plan:
    try:
        builder = SCENARIOS[config.scenario]
    except KeyError:
        raise ValueError(
            f"unknown scenario {config.scenario!r}; available: {', '.join(SCENARIOS)}"
        ) from None
    return builder(config)
