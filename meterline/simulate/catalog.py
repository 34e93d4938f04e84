"""The simulated world: tenants, models, networks, user agents, words.

Addresses are synthetic but shaped like real traffic: each region owns a few first octets,
a network is one /24 in a region, and a host is an address in it.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

__all__ = [
    "CHEAP_MODELS",
    "DEMO_MODELS",
    "DEMO_TENANTS",
    "ENUMERATED_MODELS",
    "EXPENSIVE_MODELS",
    "PROXY_USER_AGENTS",
    "REGIONS",
    "SCRIPT_USER_AGENTS",
    "SERVED_MODELS",
    "host_in",
    "network_in",
    "prompt",
]

# org -> team -> projects; enough variety for every showback grouping to mean something.
DEMO_TENANTS: dict[str, dict[str, list[str]]] = {
    "acme": {"search": ["web", "api"], "support": ["helpdesk-bot"], "data": ["etl"]},
    "globex": {"research": ["summarizer", "papers"], "marketing": ["copywriter"]},
    "initech": {"platform": ["code-review"], "finance": ["invoices"]},
    "umbrella": {"legal": ["contracts"], "ops": ["runbooks"]},
}
# (model, weight) of everyday traffic. The last one is a self-hosted model no price list
# knows: the demo prices it with its own override (meterline.runtime.DEMO_PRICE_OVERRIDES).
DEMO_MODELS: list[tuple[str, float]] = [
    ("gpt-4o-mini", 0.45),
    ("gpt-4o", 0.2),
    ("gpt-4.1-nano", 0.15),
    ("claude-3-5-haiku-latest", 0.15),
    ("acme-local-7b", 0.05),
]
CHEAP_MODELS = ["gpt-4o-mini", "gpt-4.1-nano"]
# What stolen keys are resold for: the most expensive models the org has.
EXPENSIVE_MODELS = ["gpt-4o", "o1", "claude-3-opus-latest", "gpt-4-turbo"]
# Every model the demo provider serves; anything else is a 404 at the gateway.
SERVED_MODELS = sorted({m for m, _ in DEMO_MODELS} | set(EXPENSIVE_MODELS))
# Names an attacker tries when enumerating, across vendors and naming schemes.
ENUMERATED_MODELS = [
    "gpt-4",
    "gpt-4-32k",
    "gpt-4o",
    "o1",
    "o1-preview",
    "claude-3-opus-latest",
    "claude-3-opus-20240229",
    "anthropic.claude-v2",
    "claude-2.1",
    "gemini-1.5-pro",
    "mistral-large-latest",
    "gpt-4-turbo",
    "text-davinci-003",
    "llama-3-70b-instruct",
]

# region -> first octets of its networks
REGIONS: dict[str, tuple[int, ...]] = {
    "us-east": (23, 34, 54),
    "us-west": (13, 44, 52),
    "eu-west": (18, 63, 81),
    "eu-central": (3, 85, 91),
    "ap-south": (43, 103, 122),
    "ap-east": (47, 119, 150),
    "sa-east": (177, 179, 186),
    "hosting": (45, 146, 185, 193),  # VPS providers: where scripts and proxies run
}

# Scripts validating a key, and the reverse proxies that resell access to it.
SCRIPT_USER_AGENTS = ["python-requests/2.31.0", "curl/8.5.0", "Go-http-client/1.1"]
PROXY_USER_AGENTS = [
    "oai-reverse-proxy/1.0",
    "SillyTavern/1.12.0",
    "axios/1.6.8",
    "node-fetch/1.0",
    "undici",
]

_WORDS = (
    "invoice", "customer", "refund", "policy", "summarize", "translate", "classify", "ticket",
    "latency", "cluster", "report", "quarterly", "revenue", "forecast", "draft", "email",
    "review", "pull", "request", "explain", "error", "log", "contract", "clause", "deploy",
    "rollback", "incident", "metric", "budget", "vendor", "onboarding", "schema",
)  # fmt: skip


def network_in(rng: random.Random, region: str) -> str:
    """A /24 in `region`, as its first three octets (`a.b.c`)."""
    first = rng.choice(REGIONS[region])
    return f"{first}.{rng.randint(0, 255)}.{rng.randint(0, 255)}"


def host_in(rng: random.Random, network: str) -> str:
    return f"{network}.{rng.randint(2, 254)}"


def prompt(rng: random.Random, low: int, high: int, words: Sequence[str] | None = None) -> str:
    return " ".join(rng.choices(words or _WORDS, k=rng.randint(low, high)))
