"""Deterministic embeddings that behave like real ones where tests need it: texts that
share most of their words and letter sequences are close (cosine near 1), unrelated
texts are not. Each lowercased word and each character 3-gram is hashed (BLAKE2b) to one
of `dimensions` coordinates with a sign (feature hashing); the sum is scaled to unit
length. Token ids (lists of ints) are hashed the same way, one feature per id. Pure."""

from __future__ import annotations

import hashlib
import math
import re
from typing import Any

__all__ = ["DEFAULT_DIMENSIONS", "MAX_DIMENSIONS", "embed"]

DEFAULT_DIMENSIONS = 256
MAX_DIMENSIONS = 3072
_WORD = re.compile(r"\w+")


def _features(item: Any) -> list[str]:
    if isinstance(item, list):
        return [f"id:{value}" for value in item]
    text = item.lower() if isinstance(item, str) else repr(item)
    words = _WORD.findall(text)
    squashed = " ".join(words)
    grams = [squashed[i : i + 3] for i in range(max(0, len(squashed) - 2))]
    return [*(f"w:{w}" for w in words), *(f"g:{g}" for g in grams)] or [f"raw:{text}"]


def embed(item: Any, dimensions: int = DEFAULT_DIMENSIONS) -> list[float]:
    vector = [0.0] * dimensions
    for feature in _features(item):
        digest = hashlib.blake2b(feature.encode(), digest_size=8).digest()
        number = int.from_bytes(digest, "big")
        vector[number % dimensions] += 1.0 if number >> 63 else -1.0
    norm = math.sqrt(sum(v * v for v in vector)) or 1.0
    return [round(v / norm, 6) for v in vector]
