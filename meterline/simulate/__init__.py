"""Traffic simulator (`meterline simulate SCENARIO`): real requests through the gateway.

A scenario turns a seed into a plan (`scenarios/`), decided before anything is sent and
deterministic for the seed; `send.py` creates the plan's keys through the admin API and
sends its steps with the official openai SDK, so every request takes a user's path, and
`labels.py` writes the ground truth the evaluation (`meterline eval`) scores against.
"""

from __future__ import annotations

import asyncio
import sys
from dataclasses import dataclass

from meterline.settings import Settings
from meterline.simulate.config import SimulationConfig
from meterline.simulate.labels import GroundTruth, Label, read_labels, write_labels
from meterline.simulate.plan import BudgetSpec, KeySpec, Plan, Step
from meterline.simulate.scenarios import SCENARIOS, build_plan
from meterline.simulate.send import CreatedKey, SendStats, create_keys, send_plan

__all__ = [
    "SCENARIOS",
    "BudgetSpec",
    "CreatedKey",
    "KeySpec",
    "Label",
    "Plan",
    "SendStats",
    "SimulationConfig",
    "SimulationResult",
    "Step",
    "build_plan",
    "read_labels",
    "run_simulation",
    "simulate",
]


@dataclass
class SimulationResult:
    labels: list[Label]
    stats: SendStats
    keys: dict[str, CreatedKey]


def simulate(settings: Settings, config: SimulationConfig) -> SimulationResult:
    """Plan, create keys, send; the labels are written even when interrupted."""
    plan = build_plan(config)
    keys = create_keys(settings, config, plan)
    print(
        f"simulate {config.scenario}: {len(keys)} keys, {len(plan.budgets)} budgets, "
        f"seed {config.seed}, {config.rate:g} req/s normal traffic, "
        + (f"{config.duration_s:g}s" if config.duration_s > 0 else "until Ctrl-C"),
        flush=True,
    )
    truth = GroundTruth()
    stats = SendStats()
    try:
        stats = asyncio.run(send_plan(plan, config, keys, truth))
    finally:
        labels = truth.sorted()
        if config.labels_path is not None:
            write_labels(config.labels_path, labels)
            bad = sum(label.malicious for label in labels)
            print(
                f"simulate: labels: {len(labels)} subjects ({bad} malicious) -> "
                f"{config.labels_path}",
                flush=True,
            )
    return SimulationResult(labels, stats, keys)


def run_simulation(settings: Settings, config: SimulationConfig) -> int:
    if config.scenario not in SCENARIOS:
        print(
            f"unknown scenario {config.scenario!r}; available: {', '.join(SCENARIOS)}",
            file=sys.stderr,
        )
        return 2
    if config.duration_s <= 0 and config.scenario != "normal":
        print("attack scenarios need a --duration to place their stages in", file=sys.stderr)
        return 2
    try:
        result = simulate(settings, config)
    except KeyboardInterrupt:
        return 0
    except RuntimeError as exc:
        print(f"simulate: {exc}", file=sys.stderr)
        return 1
    print(f"simulate: done: {result.stats.line()}", flush=True)
    return 0
