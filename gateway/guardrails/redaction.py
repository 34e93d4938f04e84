"""Masking findings in text, and the excerpt an event may carry.

An excerpt never holds the secret or the personal data: at most 4 characters of the
value (and never more than a quarter of it) followed by `…[REDACTED]`. Prompt injection
phrases are not secret: their excerpt is the matched phrase itself, truncated.
"""

from __future__ import annotations

from collections.abc import Iterable

from gateway.guardrails.taxonomy import Finding

__all__ = ["excerpt", "mask", "redact"]

_KEEP_MAX = 4
_PHRASE_MAX = 80
_NOT_SECRET = frozenset({"prompt_injection"})


def mask(category: str) -> str:
    return f"[REDACTED:{category}]"


def redact(text: str, findings: Iterable[Finding]) -> str:
    """`text` with every finding replaced by `[REDACTED:<category>]`; overlapping findings
    (of different guardrails) are merged under the first one's category."""
    spans = sorted((f.start, f.end, f.category) for f in findings)
    if not spans:
        return text
    parts: list[str] = []
    position = 0
    for start, end, category in spans:
        if start < position:  # overlaps what was masked already: extend that mask
            if end > position:
                position = end
            continue
        parts.append(text[position:start])
        parts.append(mask(category))
        position = end
    parts.append(text[position:])
    return "".join(parts)


def excerpt(text: str, finding: Finding) -> str:
    value = text[finding.start : finding.end]
    if finding.guardrail in _NOT_SECRET:
        return value[:_PHRASE_MAX]
    keep = min(_KEEP_MAX, len(value) // 4)
    return value[:keep] + "…[REDACTED]"
