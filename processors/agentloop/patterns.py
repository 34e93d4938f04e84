"""Step patterns of a loop: repeats, short cycles, near-duplicate prompts. Pure.

A step is a token: a tool call (name + normalized-argument hash) or, for a step without
tool calls, its prompt hash. A cycle of period p (A->B->A->B->A for p=2, A->B->C->A->B->C->A
for p=3) is reported once the last 2p+1 tokens repeat with period p and hold p distinct
tokens; period 1 is the plain repeat, counted separately over a longer history.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from schemas.signature import signature_mass

__all__ = ["cycle_of", "near_duplicate", "signature_similarity"]

_PERIODS = (2, 3)


def cycle_of(tokens: Sequence[str], max_steps: int) -> tuple[str, ...] | None:
    """The repeating cycle at the end of `tokens`, if any, of a period whose detection
    takes at most `max_steps` repeated steps (the first round is honest: a period-p cycle
    is seen after p + 1 repetitions)."""
    for period in _PERIODS:
        span = 2 * period + 1
        if span - period > max_steps or len(tokens) < span:
            continue
        tail = tokens[-span:]
        if len(set(tail)) != period:
            continue
        if all(tail[i] == tail[i + period] for i in range(span - period)):
            return tuple(tail[:period])
    return None


def signature_similarity(first: str, second: str) -> float | None:
    """1 - total variation distance of two prompt signatures; None if either is malformed."""
    try:
        a, b = signature_mass(first), signature_mass(second)
    except ValueError:
        return None
    return float(1 - 0.5 * np.abs(a - b).sum())


def near_duplicate(
    previous: tuple[str | None, str | None, int],
    current: tuple[str | None, str | None, int],
    similarity: float,
) -> bool:
    """(prompt_hash, prompt_signature, prompt_chars) of two consecutive prompts.

    Equal hashes are duplicates. Otherwise both need a signature at least `similarity`
    alike AND nearly the same length: a conversation that grows by a tool result each
    step keeps a similar signature, but it grows, while a rephrased retry does not.
    """
    (hash_a, sig_a, chars_a), (hash_b, sig_b, chars_b) = previous, current
    if hash_a is not None and hash_a == hash_b:
        return True
    if sig_a is None or sig_b is None:
        return False
    same_length = abs(chars_a - chars_b) <= max(8, 0.002 * max(chars_a, chars_b))
    if not same_length:
        return False
    alike = signature_similarity(sig_a, sig_b)
    return alike is not None and alike >= similarity
