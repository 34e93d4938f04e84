"""`budget-burn`: one key spends fast against a small daily budget.

A batch job gone wrong: large prompts to an expensive model with generous `max_tokens`,
many per second, from the team's usual network. The budget's hard limit should stop it.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass

from meterline.simulate.catalog import host_in, network_in
from meterline.simulate.catalog import prompt as make_prompt
from meterline.simulate.plan import BudgetSpec, KeySpec, Step

__all__ = ["BudgetBurnParams", "budget_burn_keys", "budget_burn_steps"]

KEY = "globex-batch-1"


@dataclass(frozen=True)
class BudgetBurnParams:
    start_s: float = 5.0
    rate: float = 3.0  # requests per second
    duration_s: float = 60.0
    limit_usd: str = "0.50"  # per day
    model: str = "gpt-4o"


def budget_burn_keys(params: BudgetBurnParams) -> tuple[list[KeySpec], list[BudgetSpec]]:
    key = KeySpec(KEY, "globex", "research", "batch-summaries", "batch@globex.example")
    return [key], [BudgetSpec(KEY, params.limit_usd)]


def budget_burn_steps(rng: random.Random, params: BudgetBurnParams) -> Iterator[Step]:
    client_ip = host_in(rng, network_in(rng, "eu-west"))
    at_s = params.start_s
    while True:
        at_s += rng.expovariate(params.rate)
        if at_s >= params.start_s + params.duration_s:
            return
        yield Step(
            at_s=at_s,
            key=KEY,
            scenario="budget-burn",
            stage="burn",
            malicious=True,
            detector="budget",
            model=params.model,
            messages=({"role": "user", "content": make_prompt(rng, 400, 900)},),
            max_tokens=rng.randint(1500, 4000),
            client_ip=client_ip,
            user_agent="globex-batch/2.1 openai-python/1.52.0",
        )
