"""The guardrails step of the hot path (ARCHITECTURE §8): scan, then monitor, redact or
block, per the modes the request's key resolves to.

- input: every prompt text of the request's dialect (`Dialect.input_slots`: chat message
  contents and text parts, embeddings `input` strings, Messages blocks, Responses items)
  before forwarding; prompt injection only in untrusted texts (user, tool).
- output: a non-streaming answer's texts (`Dialect.output_slots`) before returning it,
  and streamed text (`Dialect.stream_texts`) through a `StreamGuard` per output (held
  back, masked, or the stream ended with the dialect's in-band error event). A piece
  whose container is None carries no text and only ends its output: what its guard still
  holds goes out as a `Dialect.text_event` just before it.
Every verdict that is not a pass becomes one GuardrailEvent (per guardrail, stage and
category and request) on the guardrails topic, through the same non-blocking emitter as
RequestEvents, and a GuardrailSummary in the RequestEvent.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, Callable
from typing import Any

import orjson

from gateway.apis.base import Dialect, Slot, StreamText
from gateway.errors import GuardrailBlocked, UpstreamError
from gateway.guardrails.policies import GuardrailPolicies
from gateway.guardrails.redaction import excerpt, redact
from gateway.guardrails.scanner import scan
from gateway.guardrails.stream import Hit, StreamGuard
from gateway.guardrails.taxonomy import INPUT_ONLY, Finding, Stage
from gateway.metrics import Metrics
from gateway.record import RequestRecord, iso_ms
from gateway.sse import DONE, encode_event, parse_event, parse_json
from meterline.settings import Settings
from schemas.events.v1 import SCHEMA_VERSION
from schemas.ids import new_event_id
from schemas.policies import GUARDRAILS, GuardrailMode
from schemas.topics import GUARDRAILS as GUARDRAILS_TOPIC

__all__ = ["FINDINGS_COUNTER", "TRUNCATED_COUNTER", "Guardrails"]

FINDINGS_COUNTER = "meterline_gateway_guardrail_findings_total"
TRUNCATED_COUNTER = "meterline_gateway_guardrail_truncated_total"

Emit = Callable[[str, bytes, bytes], None]


def _blocked(finding: Finding, stage: Stage, param: str | None) -> GuardrailBlocked:
    what = "request" if stage == "input" else "response"
    return GuardrailBlocked(
        f"the {what} was blocked by the {finding.guardrail} guardrail "
        f"(category {finding.category})",
        guardrail=finding.guardrail,
        category=finding.category,
        param=param,
    )


class Guardrails:
    """**Parameters:** `settings` (its `gateway.guardrail` section and the topic prefix),
    `emit` (the emitter's non-blocking `emit(topic, key, value)`), `metrics`."""

    def __init__(self, settings: Settings, emit: Emit, metrics: Metrics) -> None:
        config = settings.gateway.guardrail
        self.policies = GuardrailPolicies(config.modes)
        self._topic = settings.topic(GUARDRAILS_TOPIC)
        self._emit = emit
        self._metrics = metrics
        self._hold = config.stream_hold_chars
        self._max_scan = config.max_scan_chars
        metrics.counter(FINDINGS_COUNTER, "Guardrail findings, by guardrail, stage and action.")
        metrics.counter(TRUNCATED_COUNTER, "Texts longer than gateway.guardrail.max_scan_chars.")

    def modes(self, record: RequestRecord) -> dict[str, GuardrailMode]:
        return self.policies.modes(record.key.subjects if record.key else ())

    # --- input ----------------------------------------------------------------------

    def check_input(
        self, record: RequestRecord, dialect: Dialect, body: dict[str, Any], raw: bytes
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
        for container, key, untrusted in dialect.input_slots(body):
            text = container[key]
            masked, block = self._check_text(
                record, "input", text, active if untrusted else trusted, modes
            )
            blocking = blocking or block
            if masked is not None:
                container[key] = masked
                changed = True
        if blocking is not None:
            raise _blocked(blocking, "input", dialect.prompt_field)
        return orjson.dumps(body) if changed else raw

    # --- output ---------------------------------------------------------------------

    def check_output(
        self, record: RequestRecord, dialect: Dialect, response: Any, data: bytes
    ) -> bytes:
        """The answer to return: `data`, or the re-serialized answer with masked texts."""
        modes = self.modes(record)
        active = tuple(g for g in GUARDRAILS if modes[g] != "off" and g not in INPUT_ONLY)
        if not active:
            return data
        slots: list[Slot] = dialect.output_slots(response)
        changed = False
        blocking: Finding | None = None
        for container, key, _ in slots:
            masked, block = self._check_text(record, "output", container[key], active, modes)
            blocking = blocking or block
            if masked is not None:
                container[key] = masked
                changed = True
        if blocking is not None:
            raise _blocked(blocking, "output", None)
        return orjson.dumps(response) if changed else data

    def guard_stream(
        self,
        record: RequestRecord,
        dialect: Dialect,
        batches: AsyncGenerator[list[bytes], None],
    ) -> AsyncGenerator[list[bytes], None]:
        """`batches` itself when no output guardrail is on; else a generator that holds
        back, masks or (raising GuardrailBlocked) stops the streamed text. A batch is the
        events one upstream read brought, and comes out as one batch (a held-back text
        event goes out with the text it may release yet)."""
        modes = {g: m for g, m in self.modes(record).items() if m != "off" and g not in INPUT_ONLY}
        if not modes:
            return batches
        rewrite = any(m in ("redact", "block") for m in modes.values())
        return self._guarded(record, dialect, batches, modes, rewrite)

    async def _guarded(
        self,
        record: RequestRecord,
        dialect: Dialect,
        batches: AsyncGenerator[list[bytes], None],
        modes: dict[str, GuardrailMode],
        rewrite: bool,
    ) -> AsyncGenerator[list[bytes], None]:
        stream = _GuardedStream(self, record, dialect, modes, rewrite)
        try:
            async for batch in batches:
                out: list[bytes] = []
                try:
                    for event in batch:
                        stream.event(event, out)
                except GuardrailBlocked:
                    if out:  # what was judged before the finding still goes out first
                        yield out
                    raise
                if out:
                    yield out
        except UpstreamError:
            # The upstream broke off: what the guards hold was judged as far as it goes
            # and is sent before the in-band error, as the text's end.
            tail = stream.flush()
            if tail:
                yield [tail]
            raise
        else:
            tail = stream.flush()
            if tail:
                yield [tail]
        finally:
            await batches.aclose()

    def _guard_piece(
        self,
        record: RequestRecord,
        piece: StreamText,
        guards: dict[int, StreamGuard],
        modes: dict[str, GuardrailMode],
    ) -> tuple[str, bool]:
        """Feed one piece of text through its output's guard: (text to send in its place,
        whether that differs from the piece's own text)."""
        container = piece.container
        content = container.get(piece.key) if isinstance(container, dict) else None
        index = piece.index
        guard = guards.get(index)
        if guard is None:
            guard = guards[index] = StreamGuard(modes, hold=self._hold)
        released, hits = guard.feed(content) if isinstance(content, str) else ("", [])
        if piece.finished:
            tail, more = guard.flush()
            released, hits = released + tail, hits + more
            del guards[index]
        self._settle(record, hits)
        return released, released != (content or "")

    def _flush(
        self,
        record: RequestRecord,
        dialect: Dialect,
        guards: dict[int, StreamGuard],
        template: Any,
        rewrite: bool,
    ) -> bytes:
        """What the guards still hold, as text events shaped like the stream's last one."""
        out = b""
        for index, guard in sorted(guards.items()):
            text, hits = guard.flush()
            self._settle(record, hits)
            if rewrite and text:
                out += dialect.text_event(index, text, template)
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


class _GuardedStream:
    """One stream's output guards, fed event by event (Guardrails.guard_stream).

    With rewriting on it remembers the text each output's client was sent; outputs a
    guard changed are `rewritten`, and events repeating their whole text (Responses'
    recaps) are made to repeat what was sent instead."""

    def __init__(
        self,
        guardrails: Guardrails,
        record: RequestRecord,
        dialect: Dialect,
        modes: dict[str, GuardrailMode],
        rewrite: bool,
    ) -> None:
        self._guardrails = guardrails
        self._record = record
        self._dialect = dialect
        self._modes = modes
        self._rewrite = rewrite
        self._guards: dict[int, StreamGuard] = {}
        self._template: Any = {}
        self._sent: dict[int, list[str]] = {}
        self._rewritten: set[int] = set()

    def event(self, event: bytes, out: list[bytes]) -> None:
        """Judge one upstream event; append what the client gets instead (if anything)."""
        dialect = self._dialect
        name, data = parse_event(event)
        if data == DONE:
            out.append(self.flush() + event)
            return
        payload = parse_json(data)
        pieces = dialect.stream_texts(name, payload) if payload is not None else []
        if not pieces and not (self._rewritten and dialect.recap_texts(name, payload)):
            out.append(event)  # usage, comments, other events: no text to judge
            return
        before = b""
        changed = False
        for piece in pieces:
            if piece.container is not None:
                self._template = payload
            released, replaced = self._guardrails._guard_piece(
                self._record, piece, self._guards, self._modes
            )
            if not self._rewrite:
                continue
            self._sent.setdefault(piece.index, []).append(released)
            if replaced:
                self._rewritten.add(piece.index)
                if piece.container is None:
                    before += dialect.text_event(piece.index, released, self._template)
                else:
                    piece.container[piece.key] = released
                    changed = True
        recaps = dialect.recap_texts(name, payload) if self._rewritten else []
        for index, container, key in recaps:
            if index in self._rewritten:
                container[key] = "".join(self._sent[index])
                changed = True
        out.append(before + (encode_event(payload, name) if changed else event))

    def flush(self) -> bytes:
        """What the guards still hold, as text events shaped like the stream's last one."""
        return self._guardrails._flush(
            self._record, self._dialect, self._guards, self._template, self._rewrite
        )
