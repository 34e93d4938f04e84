"""`scan(text, guardrails)`: every finding of the given guardrails in one text.

Cheap first: a detector runs only if its prefilter passes (a literal it needs), patterns
start with a literal where possible (so `re` searches for it in C instead of trying every
position), and patterns of one shape share a single candidate pass (`Gate`). Validators
(Luhn, mod-97, ...) see candidates only. Within one guardrail, overlapping findings are
resolved by the taxonomy's order (a card number is not also a phone number).
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Iterable

from gateway.guardrails.taxonomy import DETECTORS, Detector, Finding, Gate

__all__ = ["code_spans", "lower_same_length", "scan"]

_FENCE = "```"
_INLINE_CODE = re.compile(r"`[^`\n]+`")
_SEPARATORS = " ().-"  # what a digit run may contain besides digits (taxonomy._DIGIT_RUN)
_CAPITAL = re.compile(r"[A-Z]")
_WORD = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")


def code_spans(text: str, in_fence: bool = False) -> list[tuple[int, int]]:
    """Sorted (start, end) regions that are code: from an odd ``` to the next one
    (`in_fence`: the text starts inside a fence), or an inline `span` within one line."""
    spans: list[tuple[int, int]] = []
    position = 0
    open_at = 0 if in_fence else -1
    while True:
        fence = text.find(_FENCE, position)
        if open_at < 0:
            prose_end = len(text) if fence < 0 else fence
            spans.extend(m.span() for m in _INLINE_CODE.finditer(text, position, prose_end))
        if fence < 0:
            break
        if open_at >= 0:
            spans.append((open_at, fence + 3))
            open_at = -1
        else:
            open_at = fence
        position = fence + 3
    if open_at >= 0:
        spans.append((open_at, len(text)))
    return spans


def lower_same_length(text: str) -> str:
    """`text.lower()`, keeping offsets: the few characters whose lower case is longer
    (e.g. 'İ') stay as they are."""
    lowered = text.lower()
    if len(lowered) == len(text):
        return lowered
    return "".join(c if len(low := c.lower()) != 1 else low for c in text)


class _Scan:
    """State of one scan: lazily computed views of the text shared by all detectors."""

    __slots__ = ("_code", "_lowered", "in_fence", "text")

    def __init__(self, text: str, in_fence: bool) -> None:
        self.text = text
        self.in_fence = in_fence
        self._lowered: str | None = None
        self._code: list[tuple[int, int]] | None = None

    @property
    def lowered(self) -> str:
        if self._lowered is None:
            self._lowered = lower_same_length(self.text)
        return self._lowered

    def in_code(self, position: int) -> bool:
        if self._code is None:
            self._code = code_spans(self.text, self.in_fence)
        spans = self._code
        index = bisect_right(spans, (position, 1 << 62)) - 1
        return index >= 0 and spans[index][0] <= position < spans[index][1]

    def run(self, guardrail: str, detector: Detector, accepted: list[Finding]) -> None:
        subject = self.lowered if detector.lowered else self.text
        if detector.literals and not any(lit in subject for lit in detector.literals):
            return
        for match in detector.pattern.finditer(subject):
            self.consider(guardrail, detector, match, accepted)

    def run_gate(self, guardrail: str, gate: Gate, accepted: list[Finding]) -> None:
        text = self.text
        size = len(text)
        detectors = gate.detectors
        for candidate in gate.finder.finditer(text):
            start, end = candidate.span()
            run = candidate.group()
            digits = len(run) - sum(map(run.count, _SEPARATORS))
            capital = _CAPITAL.search(text, max(0, start - 10), start) is not None
            chosen = tuple(
                i
                for i, d in enumerate(detectors)
                if digits >= d.min_digits and (capital or not d.after_capital)
            )
            if not chosen:
                continue
            pattern, before, after = gate.plan(chosen)
            window_end = min(size, end + after)
            for match in pattern.finditer(text, max(0, start - before), window_end):
                # A match reaching the end of its window may be cut short there: a later
                # candidate's window sees it whole.
                if match.end() == window_end < size:
                    continue
                detector = detectors[int(match.lastgroup[1:])]  # type: ignore[index]
                self.consider(guardrail, detector, match, accepted)

    def consider(
        self, guardrail: str, detector: Detector, match: re.Match[str], accepted: list[Finding]
    ) -> None:
        span = detector.check(match) if detector.check else match.span()
        if span is None:
            return
        start, end = span
        if detector.word_start and start and self.text[start - 1] in _WORD:
            return
        if detector.skip_in_code and self.in_code(start):
            return
        if any(start < f.end and f.start < end for f in accepted):
            return
        accepted.append(Finding(guardrail, detector.category, detector.confidence, start, end))


def _any_literal(guardrail: str, lowered: bool) -> re.Pattern[str] | None:
    literals = {
        literal
        for rule in DETECTORS[guardrail]
        if isinstance(rule, Detector) and rule.literals and rule.lowered == lowered
        for literal in rule.literals
    }
    return re.compile("|".join(map(re.escape, sorted(literals)))) if literals else None


# Per guardrail, one search for any detector's literal: a short text (a stream window)
# skips every literal-gated detector at the cost of one call instead of one check each.
# Long texts check each literal (`in` is faster than the alternation over kilobytes).
_ANY_LITERAL = {g: (_any_literal(g, False), _any_literal(g, True)) for g in DETECTORS}
_SHORT = 1024


def scan(text: str, guardrails: Iterable[str], *, in_fence: bool = False) -> list[Finding]:
    state = _Scan(text, in_fence)
    findings: list[Finding] = []
    for guardrail in guardrails:
        accepted: list[Finding] = []
        plain, lowered = _ANY_LITERAL[guardrail]
        literal_seen = (
            len(text) > _SHORT
            or (plain is not None and plain.search(text) is not None)
            or (lowered is not None and lowered.search(state.lowered) is not None)
        )
        for rule in DETECTORS[guardrail]:
            if isinstance(rule, Gate):
                state.run_gate(guardrail, rule, accepted)
            elif literal_seen or not rule.literals:
                state.run(guardrail, rule, accepted)
        findings.extend(accepted)
    return findings
