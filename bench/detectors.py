"""Detector cost per event: each detector's pure logic on one core, no Kafka, no Faust.

Builds realistic RequestEvents once (the simulator's normal world plus one drawn LLMjacking
campaign and two legitimate changes, as `meterline eval detections` makes them, with
prompt hashes and signatures like the gateway's), then feeds them to each detector in
turn and reports its CPU time per event (process time: this process only, one thread)
and events per second on one core. Detectors are the production defaults; the
LLMjacking one enforces, so the attacked key is blocked and its later requests are
refused, as in the stack.

    .venv/bin/python bench/detectors.py [--events 50000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import hashlib
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime

from meterline.evaluate.draws import T0, request_event
from meterline.settings import AgentLoopSettings, DriftSettings, LlmjackingSettings
from meterline.simulate.plan import merge_steps
from meterline.simulate.scenarios.campaign import campaign_steps, draw_campaign
from meterline.simulate.scenarios.normal import normal_keys, normal_steps
from processors.agentloop.logic import KIND as LOOP_KIND
from processors.agentloop.logic import AgentLoopDetector
from processors.drift.logic import DriftDetector
from processors.llmjacking.logic import KIND as JACKING_KIND
from processors.llmjacking.logic import LlmjackingDetector
from processors.llmjacking.policy import PolicyBook
from processors.llmjacking.tiers import ModelTiers
from schemas.events.v1 import RequestEvent
from schemas.signature import prompt_signature


def build_events(count: int, seed: int = 1) -> list[RequestEvent]:
    rng = random.Random(seed)
    keys = normal_keys(random.Random(f"{seed}:keys"))
    by_name = {k.spec.name: k for k in keys}
    rate = 20.0  # requests/s: `count` events span count / 20 seconds of event time
    world = normal_steps(rng, keys, rate=rate, duration_s=count / rate, day_length_s=600.0)
    victim = max(keys, key=lambda k: k.weight)
    attack = campaign_steps(rng, victim, draw_campaign(rng), start_s=0.6 * count / rate)
    events = []
    for number, step in enumerate(merge_steps(world, attack)):
        if number >= count:
            break
        event = request_event(step, by_name[step.key], f"r{number}", rng)
        text = " ".join(str(m.get("content") or "") for m in step.messages)
        events.append(
            event.model_copy(
                update={
                    "prompt_hash": hashlib.sha256(text.encode()).hexdigest()[:32],
                    "prompt_signature": prompt_signature(text),
                }
            )
        )
    return events


def _now() -> datetime:
    return T0.astimezone(UTC)


def detectors() -> dict[str, Callable[[RequestEvent], object]]:
    jacking = LlmjackingDetector(
        LlmjackingSettings(), PolicyBook(JACKING_KIND, "enforce"), ModelTiers(), now=_now
    )
    loops = AgentLoopDetector(AgentLoopSettings(), PolicyBook(LOOP_KIND, "monitor"), now=_now)
    drift = DriftDetector(DriftSettings())
    return {
        "llmjacking": jacking.observe,
        "agent_loop": loops.observe_request,
        "drift": drift.observe,
    }


def measure(events: list[RequestEvent], repeat: int) -> dict[str, float]:
    """Best CPU microseconds per event of each detector over `repeat` fresh runs."""
    best: dict[str, float] = {}
    for _ in range(repeat):
        for name, observe in detectors().items():
            started = time.process_time()
            for event in events:
                observe(event)
            spent = (time.process_time() - started) / len(events) * 1e6
            best[name] = min(best.get(name, spent), spent)
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    events = build_events(args.events)
    print(f"{len(events)} events ({sum(e.status_code >= 400 for e in events)} failed)")
    for name, micros in measure(events, args.repeat).items():
        print(f"{name:11s} {micros:8.1f} us CPU/event  {1e6 / micros:10,.0f} events/s on one core")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
