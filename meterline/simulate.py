"""Traffic simulator (`meterline simulate SCENARIO`): real requests through the gateway.

It creates virtual keys through the admin API and calls the gateway with the official
openai SDK, so every request takes the same path as a user's. Deterministic for a seed.
"""

from __future__ import annotations

import asyncio
import math
import random
import sys
import time
from dataclasses import dataclass, field

import httpx
from openai import APIStatusError, AsyncOpenAI, OpenAIError

from meterline.settings import Settings

__all__ = ["DEMO_TENANTS", "SimulatedKey", "SimulationConfig", "run_simulation"]

# org -> team -> projects; enough variety for every showback grouping to mean something.
DEMO_TENANTS: dict[str, dict[str, list[str]]] = {
    "acme": {"search": ["web", "api"], "support": ["helpdesk-bot"]},
    "globex": {"research": ["summarizer"], "marketing": ["copywriter"]},
    "initech": {"platform": ["code-review"]},
}
# (model, weight). The last one is a self-hosted model no price list knows: it shows up
# as unpriced usage, never as free.
DEMO_MODELS: list[tuple[str, float]] = [
    ("gpt-4o-mini", 0.45),
    ("gpt-4o", 0.2),
    ("gpt-4.1-nano", 0.15),
    ("claude-3-5-haiku-latest", 0.15),
    ("acme-local-7b", 0.05),
]
_WORDS = [
    "invoice",
    "customer",
    "refund",
    "policy",
    "summarize",
    "translate",
    "classify",
    "ticket",
    "latency",
    "cluster",
    "report",
    "quarterly",
    "revenue",
    "forecast",
    "draft",
    "email",
    "review",
    "pull",
    "request",
    "explain",
    "error",
    "log",
]


@dataclass
class SimulationConfig:
    scenario: str
    rate: float = 5.0
    duration_s: float = 60.0  # 0 runs until interrupted
    seed: int = 7
    gateway_url: str = "http://127.0.0.1:8080"
    day_length_s: float = 600.0  # one simulated day, compressed


@dataclass
class SimulatedKey:
    key_id: str
    secret: str
    org: str
    team: str
    project: str
    user: str


@dataclass
class _Stats:
    sent: int = 0
    ok: int = 0
    refused: dict[int, int] = field(default_factory=dict)
    failed: int = 0


def _create_keys(settings: Settings, config: SimulationConfig) -> list[SimulatedKey]:
    token = settings.admin_token.get_secret_value() if settings.admin_token else ""
    keys = []
    with httpx.Client(base_url=config.gateway_url, timeout=10.0) as client:
        for org, teams in DEMO_TENANTS.items():
            for team, projects in teams.items():
                for index, project in enumerate(projects):
                    user = f"{team}-user{index + 1}@{org}.example"
                    body = {"org": org, "team": team, "project": project, "user": user}
                    response = client.post(
                        "/admin/keys", json=body, headers={"Authorization": f"Bearer {token}"}
                    )
                    if response.status_code != 201:
                        raise RuntimeError(
                            f"creating a key failed ({response.status_code}): {response.text}. "
                            "Is METERLINE_ADMIN_TOKEN the gateway's admin token?"
                        )
                    data = response.json()
                    keys.append(SimulatedKey(data["key_id"], data["key"], org, team, project, user))
    return keys


def _rhythm(elapsed_s: float, day_length_s: float) -> float:
    """Traffic multiplier over a compressed day: quiet nights, busy afternoons."""
    phase = (elapsed_s % day_length_s) / day_length_s
    return 0.35 + 0.65 * (0.5 - 0.5 * math.cos(2 * math.pi * phase))


async def _one_request(
    rng: random.Random, client: AsyncOpenAI, key: SimulatedKey, stats: _Stats
) -> None:
    models, weights = zip(*DEMO_MODELS, strict=True)
    model = rng.choices(models, weights)[0]
    prompt = " ".join(rng.choices(_WORDS, k=rng.randint(8, 120)))
    stream = rng.random() < 0.3
    headers = {"x-session-id": f"{key.key_id}-s{rng.randint(1, 20)}"}
    stats.sent += 1
    try:
        if stream:
            chunks = await client.chat.completions.create(
                model=model,
                messages=[{"role": "user", "content": prompt}],
                max_tokens=rng.randint(16, 256),
                stream=True,
                extra_headers=headers,
            )
            async for _ in chunks:
                pass
        else:
            await client.chat.completions.create(
                model=model,
                messages=[{"role": "user", "content": prompt}],
                max_tokens=rng.randint(16, 256),
                extra_headers=headers,
            )
        stats.ok += 1
    except APIStatusError as exc:
        stats.refused[exc.status_code] = stats.refused.get(exc.status_code, 0) + 1
    except OpenAIError:
        stats.failed += 1


async def _simulate_normal(config: SimulationConfig, keys: list[SimulatedKey]) -> _Stats:
    rng = random.Random(config.seed)
    stats = _Stats()
    clients = {
        key.key_id: AsyncOpenAI(
            base_url=f"{config.gateway_url}/v1", api_key=key.secret, max_retries=0, timeout=30.0
        )
        for key in keys
    }
    # Some keys are busier than others, as in any real organisation.
    key_weights = [rng.uniform(0.2, 3.0) for _ in keys]
    started = time.monotonic()
    last_report = started
    pending: set[asyncio.Task[None]] = set()
    while config.duration_s <= 0 or time.monotonic() - started < config.duration_s:
        elapsed = time.monotonic() - started
        rate = max(config.rate * _rhythm(elapsed, config.day_length_s), 0.01)
        await asyncio.sleep(rng.expovariate(rate))
        key = rng.choices(keys, key_weights)[0]
        task = asyncio.create_task(_one_request(rng, clients[key.key_id], key, stats))
        pending.add(task)
        task.add_done_callback(pending.discard)
        if time.monotonic() - last_report >= 10:
            last_report = time.monotonic()
            print(
                f"simulate: {stats.sent} sent, {stats.ok} ok, refused {stats.refused}, "
                f"{stats.failed} failed",
                flush=True,
            )
    if pending:
        await asyncio.wait(pending, timeout=30)
    for client in clients.values():
        await client.close()
    return stats


def run_simulation(settings: Settings, config: SimulationConfig) -> int:
    if config.scenario != "normal":
        print(f"unknown scenario {config.scenario!r}; available: normal", file=sys.stderr)
        return 2
    keys = _create_keys(settings, config)
    print(f"simulate: created {len(keys)} keys across {len(DEMO_TENANTS)} orgs", flush=True)
    try:
        stats = asyncio.run(_simulate_normal(config, keys))
    except KeyboardInterrupt:
        return 0
    print(
        f"simulate: done: {stats.sent} sent, {stats.ok} ok, refused {stats.refused}, "
        f"{stats.failed} failed"
    )
    return 0
