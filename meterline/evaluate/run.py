"""`meterline eval detections`: score the detectors against cases with ground truth.

By default (`run_draws`), many drawn cases per detector against its pure logic, in
process: LLMjacking campaigns (draws.py), runaway and legitimate agent sessions
(agentloop_draws.py), drift scopes shifted or stable (drift_draws.py).

With `--stack` (`run_eval`): starts the embedded stack with the mock provider (or uses a
running gateway), puts the detectors in `enforce` for the attacked orgs, runs the `mixed`
scenario with labels, waits for the pipeline to settle, reads anomalies and decisions
back from their topics and prints precision, recall, false-positive rate and
time/requests/dollars to detection and to block, per detector.
"""

from __future__ import annotations

import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TypeVar

from meterline.clients import AdminClient, ClientError
from meterline.evaluate.agentloop_draws import AgentDrawConfig, agentloop_draw
from meterline.evaluate.agentloop_summary import format_agentloop, summarize_agentloop
from meterline.evaluate.collect import Collected, collect
from meterline.evaluate.draws import DrawConfig, llmjacking_draw
from meterline.evaluate.drift_draws import DriftDrawConfig, draws_per_category, drift_draw
from meterline.evaluate.drift_summary import format_drift, summarize_drift
from meterline.evaluate.scoring import DetectorScore, score
from meterline.evaluate.summary import format_llmjacking, summarize_llmjacking
from meterline.ports import free_port
from meterline.settings import ProviderConfig, Settings, merged
from meterline.simulate import SimulationConfig, SimulationResult, build_plan, simulate
from meterline.simulate.catalog import SERVED_MODELS
from meterline.simulate.send import admin_failure
from processors.llmjacking.tiers import ModelTiers
from schemas.subjects import org_subject

__all__ = [
    "EvalConfig",
    "EvalReport",
    "eval_stack_settings",
    "evaluate_detections",
    "format_report",
    "run_draws",
    "run_eval",
]

LOOPBACK = ["127.0.0.0/8", "::1/128"]
_T = TypeVar("_T")


@dataclass
class EvalConfig:
    seed: int = 7
    duration_s: float = 90.0
    rate: float = 5.0
    scenario: str = "mixed"
    settle_s: float = 10.0  # after the last request: let detectors and decisions land
    labels_path: Path | None = None
    policy_kinds: tuple[str, ...] = ("llmjacking", "agent_loop")


@dataclass
class EvalReport:
    scores: dict[str, DetectorScore]
    simulation: SimulationResult
    collected: Collected
    policies: list[str] = field(default_factory=list)  # how enforce was set, for the reader
    labels_path: Path | None = None


def eval_stack_settings(settings: Settings, data_dir: Path, **overrides: object) -> Settings:
    """The embedded stack an evaluation runs against: its own ports, topics and data, the
    mock provider serving only the simulated catalogue (anything else is a 404), and the
    simulator's loopback hop trusted to name the clients it plays."""
    mock_port = free_port()
    values: dict[str, object] = {
        "data_dir": data_dir,
        "kafka_bootstrap": None,
        "clickhouse_url": None,
        "gateway_url": None,
        "read_api_url": None,
        "topic_prefix": f"eval{uuid.uuid4().hex[:8]}.",
        "gateway_port": free_port(span=8),
        "ingest_port": free_port(),
        "processors_port": free_port(span=8),
        "broker_port": free_port(),
        "mock_provider_port": mock_port,
        "gateway": {"trusted_proxies": LOOPBACK},
        "processors": {
            "app_id": f"eval-procs-{uuid.uuid4().hex[:8]}",
            # The simulator compresses a day into minutes; the detectors' time constants are
            # scaled the same way (production keeps the defaults: 5 min windows, a key
            # mature after 30 requests over 10 minutes, learned a minute after it is seen).
            "llmjacking": {
                "window_s": 60.0,
                "learning_requests": 10,
                "learning_s": 20.0,
                "probation_s": 5.0,
            },
        },
        "ingest": {"sink": {"group_id": f"eval-sink-{uuid.uuid4().hex[:8]}"}},
        "providers": [
            ProviderConfig(
                name="mock",
                base_url=f"http://{settings.host}:{mock_port}/v1",
                models=SERVED_MODELS,
            )
        ],
    }
    return type(settings).model_validate(merged(settings.model_dump(), merged(values, overrides)))


def attacked_orgs(config: SimulationConfig, kinds: tuple[str, ...]) -> set[str]:
    """Orgs whose keys the plan attacks (plans are deterministic: build it once more)."""
    plan = build_plan(config)
    orgs = {spec.name: spec.org for spec in plan.keys}
    steps = plan.take(until_s=config.duration_s if config.duration_s > 0 else None)
    return {orgs[s.key] for s in steps if s.malicious and s.detector in kinds}


# What "enforce" means for each detector's policy: block the stolen key; block the session.
ENFORCING_MODE = {"llmjacking": "enforce", "agent_loop": "block"}


def enforce(
    settings: Settings, gateway_url: str, orgs: set[str], kinds: tuple[str, ...]
) -> list[str]:
    """Detectors enforcing for `orgs`, set through the gateway admin API (POST
    /admin/policies), which publishes the PolicyRecords the processors read."""
    done = []
    try:
        with AdminClient.from_settings(settings, base_url=gateway_url) as admin:
            for org in sorted(orgs):
                for kind in kinds:
                    policy = admin.set_policy(org_subject(org), kind, ENFORCING_MODE[kind])
                    done.append(f"{kind} {policy['mode']} for org:{org}")
    except ClientError as exc:
        raise RuntimeError(admin_failure(exc)) from exc
    return done


