"""Span -> CostEvent, with the cost agent's Pricer. Pure: no Kafka, no Faust.

Which spans are costed (everything else passes without a CostEvent):
- kind LLM or EMBEDDING (after normalization: OpenInference `openinference.span.kind`, or
  GenAI `gen_ai.operation.name` chat / text_completion / generate_content / embeddings).
  Parent spans (CHAIN, AGENT) often repeat their children's token totals; costing them
  would count the same tokens twice.
- with at least one token counted (input, output or cache).
- NOT emitted by the gateway, as the envelope's `source` says (schemas.sources.GATEWAY:
  set by the gateway's own emitter; ingest stamps OTLP spans with its own source, so a
  sender calling itself `meterline-gateway` is still costed). The gateway's RequestEvent
  for that call is already costed by the cost agent; costing its span too would bill the
  request twice.
- NOT the parent of a gateway span: an app that calls the provider through the gateway
  and propagates its trace context describes that same call in its own LLM span, so
  that span is not costed either (`ProxiedSpans` remembers the gateway spans' parents).
  Both spans are keyed by trace id, so they meet on one partition; the gateway emits its
  span when the call ends, before the app's span (which ends later and travels through
  OTLP) arrives. An app span that arrives first is costed (documented race).

The CostEvent has `source_type="span"`, `request_id="<trace_id>:<span_id>"` and an
event id derived from (trace_id, span_id), so a replayed span yields the same CostEvent,
never one that could collide with a request's cost.
"""

from __future__ import annotations

from pydantic import ValidationError

from processors.cost.logic import Pricer, RejectedEvent, TokenUsage
from processors.decoded import decode
from processors.errors import describe_validation_error
from schemas import sources
from schemas.events.v1 import CostEvent, SpanEvent
from schemas.ids import deterministic_id

__all__ = [
    "COSTED_KINDS",
    "STAGE",
    "ProxiedSpans",
    "cost_for_span",
    "cost_for_span_payload",
    "is_gateway_span",
    "parse_span",
    "span_cost_event_id",
]

STAGE = "processors.spans"
COSTED_KINDS = frozenset({"LLM", "EMBEDDING"})


def parse_span(payload: bytes) -> SpanEvent:
    try:
        return decode(SpanEvent, payload)
    except ValidationError as exc:
        raise RejectedEvent(f"invalid SpanEvent: {describe_validation_error(exc)}") from exc


def is_gateway_span(span: SpanEvent) -> bool:
    return span.source == sources.GATEWAY


class ProxiedSpans:
    """The app spans whose call went through the gateway: (trace_id, span_id) of each
    gateway span's parent, most recent `limit` of them."""

    def __init__(self, limit: int = 100_000) -> None:
        self._seen: dict[tuple[str, str], None] = {}  # insertion-ordered: oldest first
        self._limit = limit

    def note(self, span: SpanEvent) -> None:
        if span.parent_span_id:
            self._seen[(span.trace_id, span.parent_span_id)] = None
            if len(self._seen) > self._limit:
                del self._seen[next(iter(self._seen))]

    def __contains__(self, span: SpanEvent) -> bool:
        return (span.trace_id, span.span_id) in self._seen


def span_cost_event_id(span: SpanEvent) -> str:
    return deterministic_id("cost", "span", span.trace_id, span.span_id)


def cost_for_span(
    span: SpanEvent, pricer: Pricer, proxied: ProxiedSpans | None = None
) -> CostEvent | None:
    """The span's CostEvent, or None when this span is not to be costed (see the rules)."""
    if is_gateway_span(span):
        if proxied is not None:
            proxied.note(span)
        return None
    tokens = (
        span.input_tokens + span.output_tokens + span.cache_read_tokens + span.cache_write_tokens
    )
    if span.kind.upper() not in COSTED_KINDS or tokens == 0:
        return None
    if proxied is not None and span in proxied:
        return None  # the gateway's request for this call is costed already
    quote = pricer.quote(
        TokenUsage(
            model=span.model,
            provider=span.provider,
            input_tokens=span.input_tokens,
            output_tokens=span.output_tokens,
            cache_read_tokens=span.cache_read_tokens,
            cache_write_tokens=span.cache_write_tokens,
            at=span.start_ts,
        )
    )
    split = quote.split
    return CostEvent(
        event_id=span_cost_event_id(span),
        ts=span.end_ts,
        source=STAGE,
        request_id=f"{span.trace_id}:{span.span_id}",
        source_type="span",
        request_ts=span.start_ts,
        key_id=span.key_id,
        org=span.org,
        team=span.team,
        project=span.project,
        user=span.user or "",
        session_id=span.session_id,
        provider=span.provider,
        model=span.model,
        input_tokens=span.input_tokens,
        output_tokens=span.output_tokens,
        cache_read_tokens=span.cache_read_tokens,
        cache_write_tokens=span.cache_write_tokens,
        input_cost=split.input_cost,
        output_cost=split.output_cost,
        cache_read_cost=split.cache_read_cost,
        cache_write_cost=split.cache_write_cost,
        total_cost=split.total_cost,
        price_source=quote.price_source,
        priced=quote.priced,
    )


def cost_for_span_payload(
    payload: bytes | None, pricer: Pricer, proxied: ProxiedSpans | None = None
) -> CostEvent | None:
    """Raw message value -> CostEvent or None, or RejectedEvent for the dead letter."""
    if payload is None:
        raise RejectedEvent("invalid SpanEvent: empty message (null value)")
    return cost_for_span(parse_span(payload), pricer, proxied)
