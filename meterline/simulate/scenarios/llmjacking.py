"""`llmjacking`: a leaked key is checked, mapped, probed, then resold at growing volume.

The tradecraft seen in the wild, in order: a script validates the key with a cheap call
within minutes of the leak; the attacker enumerates models (GET /v1/models, then calls to
many model names, most of them 404s) and probes with invalid requests (`max_tokens: -1`,
a 400 that costs nothing but proves the key works); then a reverse proxy resells access,
and volume ramps from many new networks across regions towards the most expensive models.
Every stage is optional, and its timing and intensity are parameters. The key's owner
keeps working meanwhile: a block stops both.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field

from meterline.simulate.catalog import (
    CHEAP_MODELS,
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

__all__ = ["LLMjackingParams", "llmjacking_steps"]

_ROLEPLAY = (
    "character", "persona", "scene", "story", "roleplay", "continue", "describe", "dialogue",
    "narrator", "world", "chapter", "tavern", "knight", "dragon", "quest", "emotion", "voice",
    "detailed", "immersive",
)  # fmt: skip


@dataclass(frozen=True)
class LLMjackingParams:
    start_s: float = 20.0  # the first malicious request, from the start of the run
    validate: bool = True
    validate_calls: int = 2
    enumerate: bool = True
    enumerate_after_s: float = 4.0  # after the validation
    enumerate_models: int = 10  # chat calls to model names; plus one GET /v1/models
    enumerate_gap_s: float = 0.4
    probe: bool = True
    probe_after_s: float = 2.0  # after enumeration
    probe_calls: int = 3
    ramp: bool = True
    ramp_after_s: float = 3.0  # after the probes
    ramp_duration_s: float = 40.0
    ramp_start_rate: float = 0.5  # requests per second
    ramp_end_rate: float = 4.0
    ramp_networks: int = 24  # distinct /24s the resold traffic comes from
    ramp_regions: tuple[str, ...] = field(
        default=("us-east", "eu-west", "ap-south", "sa-east", "hosting")
    )
    ramp_max_tokens: tuple[int, int] = (1024, 4096)


def _attack(key: str, at_s: float, stage: str, **fields: object) -> Step:
    return Step(
        at_s=at_s,
        key=key,
        scenario="llmjacking",
        stage=stage,
        malicious=True,
        detector="llmjacking",
        **fields,  # type: ignore[arg-type]
    )


def llmjacking_steps(rng: random.Random, key: str, params: LLMjackingParams) -> Iterator[Step]:
    """The attacker's requests on the stolen key `key` (a KeySpec name), in time order."""
    checker_ip = host_in(rng, network_in(rng, "hosting"))
    script = rng.choice(SCRIPT_USER_AGENTS)
    at_s = params.start_s  # a cursor: each stage starts after the previous one
    if params.validate:
        for _ in range(params.validate_calls):
            yield _attack(
                key,
                at_s,
                "validate",
                model=rng.choice(CHEAP_MODELS),
                messages=({"role": "user", "content": "hi"},),
                max_tokens=1,
                client_ip=checker_ip,
                user_agent=script,
            )
            at_s += 0.5
        at_s += params.enumerate_after_s
    if params.enumerate:
        yield _attack(
            key, at_s, "enumerate", action="models", client_ip=checker_ip, user_agent=script
        )
        count = min(params.enumerate_models, len(ENUMERATED_MODELS))
        for model in rng.sample(ENUMERATED_MODELS, count):
            at_s += params.enumerate_gap_s
            yield _attack(
                key,
                at_s,
                "enumerate",
                model=model,
                messages=({"role": "user", "content": "ping"},),
                max_tokens=1,
                client_ip=checker_ip,
                user_agent=script,
            )
        at_s += params.probe_after_s
    if params.probe:
        for _ in range(params.probe_calls):
            yield _attack(
                key,
                at_s,
                "probe",
                model=rng.choice(EXPENSIVE_MODELS),
                messages=({"role": "user", "content": "test"},),
                max_tokens=-1,  # a validation error: free, and it proves the key is live
                client_ip=checker_ip,
                user_agent=script,
            )
            at_s += 0.5
        at_s += params.ramp_after_s
    if params.ramp:
        yield from _ramp(rng, key, params, at_s)


def _ramp(rng: random.Random, key: str, params: LLMjackingParams, start: float) -> Iterator[Step]:
    regions = params.ramp_regions
    unknown = [region for region in regions if region not in REGIONS]
    if unknown:
        raise ValueError(f"unknown regions {unknown}; known: {sorted(REGIONS)}")
    networks = [network_in(rng, regions[i % len(regions)]) for i in range(params.ramp_networks)]
    at_s = start
    while True:
        progress = min((at_s - start) / max(params.ramp_duration_s, 1e-9), 1.0)
        rate = params.ramp_start_rate + (params.ramp_end_rate - params.ramp_start_rate) * progress
        at_s += rng.expovariate(max(rate, 0.01))
        if at_s >= start + params.ramp_duration_s:
            return
        # Later in the ramp, more of the traffic reaches the expensive models.
        expensive = rng.random() < 0.5 + 0.5 * progress
        yield _attack(
            key,
            at_s,
            "ramp",
            model=rng.choice(EXPENSIVE_MODELS if expensive else CHEAP_MODELS),
            messages=(
                {"role": "system", "content": make_prompt(rng, 60, 200, _ROLEPLAY)},
                {"role": "user", "content": make_prompt(rng, 20, 120, _ROLEPLAY)},
            ),
            max_tokens=rng.randint(*params.ramp_max_tokens),
            stream=rng.random() < 0.6,
            client_ip=host_in(rng, rng.choice(networks)),
            user_agent=rng.choice(PROXY_USER_AGENTS),
        )