def evaluate_detections(
    settings: Settings, config: EvalConfig, gateway_url: str | None = None
) -> EvalReport:
    """Run the scenario against the gateway of `settings` and score what came back."""
    url = gateway_url or settings.resolved_gateway_url
    sim = SimulationConfig(
        config.scenario,
        rate=config.rate,
        duration_s=config.duration_s,
        seed=config.seed,
        gateway_url=url,
        labels_path=config.labels_path,
    )
    policies = enforce(settings, url, attacked_orgs(sim, config.policy_kinds), config.policy_kinds)
    for line in policies:
        print(f"eval: policy: {line}", flush=True)
    result = simulate(settings, sim)
    print(f"eval: traffic done ({result.stats.line()}); settling {config.settle_s:g}s", flush=True)
    time.sleep(config.settle_s)
    collected = collect(settings)
    scores = score(result.labels, collected.detections, collected.requests)
    return EvalReport(scores, result, collected, policies, config.labels_path)


def _num(value: float | None, unit: str = "", digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}{unit}"


def format_report(scores: dict[str, DetectorScore]) -> str:
    lines = []
    for name, s in scores.items():
        lines.append(
            f"{name}: precision {_num(s.precision)}  recall {_num(s.recall)}  "
            f"FPR {_num(s.false_positive_rate, digits=3)}  "
            f"(positives {s.positives}, detected {s.true_positives}, "
            f"false positives {s.false_positives} of {s.negatives})"
        )
        lines.append(
            f"  median to detect: {_num(s.median('detected_after_s'), 's', 1)}, "
            f"{_num(s.median('requests_to_detect'), ' requests', 0)}, "
            f"${_num(s.median('usd_to_detect'), digits=4)};  "
            f"to block: {_num(s.median('blocked_after_s'), 's', 1)}, "
            f"{_num(s.median('requests_to_block'), ' requests', 0)}, "
            f"${_num(s.median('usd_to_block'), digits=4)}"
        )
        for t in s.timings:
            lines.append(
                f"    {t.subject}: detected +{_num(t.detected_after_s, 's', 1)} "
                f"({t.requests_to_detect} req, ${_num(float(t.usd_to_detect or 0), digits=4)}), "
                f"blocked +{_num(t.blocked_after_s, 's', 1)}"
            )
        for subject in s.missed_subjects:
            lines.append(f"    missed: {subject}")
        for subject in s.false_positive_subjects:
            lines.append(f"    false positive: {subject}")
    return "\n".join(lines)


def run_draws(settings: Settings, seeds: list[int], draws: int) -> int:
    """CLI entry: `draws` drawn cases per seed and detector (LLMjacking campaigns, runaway
    agent sessions, drift shifts) against the detectors' pure logic, with the configured
    detector settings (fixed before the first draw), then the distributions."""
    if draws < 1 or not seeds:
        print("eval: --draws must be at least 1 and --seeds name one seed", file=sys.stderr)
        return 2
    started = time.monotonic()
    config = DrawConfig(detector=settings.processors.llmjacking)
    tiers = ModelTiers(settings.price_overrides)
    cases = [(seed, index) for seed in seeds for index in range(draws)]
    campaigns = _run("llmjacking", [partial(llmjacking_draw, *c, config, tiers) for c in cases])
    print(format_llmjacking(summarize_llmjacking(campaigns)), flush=True)
    loops_config = AgentDrawConfig(detector=settings.processors.agent_loop)
    loops = _run("agent loops", [partial(agentloop_draw, *c, loops_config) for c in cases])
    print(format_agentloop(summarize_agentloop(loops)), flush=True)
    drift_config = DriftDrawConfig(detector=settings.processors.drift)
    scopes = [
        partial(drift_draw, seed, index, category, drift_config)
        for seed in seeds
        for category, count in draws_per_category(draws).items()
        for index in range(count)
    ]
    print(format_drift(summarize_drift(_run("drift", scopes))))
    total = len(campaigns) + len(loops) + len(scopes)
    print(f"eval: {total} draws in {time.monotonic() - started:.0f}s", flush=True)
    return 0


def _run(name: str, draws: list[Callable[[], _T]]) -> list[_T]:
    """Each draw in turn; progress on stderr every 10 draws, so a long run shows it lives."""
    started = time.monotonic()
    results: list[_T] = []
    for number, draw in enumerate(draws, 1):
        results.append(draw())
        if number % 10 == 0 or number == len(draws):
            elapsed = time.monotonic() - started
            print(f"eval: {name}: {number}/{len(draws)} draws, {elapsed:.0f}s", file=sys.stderr)
    return results


def run_eval(settings: Settings, config: EvalConfig, gateway_url: str | None = None) -> int:
    """CLI entry: against `gateway_url` (and the configured broker), or a fresh stack."""
    from meterline.runtime import Stack

    stack = None
    try:
        if gateway_url is None:
            data_dir = Path(tempfile.mkdtemp(prefix="meterline-eval-"))
            stack = Stack(eval_stack_settings(settings, data_dir), mock_provider=True)
            stack.start()
            settings = stack.settings
        report = evaluate_detections(settings, config, gateway_url)
    except RuntimeError as exc:
        print(f"eval failed: {exc}", file=sys.stderr)
        return 1
    finally:
        if stack is not None:
            stack.stop()
    print(format_report(report.scores))
    return 0
