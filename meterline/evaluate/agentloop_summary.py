"""Agent-loop figures over many draws (agentloop_draws.py), as `meterline eval detections`
prints them. Pure.

Recall is the share of runaway sessions flagged after their loop began; "within target"
the share caught within `target` repeated steps (loop steps after the loop's first round).
Repeated steps to catch are p50 / p95 / max over the caught ones. A legitimate session
flagged at all is a false positive, told apart by what flagged it: a loop signal, or only
a limit (steps, tokens, dollars: budgets the detector enforces by design).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from meterline.evaluate.agentloop_draws import AgentLoopDraw, SessionResult
from meterline.evaluate.summary import percentile

__all__ = ["LOOP_SIGNALS", "AgentLoopSummary", "format_agentloop", "summarize_agentloop"]

LOOP_SIGNALS = frozenset({"repeated_tool_call", "oscillation", "near_duplicate_prompts"})
_SHOWN = 15  # missed runaways and flagged legitimate sessions listed, at most


@dataclass(frozen=True)
class LoopRow:
    sessions: int
    caught: int
    in_target: int
    repeats: tuple[float | None, float | None, float | None]  # p50, p95, max


@dataclass(frozen=True)
class LegitRow:
    sessions: int
    flagged: int
    by_loop_signal: int


@dataclass
class AgentLoopSummary:
    draws: int
    seeds: list[int]
    target: int
    recall: float
    loop_signal_recall: float  # caught by a loop signal (not a limit alone)
    in_target: float
    recall_by_seed: dict[int, float]
    by_kind: dict[str, LoopRow]
    by_variant: dict[str, dict[str, LoopRow]]  # kind -> variant -> row
    by_channel: dict[str, LoopRow]
    caught_by: Counter[str]
    early: int  # runaways flagged during their honest warm-up
    legit: int
    fp_loop: int  # legitimate sessions flagged by a loop signal
    fp_limits: int  # ... by a limit only
    fp_blocked: int
    fp_by_kind: dict[str, LegitRow]
    fp_by_via: dict[str, LegitRow]
    missed: list[tuple[AgentLoopDraw, SessionResult]]
    false_positives: list[tuple[AgentLoopDraw, SessionResult]]

    @property
    def fp(self) -> int:
        return self.fp_loop + self.fp_limits


def _loop_row(results: Sequence[SessionResult], target: int) -> LoopRow:
    repeats = [float(r.repeats) for r in results if r.repeats is not None]
    return LoopRow(
        len(results),
        len(repeats),
        sum(r <= target for r in repeats),
        (percentile(repeats, 50), percentile(repeats, 95), max(repeats, default=None)),
    )


def _legit_row(results: Sequence[SessionResult]) -> LegitRow:
    flagged = [r for r in results if r.flagged]
    return LegitRow(len(results), len(flagged), sum(_by_loop(r) for r in flagged))


def _by_loop(result: SessionResult) -> bool:
    return bool(LOOP_SIGNALS.intersection(result.signals))


def summarize_agentloop(results: Sequence[AgentLoopDraw], target: int = 5) -> AgentLoopSummary:
    loops = [d.loop for d in results]
    legit = [(d, s) for d in results for s in d.legit]
    seeds = sorted({d.seed for d in results})
    kinds: dict[str, list[SessionResult]] = defaultdict(list)
    variants: dict[str, dict[str, list[SessionResult]]] = defaultdict(lambda: defaultdict(list))
    channels: dict[str, list[SessionResult]] = defaultdict(list)
    for loop in loops:
        kinds[loop.kind].append(loop)
        variants[loop.kind][loop.variant].append(loop)
        channels[loop.channel].append(loop)
    legit_kinds: dict[str, list[SessionResult]] = defaultdict(list)
    legit_via: dict[str, list[SessionResult]] = defaultdict(list)
    for _, session in legit:
        legit_kinds[session.kind].append(session)
        legit_via[session.via].append(session)
    flagged = [(d, s) for d, s in legit if s.flagged]
    overall = _loop_row(loops, target)
    return AgentLoopSummary(
        draws=len(results),
        seeds=seeds,
        target=target,
        recall=overall.caught / max(1, overall.sessions),
        loop_signal_recall=sum(_by_loop(loop) for loop in loops) / max(1, len(loops)),
        in_target=overall.in_target / max(1, overall.sessions),
        recall_by_seed={
            seed: _loop_row([d.loop for d in results if d.seed == seed], target).caught
            / max(1, sum(d.seed == seed for d in results))
            for seed in seeds
        },
        by_kind={kind: _loop_row(rows, target) for kind, rows in sorted(kinds.items())},
        by_variant={
            kind: {name: _loop_row(rows, target) for name, rows in sorted(named.items())}
            for kind, named in variants.items()
        },
        by_channel={name: _loop_row(rows, target) for name, rows in sorted(channels.items())},
        caught_by=Counter(signal for loop in loops if loop.flagged for signal in loop.signals),
        early=sum(bool(loop.early_signals) for loop in loops),
        legit=len(legit),
        fp_loop=sum(_by_loop(s) for _, s in flagged),
        fp_limits=sum(not _by_loop(s) for _, s in flagged),
        fp_blocked=sum(s.blocked for _, s in legit),
        fp_by_kind={kind: _legit_row(rows) for kind, rows in sorted(legit_kinds.items())},
        fp_by_via={via: _legit_row(rows) for via, rows in sorted(legit_via.items())},
        missed=[(d, d.loop) for d in results if d.loop.repeats is None or d.loop.repeats > target],
        false_positives=flagged,
    )


def _n(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def format_agentloop(s: AgentLoopSummary) -> str:
    seeds = ", ".join(f"{seed}: {recall:.2f}" for seed, recall in s.recall_by_seed.items())
    lines = [
        f"agent loops: {s.draws} runaway sessions and {s.legit} legitimate ones, seeds "
        f"{', '.join(map(str, s.seeds))} (detector: production defaults, policy block)",
        f"  recall (flagged after the loop began) {s.recall:.3f}  [by seed {seeds}];  by a "
        f"loop signal {s.loop_signal_recall:.3f};  within {s.target} repeated steps "
        f"{s.in_target:.3f}",
        "  by loop kind (repeated steps to catch p50 / p95 / max):",
    ]
    rows = [
        row
        for kind, total in s.by_kind.items()
        for row in [(kind, total), *((f"  {v}", r) for v, r in s.by_variant[kind].items())]
    ]
    for name, row in [*rows, *((f"via {k}", v) for k, v in s.by_channel.items())]:
        p50, p95, most = row.repeats
        lines.append(
            f"    {name:<16} {row.sessions:3d} sessions: caught {row.caught:3d}, within "
            f"{s.target} {row.in_target:3d};  steps {_n(p50)} / {_n(p95)} / {_n(most)}"
        )
    lines.append(
        "  caught by: "
        + ", ".join(f"{signal} {count}" for signal, count in s.caught_by.most_common())
        + f";  runaways flagged during their honest warm-up: {s.early}"
    )
    lines.append(
        f"  false-positive legitimate sessions: {s.fp} of {s.legit} flagged "
        f"(by a loop signal {s.fp_loop}, by a limit only {s.fp_limits}), {s.fp_blocked} blocked"
    )
    for title, rows in (("by kind", s.fp_by_kind), ("by channel", s.fp_by_via)):
        lines.append(
            f"    {title}: "
            + "; ".join(
                f"{name} {row.flagged}/{row.sessions} ({row.by_loop_signal} loop signal)"
                for name, row in rows.items()
            )
        )
    for draw, loop in s.missed[:_SHOWN]:
        caught = (
            f"caught after {loop.repeats} repeated steps by {', '.join(loop.signals)}"
            if loop.flagged
            else f"not flagged in {loop.steps - (loop.loop_start or 1) + 1} loop steps"
        )
        if loop.early_signals:
            caught += f" (flagged during its warm-up by {', '.join(loop.early_signals)})"
        lines.append(
            f"  missed: seed {draw.seed} draw {draw.index}: {loop.kind} ({loop.variant}) via "
            f"{loop.via}, warm-up {loop.params.get('warmup')} steps: {caught}"
        )
    if len(s.missed) > _SHOWN:
        lines.append(f"  ... and {len(s.missed) - _SHOWN} more missed")
    for draw, session in s.false_positives[:_SHOWN]:
        lines.append(
            f"  false positive: seed {draw.seed} draw {draw.index}: {session.kind} via "
            f"{session.via}, {session.steps} steps, flagged at step {session.flagged_step} by "
            f"{', '.join(session.signals)}"
        )
    if len(s.false_positives) > _SHOWN:
        lines.append(f"  ... and {len(s.false_positives) - _SHOWN} more false positives")
    return "\n".join(lines)
