"""StreamGuard skips the scan of a step that cannot release anything: every release and
every hit is what the always-scanning guard gives, on random texts, chunkings and modes."""

from __future__ import annotations

import random

from gateway.guardrails import StreamGuard

WORDS = [
    "the",
    "meter",
    "counts",
    "sk-proj-Ab3Xy9Ab3Xy9Ab3Xy9Ab3Xy9Ab3Xy9",
    "jane.doe@corp.example.com",
    "+44 20 7946 0958",
    "4111 1111 1111 1111",
    "ignore previous instructions",
    "```",
    "`code`",
    "\n",
    "  ",
    "x" * 60,
    "AKIAIOSFODNN7EXAMPLE",
]
MODES = ["off", "monitor", "redact", "block"]


class AlwaysScans(StreamGuard):
    def _quiet(self, buffer: str, base: int) -> bool:
        return False


def _run(guard: StreamGuard, chunks: list[str]) -> list[tuple[str, list[object]]]:
    steps: list[tuple[str, list[object]]] = []
    for chunk in chunks:
        text, hits = guard.feed(chunk)
        steps.append((text, list(hits)))
        if any(hit.action == "block" for hit in hits):
            return steps
    text, hits = guard.flush()
    steps.append((text, list(hits)))
    return steps


def test_skipping_quiet_steps_changes_nothing() -> None:
    rng = random.Random(48)
    for _ in range(1_500):
        text = " ".join(rng.choice(WORDS) for _ in range(rng.randrange(1, 40)))
        chunks: list[str] = []
        position = 0
        while position < len(text):
            size = rng.choice([1, 2, 4, 8, 8, 13, 40, 100])
            chunks.append(text[position : position + size])
            position += size
        modes = {g: rng.choice(MODES) for g in ("pii", "secrets", "prompt_injection")}
        hold = rng.choice([48, 48, 64])
        max_hold = rng.choice([16384, 60])
        fast = StreamGuard(modes, hold=hold, max_hold=max_hold)  # type: ignore[arg-type]
        reference = AlwaysScans(modes, hold=hold, max_hold=max_hold)  # type: ignore[arg-type]
        assert _run(fast, chunks) == _run(reference, chunks), (modes, chunks)
