"""`normal`: several orgs, teams and keys at work, with a daily rhythm compressed in time.

Each key is one application: it calls from one to three home networks (office, cloud
region, CI) under its own user agent, mostly the same few models, in sessions.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass

from meterline.simulate.catalog import DEMO_MODELS, DEMO_TENANTS, REGIONS, host_in, network_in
from meterline.simulate.catalog import prompt as make_prompt
from meterline.simulate.plan import KeySpec, Step

__all__ = ["NormalKey", "normal_keys", "normal_steps", "rhythm"]

_HOME_REGIONS = [r for r in REGIONS if r != "hosting"]
_TOOLS = ("lookup_order", "search_docs", "get_weather", "run_sql", "fetch_ticket")


@dataclass(frozen=True, slots=True)
class NormalKey:
    spec: KeySpec
    hosts: tuple[str, ...]  # addresses in its home /24s (NAT egress, runners)
    user_agent: str
    weight: float  # share of the traffic
    uses_tools: bool


def normal_keys(rng: random.Random) -> list[NormalKey]:
    keys = []
    for org, teams in DEMO_TENANTS.items():
        home = rng.choice(_HOME_REGIONS)
        for team, projects in teams.items():
            for project in projects:
                for index in range(rng.randint(1, 2)):
                    name = f"{org}-{project}-{index + 1}"
                    regions = [home, *rng.sample(_HOME_REGIONS, 2)]
                    networks = [network_in(rng, regions[i]) for i in range(rng.randint(1, 3))]
                    hosts = tuple(
                        host_in(rng, network)
                        for network in networks
                        for _ in range(rng.randint(1, 3))
                    )
                    agent = (
                        f"{org}-{project}/{rng.randint(1, 4)}.{rng.randint(0, 9)} "
                        f"openai-python/1.{rng.randint(40, 60)}.{rng.randint(0, 9)}"
                    )
                    user = f"{team}-svc{index + 1}@{org}.example"
                    keys.append(
                        NormalKey(
                            KeySpec(name, org, team, project, user),
                            hosts,
                            agent,
                            rng.uniform(0.3, 3.0),
                            uses_tools=rng.random() < 0.3,
                        )
                    )
    return keys


def rhythm(elapsed_s: float, day_length_s: float) -> float:
    """Traffic multiplier over a compressed day: quiet nights, busy afternoons."""
    phase = (elapsed_s % day_length_s) / day_length_s
    return 0.35 + 0.65 * (0.5 - 0.5 * math.cos(2 * math.pi * phase))


def _step(rng: random.Random, at_s: float, key: NormalKey, session_len_s: float) -> Step:
    models, weights = zip(*DEMO_MODELS, strict=True)
    # A session lasts a while, then the app starts another one.
    session = f"{key.spec.name}-s{rng.randint(1, 3)}-{int(at_s // session_len_s)}"
    tools: tuple[dict[str, object], ...] = ()
    if key.uses_tools and rng.random() < 0.5:
        names = rng.sample(_TOOLS, 2)
        tools = tuple({"type": "function", "function": {"name": n}} for n in names)
    return Step(
        at_s=at_s,
        key=key.spec.name,
        scenario="normal",
        stage="normal",
        model=rng.choices(models, weights)[0],
        messages=({"role": "user", "content": make_prompt(rng, 8, 120)},),
        max_tokens=rng.randint(16, 256),
        stream=rng.random() < 0.3,
        tools=tools,
        client_ip=rng.choice(key.hosts),
        user_agent=key.user_agent,
        session_id=session,
    )


def normal_steps(
    rng: random.Random,
    keys: list[NormalKey],
    *,
    rate: float,
    duration_s: float,
    day_length_s: float,
    session_len_s: float = 60.0,
) -> Iterator[Step]:
    """Poisson arrivals at `rate` x rhythm; forever when `duration_s` <= 0."""
    weights = [key.weight for key in keys]
    at_s = 0.0
    while True:
        at_s += rng.expovariate(max(rate * rhythm(at_s, day_length_s), 0.01))
        if 0 < duration_s <= at_s:
            return
        yield _step(rng, at_s, rng.choices(keys, weights)[0], session_len_s)
