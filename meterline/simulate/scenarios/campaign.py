"""`campaign`: LLMjacking campaigns drawn from wide ranges, next to legitimate changes.

The `llmjacking` scenario plays one scripted attack; a detector tuned on it learns that
script. A campaign draws every parameter instead (`draw_campaign`): how long the victim
key was in use before the leak (a minute to days of compressed history), how many
attacker networks and how spread over regions, the ramp (a burst, a linear climb, low
and slow), a new user agent or the victim's own, the models (the priciest, a mix, or the
victim's), with or without validation, enumeration and probes, how many requests in
flight at once, how long the prompts.

Beside it, other keys make legitimate changes a detector must not block
(`draw_legit_change`): moving to a new network, to a new region, a batch job spike, a
model upgrade. Their steps are not malicious: a block on them is a false positive.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from meterline.simulate.catalog import (
    CHEAP_MODELS,
    DEMO_MODELS,
    ENUMERATED_MODELS,
    EXPENSIVE_MODELS,
    PROXY_USER_AGENTS,
    REGIONS,
    SCRIPT_USER_AGENTS,
    host_in,
    network_in,
)
from meterline.simulate.catalog import prompt as make_prompt
from meterline.simulate.plan import Step
from meterline.simulate.scenarios.normal import NormalKey

__all__ = [
    "LEGIT_CHANGES",
    "RAMPS",
    "CampaignParams",
    "LegitChange",
    "campaign_steps",
    "draw_campaign",
    "draw_legit_change",
    "legit_change_steps",
]

Ramp = Literal["burst", "linear", "low-and-slow"]
RAMPS: tuple[Ramp, ...] = ("burst", "linear", "low-and-slow")
LEGIT_CHANGES = ("new_network", "new_region", "batch_spike", "model_upgrade")
_UPGRADES = [m for m in EXPENSIVE_MODELS if m != "gpt-4o"]  # what a team moves up to
_USUAL_MODELS = [m for m, _ in DEMO_MODELS]
_USUAL_WEIGHTS = [w for _, w in DEMO_MODELS]


@dataclass(frozen=True)
class CampaignParams:
    warmup_s: float  # the victim key's normal use before the first abusive request
    networks: int  # distinct attacker /24s
    regions: tuple[str, ...]  # where they are
    ramp: Ramp
    peak_rate: float  # requests per second at the top of the ramp
    duration_s: float  # of the abuse, if nothing stops it
    copy_user_agent: bool  # the victim's own user agent, else a proxy's or a script's
    models: Literal["expensive", "mixed", "victim"]
    validate: bool
    enumerate: bool
    probe: bool
    concurrency: int  # requests sent at once
    prompt_words: tuple[int, int]
    max_tokens: tuple[int, int]


def _log_uniform(rng: random.Random, low: float, high: float) -> float:
    return math.exp(rng.uniform(math.log(low), math.log(high)))


def draw_campaign(rng: random.Random, day_length_s: float = 600.0) -> CampaignParams:
    """Every parameter from a wide range; nothing here knows the detector."""
    ramp = rng.choice(RAMPS)
    peak = {
        "burst": _log_uniform(rng, 3.0, 30.0),
        "linear": _log_uniform(rng, 1.0, 10.0),
        "low-and-slow": _log_uniform(rng, 0.05, 0.5),
    }[ramp]
    duration = {"burst": (60, 240), "linear": (120, 600), "low-and-slow": (300, 1800)}[ramp]
    low_words = rng.randint(20, 400)
    low_out = rng.randint(64, 1024)
    return CampaignParams(
        warmup_s=_log_uniform(rng, 60.0, 3 * day_length_s),
        networks=round(_log_uniform(rng, 1, 40)),
        regions=tuple(rng.sample(sorted(REGIONS), rng.randint(1, 5))),
        ramp=ramp,
        peak_rate=peak,
        duration_s=rng.uniform(*duration),
        copy_user_agent=rng.random() < 0.5,
        models=rng.choices(("expensive", "mixed", "victim"), (0.5, 0.3, 0.2))[0],
        validate=rng.random() < 0.6,
        enumerate=rng.random() < 0.5,
        probe=rng.random() < 0.5,
        concurrency=rng.choice((1, 1, 2, 4, 8, 16)),
        prompt_words=(low_words, low_words * rng.randint(2, 8)),
        max_tokens=(low_out, low_out * rng.randint(1, 4)),
    )


def _attack(key: str, at_s: float, stage: str, **fields: object) -> Step:
    return Step(
        at_s=at_s,
        key=key,
        scenario="campaign",
        stage=stage,
        malicious=True,
        detector="llmjacking",
        **fields,  # type: ignore[arg-type]
    )


def _rate(params: CampaignParams, progress: float) -> float:
    if params.ramp == "linear":
        return params.peak_rate * (0.1 + 0.9 * progress)
    return params.peak_rate  # burst: at once; low and slow: steady


def campaign_steps(
    rng: random.Random, victim: NormalKey, params: CampaignParams, start_s: float
) -> Iterator[Step]:
    """The attacker's requests on `victim`'s key, from `start_s`, in time order."""
    key = victim.spec.name
    networks = [
        network_in(rng, params.regions[i % len(params.regions)]) for i in range(params.networks)
    ]
    agents = (
        [victim.user_agent]
        if params.copy_user_agent
        else rng.sample(PROXY_USER_AGENTS + SCRIPT_USER_AGENTS, rng.randint(1, 3))
    )
    checker_ip, checker_agent = host_in(rng, rng.choice(networks)), agents[0]

    def check(at_s: float, stage: str, model: str, text: str, max_tokens: int) -> Step:
        return _attack(
            key,
            at_s,
            stage,
            model=model,
            messages=({"role": "user", "content": text},),
            max_tokens=max_tokens,
            client_ip=checker_ip,
            user_agent=checker_agent,
        )

    at_s = start_s
    if params.validate:
        for _ in range(rng.randint(1, 3)):
            yield check(at_s, "validate", rng.choice(CHEAP_MODELS), "hi", 1)
            at_s += rng.uniform(0.3, 3.0)
    if params.enumerate:
        yield _attack(
            key, at_s, "enumerate", action="models", client_ip=checker_ip, user_agent=checker_agent
        )
        for model in rng.sample(ENUMERATED_MODELS, rng.randint(3, 12)):
            at_s += rng.uniform(0.1, 2.0)
            yield check(at_s, "enumerate", model, "ping", 1)
    if params.probe:
        for _ in range(rng.randint(1, 4)):
            at_s += rng.uniform(0.2, 2.0)
            yield check(at_s, "probe", rng.choice(EXPENSIVE_MODELS), "test", -1)
    start = at_s + rng.uniform(0.5, 30.0)
    at_s = last = start
    models = {
        "expensive": EXPENSIVE_MODELS,
        "mixed": EXPENSIVE_MODELS + _USUAL_MODELS,
        "victim": _USUAL_MODELS,
    }[params.models]
    while True:
        progress = min((at_s - start) / params.duration_s, 1.0)
        at_s += rng.expovariate(max(_rate(params, progress) / params.concurrency, 1e-3))
        if at_s >= start + params.duration_s:
            return
        # A batch sent at once by parallel workers, a few milliseconds apart (in order).
        for offset in sorted(rng.uniform(0, 0.05) for _ in range(params.concurrency)):
            last = max(last, at_s + offset)
            yield _attack(
                key,
                last,
                "ramp",
                model=rng.choice(models),
                messages=({"role": "user", "content": make_prompt(rng, *params.prompt_words)},),
                max_tokens=rng.randint(*params.max_tokens),
                stream=rng.random() < 0.5,
                client_ip=host_in(rng, rng.choice(networks)),
                user_agent=rng.choice(agents),
            )


@dataclass(frozen=True)
class LegitChange:
    kind: str  # one of LEGIT_CHANGES
    duration_s: float
    factor: float  # batch spike: times the key's usual rate


def draw_legit_change(rng: random.Random) -> LegitChange:
    return LegitChange(
        kind=rng.choice(LEGIT_CHANGES),
        duration_s=rng.uniform(120.0, 600.0),
        factor=_log_uniform(rng, 5.0, 30.0),
    )


def legit_change_steps(
    rng: random.Random, key: NormalKey, change: LegitChange, start_s: float, rate: float
) -> Iterator[Step]:
    """`key`'s traffic from `start_s`, changed as `change` says, at `rate` requests per
    second (times `factor` for a batch spike); its usual traffic goes on beside it."""
    home = key.hosts[0].rsplit(".", 1)[0]
    network = {
        "new_network": network_in(rng, _region_of(home)),
        "new_region": network_in(rng, rng.choice([r for r in REGIONS if r != "hosting"])),
    }.get(change.kind, home)
    hosts = [host_in(rng, network) for _ in range(3)]
    upgrade = rng.choice(_UPGRADES) if change.kind == "model_upgrade" else None
    per_s = rate * (change.factor if change.kind == "batch_spike" else 1.0)
    at_s = start_s
    while True:
        at_s += rng.expovariate(max(per_s, 1e-3))
        if at_s >= start_s + change.duration_s:
            return
        usual = rng.choices(_USUAL_MODELS, _USUAL_WEIGHTS)[0]
        yield Step(
            at_s=at_s,
            key=key.spec.name,
            scenario="campaign",
            stage=f"legit-{change.kind}",
            model=upgrade or usual,
            messages=({"role": "user", "content": make_prompt(rng, 8, 120)},),
            max_tokens=rng.randint(16, 256),
            client_ip=rng.choice(hosts),
            user_agent=key.user_agent,
        )


def _region_of(network: str) -> str:
    first = int(network.split(".", 1)[0])
    return next((r for r, octets in REGIONS.items() if first in octets), "us-east")
