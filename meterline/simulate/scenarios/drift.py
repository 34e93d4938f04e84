"""`drift`: one app's prompts change after a baseline (longer, different content).

A support bot starts receiving pasted logs instead of short customer questions: prompt
length jumps and the vocabulary moves. The app is named by `x-meterline-app`, so the
drift detector's scope is `app:<app>/model:<model>`.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass

from meterline.simulate.catalog import host_in, network_in
from meterline.simulate.catalog import prompt as make_prompt
from meterline.simulate.plan import KeySpec, Step

__all__ = ["DriftParams", "drift_keys", "drift_steps"]

KEY = "acme-supportbot-1"
APP = "acme-support-bot"
_QUESTIONS = (
    "order", "refund", "shipping", "password", "account", "invoice", "delivery", "return",
    "cancel", "address", "thanks", "help", "late", "missing", "charge",
)  # fmt: skip
_LOGS = (
    "ERROR", "Traceback", "stack", "0x7ffe", "segfault", "timeout", "retrying", "pod",
    "OOMKilled", "kernel", "panic", "GET", "/api/v2", "500", "upstream", "nginx", "worker",
)  # fmt: skip


@dataclass(frozen=True)
class DriftParams:
    rate: float = 3.0
    shift_at_s: float = 60.0  # baseline before, shifted after
    duration_s: float = 120.0
    model: str = "gpt-4o-mini"


def drift_keys() -> list[KeySpec]:
    return [KeySpec(KEY, "acme", "support", "support-bot", "bot@acme.example")]


def drift_steps(rng: random.Random, params: DriftParams) -> Iterator[Step]:
    hosts = [host_in(rng, network_in(rng, "us-east")) for _ in range(2)]
    at_s = 0.0
    while True:
        at_s += rng.expovariate(params.rate)
        if at_s >= params.duration_s:
            return
        shifted = at_s >= params.shift_at_s
        text = make_prompt(rng, 200, 600, _LOGS) if shifted else make_prompt(rng, 8, 40, _QUESTIONS)
        yield Step(
            at_s=at_s,
            key=KEY,
            scenario="drift",
            stage="shifted" if shifted else "baseline",
            malicious=shifted,
            detector="drift" if shifted else None,
            model=params.model,
            messages=({"role": "user", "content": text},),
            max_tokens=rng.randint(64, 256),
            client_ip=rng.choice(hosts),
            user_agent="acme-support-bot/3.2 openai-python/1.50.0",
            app=APP,
        )
