"""The span attributes of one proxied request: OTel GenAI and OpenInference conventions,
plus Meterline's attribution. Never prompt or response content."""

from __future__ import annotations

from typing import Any

from gateway.record import RequestRecord

__all__ = ["operation_of", "request_attributes"]

_OPERATIONS = {"/v1/chat/completions": "chat", "/v1/embeddings": "embeddings"}
# OpenInference span kind per GenAI operation (EMBEDDING is OpenInference's kind for it).
_KINDS = {"chat": "LLM", "embeddings": "EMBEDDING"}


def operation_of(endpoint: str) -> str:
    return _OPERATIONS.get(endpoint, "chat")


def request_attributes(record: RequestRecord) -> dict[str, Any]:
    """Attributes for the span; absent values are left out (OTel attributes are never None)."""
    operation = operation_of(record.endpoint)
    summary = record.summary
    key = record.key
    model = (summary.model_used if summary else None) or record.model_requested
    # The span cost agent skips spans marked as the gateway's: the RequestEvent is costed.
    attributes: dict[str, Any] = {
        "meterline.source": "gateway",
        "meterline.request_id": record.request_id,
        "gen_ai.operation.name": operation,
        "openinference.span.kind": _KINDS[operation],
        "http.response.status_code": record.status_code,
    }
    optional: dict[str, Any] = {
        "gen_ai.provider.name": record.provider,
        "gen_ai.request.model": record.model_requested,
        "gen_ai.response.model": summary.model_used if summary else None,
        "llm.model_name": model,
        "gen_ai.request.max_tokens": record.max_tokens_requested,
        "session.id": record.session_id,
        "user.id": key.user if key else None,
        "meterline.key_id": key.key_id if key else None,
        "meterline.org": key.org if key else None,
        "meterline.team": key.team if key else None,
        "meterline.project": key.project if key else None,
        "error.type": record.error_type,
    }
    attributes.update((k, v) for k, v in optional.items() if v is not None and v != "")
    if summary is not None:
        attributes["gen_ai.usage.input_tokens"] = summary.input_tokens
        attributes["gen_ai.usage.output_tokens"] = summary.output_tokens
        attributes["llm.token_count.prompt"] = summary.input_tokens
        attributes["llm.token_count.completion"] = summary.output_tokens
        attributes["llm.token_count.total"] = summary.input_tokens + summary.output_tokens
        if summary.cache_read_tokens:
            attributes["gen_ai.usage.cache_read.input_tokens"] = summary.cache_read_tokens
            attributes["llm.token_count.prompt_details.cache_read"] = summary.cache_read_tokens
        if summary.reasoning_tokens:
            attributes["llm.token_count.completion_details.reasoning"] = summary.reasoning_tokens
        if summary.finish_reason:
            attributes["gen_ai.response.finish_reasons"] = (summary.finish_reason,)
    return attributes
