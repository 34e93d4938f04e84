"""The guardrails step of the hot path (ARCHITECTURE §8): scan, then monitor, redact or
block, per the modes the request's key resolves to.

- input: the text of every message (string content and text parts; `input` strings for
  embeddings) before forwarding; prompt injection only in untrusted messages (user, tool).
- output: a non-streaming answer's message contents before returning it, and streamed
  content deltas through a `StreamGuard` per choice (held back, masked, or the stream
  ended with an OpenAI-shaped error event).
Every verdict that is not a pass becomes one GuardrailEvent (per guardrail, stage and
category and request) on the guardrails topic, through the same non-blocking emitter as
RequestEvents, and a GuardrailSummary in the RequestEvent.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import Any

import orjson

from gateway.errors import GuardrailBlocked
from gateway.guardrails.policies import GuardrailPolicies
from gateway.guardrails.redaction import excerpt, redact
from gateway.guardrails.scanner import scan
from gateway.guardrails.stream import Hit, StreamGuard
from gateway.guardrails.taxonomy import INPUT_ONLY, Finding, Stage
from gateway.metrics import Metrics
from gateway.record import RequestRecord, iso_ms
from meterline.settings import Settings
from schemas.events.v1 import SCHEMA_VERSION
from schemas.ids import new_event_id
from schemas.policies import GUARDRAILS, GuardrailMode
from schemas.topics import GUARDRAILS as GUARDRAILS_TOPIC

__all__ = ["FINDINGS_COUNTER", "TRUNCATED_COUNTER", "Guardrails"]

FINDINGS_COUNTER = "meterline_gateway_guardrail_findings_total"
TRUNCATED_COUNTER = "meterline_gateway_guardrail_truncated_total"

Emit = Callable[[str, bytes, bytes], None]
Slot = tuple[Any, Any, bool]  # (container, key, untrusted): container[key] is one text

_TRUSTED_ROLES = frozenset({"system", "developer", "assistant"})
_DONE = b"[DONE]"


def _input_slots(body: dict[str, Any], field: str) -> list[Slot]:
    slots: list[Slot] = []
    value = body.get(field)
    if field != "messages":  # embeddings: a string or a list of strings
        if isinstance(value, str):
            slots.append((body, field, False))
        elif isinstance(value, list):
            slots.extend((value, i, False) for i, item in enumerate(value) if isinstance(item, str))
        return slots
    for message in value:
        untrusted = message.get("role") not in _TRUSTED_ROLES
        content = message.get("content")
        if isinstance(content, str):
            slots.append((message, "content", untrusted))
        elif isinstance(content, list):
            for part in content:
                if isinstance(part, dict) and isinstance(part.get("text"), str):
                    slots.append((part, "text", untrusted))
    return slots


def _blocked(finding: Finding, stage: Stage, param: str | None) -> GuardrailBlocked:
    what = "request" if stage == "input" else "response"
    return GuardrailBlocked(
        f"the {what} was blocked by the {finding.guardrail} guardrail "
        f"(category {finding.category})",
        guardrail=finding.guardrail,
        category=finding.category,
        param=param,
    )


def _sse(chunk: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(chunk) + b"\n\n"


class Guardrails:
    """**Parameters:** `settings` (default modes, stream hold, scan limit, topic prefix),
    `emit` (the emitter's non-blocking `emit(topic, key, value)`), `metrics`."""

    def __init__(self, settings: Settings, emit: Emit, metrics: Metrics) -> None:
        self.policies = GuardrailPolicies(settings.guardrail_modes)
        self._topic = settings.topic(GUARDRAILS_TOPIC)
        self._emit = emit
        self._metrics = metrics
        self._hold = settings.guardrail_stream_hold_chars
        self._max_scan = settings.guardrail_max_scan_chars
        metrics.counter(FINDINGS_COUNTER, "Guardrail findings, by guardrail, stage and action.")
        metrics.counter(TRUNCATED_COUNTER, "Texts longer than guardrail_max_scan_chars.")

    def modes(self, record: RequestRecord) -> dict[str, GuardrailMode]:
        return self.policies.modes(record.key.subjects if record.key else ())

    # --- input ----------------------------------------------------------------------

    def check_input(
        self, record: RequestRecord, body: dict[str, Any], field: str, raw: bytes
    ) -> bytes:
        """The body to forward: `raw`, or the re-serialized body with masked texts.
        Raises GuardrailBlocked (after reporting) when a blocking guardrail finds something."""
        modes = self.modes(record)
        active = tuple(g for g in GUARDRAILS if modes[g] != "off")
        if not active:
            return raw
        trusted = tuple(g for g in active if g not in INPUT_ONLY)
        changed = False
        blocking: Finding | None = None
        for container, key, untrusted in _input_slots(body, field):
            text = container[key]
            masked, block = self._check_text(
                record, "input", text, active if untrusted else trusted, modes
            )
            blocking = blocking or block
            if masked is not None:
                container[key] = masked
                changed = True
        if blocking is not None:
            raise _blocked(blocking, "input", field)
        return orjson.dumps(body) if changed else raw

    # --- output ---------------------------------------------------------------------

    def check_output(self, record: RequestRecord, response: Any, data: bytes) -> bytes:
        """The answer to return: `data`, or the re-serialized answer with masked contents."""
        modes = self.modes(record)
        active = tuple(g for g in GUARDRAILS if modes[g] != "off" and g not in INPUT_ONLY)
        choices = response.get("choices") if isinstance(response, dict) else None
        if not active or not isinstance(choices, list):
            return data
        changed = False
        blocking: Finding | None = None
        for choice in choices:
            message = choice.get("message") if isinstance(choice, dict) else None
            if not isinstance(message, dict) or not isinstance(message.get("content"), str):
                continue
            masked, block = self._check_text(record, "output", message["content"], active, modes)
            blocking = blocking or block
            if masked is not None:
                message["content"] = masked
                changed = True
        if blocking is not None:
            raise _blocked(blocking, "output", None)
        return orjson.dumps(response) if changed else data

    def guard_stream(
        self, record: RequestRecord, events: AsyncGenerator[bytes, None]
    ) -> AsyncGenerator[bytes, None]:
        """`events` itself when no output guardrail is on; else a generator that holds
        back, masks or (raising GuardrailBlocked) stops the streamed content."""
        modes = {g: m for g, m in self.modes(record).items() if m != "off" and g not in INPUT_ONLY}
        if not modes:
            return events
        rewrite = any(m in ("redact", "block") for m in modes.values())
        return self._guarded(record, events, modes, rewrite)

    async def _guarded(
        self,
        record: RequestRecord,
        events: AsyncGenerator[bytes, None],
        modes: dict[str, GuardrailMode],
        rewrite: bool,
    ) -> AsyncIterator[bytes]:
        guards: dict[int, StreamGuard] = {}
        template: dict[str, Any] = {}
        try:
            async for event in events:
                payload = event[5:].strip() if event.startswith(b"data:") else b""
                if payload == _DONE:
                    yield self._flush(record, guards, template, rewrite) + event
                    continue
                try:
                    chunk = orjson.loads(payload) if payload else None
                except orjson.JSONDecodeError:
                    chunk = None
                choices = chunk.get("choices") if isinstance(chunk, dict) else None
                if not choices or not isinstance(choices, list):
                    yield event  # usage, comments, other lines: no content to judge
                    continue
                template = chunk  # type: ignore[assignment]
                changed = False
                for choice in choices:
                    if isinstance(choice, dict):
                        changed |= self._guard_choice(record, choice, guards, modes) and rewrite
                yield _sse(chunk) if changed else event  # type: ignore[arg-type]
            tail = self._flush(record, guards, template, rewrite)
            if tail:
                yield tail
        finally:
            await events.aclose()

    def _guard_choice(
        self,
        record: RequestRecord,
        choice: dict[str, Any],
        guards: dict[int, StreamGuard],
        modes: dict[str, GuardrailMode],
    ) -> bool:
        """Feed one choice's delta through its guard; True if its content changed."""
        delta = choice.get("delta")
        content = delta.get("content") if isinstance(delta, dict) else None
        finished = choice.get("finish_reason") is not None
        if not isinstance(content, str) and not finished:
            return False
        index = choice.get("index") if isinstance(choice.get("index"), int) else 0
        guard = guards.get(index)  # type: ignore[arg-type]
        if guard is None:
            guard = guards[index] = StreamGuard(modes, hold=self._hold)  # type: ignore[index]
        released, hits = guard.feed(content) if isinstance(content, str) else ("", [])
        if finished:
            tail, more = guard.flush()
            released, hits = released + tail, hits + more
            del guards[index]  # type: ignore[arg-type]
        self._settle(record, hits)
        if released == (content or ""):
            return False
        if not isinstance(delta, dict):
            delta = choice["delta"] = {}
        delta["content"] = released
        return True

    def _flush(
        self,
        record: RequestRecord,
        guards: dict[int, StreamGuard],
        template: dict[str, Any],
        rewrite: bool,
    ) -> bytes:
        """What the guards still hold, as chunks shaped like the stream's last one."""
        out = b""
        for index, guard in sorted(guards.items()):
            text, hits = guard.flush()
            self._settle(record, hits)
            if rewrite and text:
                choice = {"index": index, "delta": {"content": text}, "finish_reason": None}
                out += _sse({**template, "choices": [choice]})
        guards.clear()
        return out

    def _settle(self, record: RequestRecord, hits: list[Hit]) -> None:
        blocking = None
        for hit in hits:
            self._report(record, "output", hit.finding, hit.action, hit.excerpt)
            if hit.action == "block" and blocking is None:
                blocking = hit.finding
        if blocking is not None:
            raise _blocked(blocking, "output", None)

    # --- shared ---------------------------------------------------------------------

    def _check_text(
        self,
        record: RequestRecord,
        stage: Stage,
        text: str,
        guardrails: tuple[str, ...],
        modes: dict[str, GuardrailMode],
    ) -> tuple[str | None, Finding | None]:
        """(masked text or None if unchanged, first blocking finding or None)."""
        if len(text) > self._max_scan:
            self._metrics.inc(TRUNCATED_COUNTER, f'stage="{stage}"')
            findings = scan(text[: self._max_scan], guardrails)
        else:
            findings = scan(text, guardrails)
        if not findings:
            return None, None
        masked: list[Finding] = []
        blocking = None
        for finding in findings:
            action = modes[finding.guardrail]
            self._report(record, stage, finding, action, excerpt(text, finding))
            if action == "block":
                blocking = blocking or finding
            elif action == "redact":
                masked.append(finding)
        if masked and blocking is None:
            return redact(text, masked), None
        return None, blocking

    def _report(
        self,
        record: RequestRecord,
        stage: Stage,
        finding: Finding,
        action: GuardrailMode,
        snippet: str,
    ) -> None:
        """One event per guardrail, stage and category of a request (the first finding's)."""
        summary = {
            "guardrail": finding.guardrail,
            "stage": stage,
            "action": action,
            "category": finding.category,
        }
        if summary in record.guardrails:
            return
        record.guardrails.append(summary)
        self._metrics.inc(
            FINDINGS_COUNTER,
            f'guardrail="{finding.guardrail}",stage="{stage}",action="{action}"',
        )
        key = record.key
        event = {
            "event_id": new_event_id(),
            "event_type": "guardrail",
            "schema_version": SCHEMA_VERSION,
            "ts": iso_ms(time.time()),
            "source": "gateway",
            "request_id": record.request_id,
            "key_id": key.key_id if key else None,
            "org": key.org if key else "",
            "team": key.team if key else "",
            "project": key.project if key else "",
            **summary,
            "confidence": finding.confidence,
            "excerpt": snippet,
        }
        self._emit(self._topic, key.key_id.encode() if key else b"", orjson.dumps(event))
