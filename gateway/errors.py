"""Gateway errors, each rendered as an OpenAI-shaped error body.

Only the gateway renders these; everything a client can trigger maps to one of them, so
nothing a client sends produces a 500.

    GatewayError                        (any status; `render()` -> OpenAI JSON)
    ├── InvalidRequest        400       bad JSON, missing or wrong-typed field (`param`)
    │   ├── BodyTooLarge      413       body over `gateway.max_body_bytes`
    │   └── GuardrailBlocked  400       a guardrail in mode `block` found something
    ├── AuthenticationFailed  401       missing or unknown virtual key / admin token
    ├── ModelNotAllowed       403       model outside the key's allow-list
    ├── Blocked               403       an enforcement decision blocks a subject (`blocked`)
    │   └── BudgetExceeded    403       a hard budget limit with action block
    ├── RateLimited           429       a per-key RPM/TPM bucket is empty (Retry-After)
    │   └── Throttled         429       a throttle decision's RPM is used up
    ├── NotFound              404       unknown path
    │   └── ModelNotFound     404       no provider serves the model (`model_not_found`)
    ├── MethodNotAllowed      405
    ├── ControlPlaneUnavailable 503     admin change could not be published
    ├── EnforcementUnavailable  503     enforcement view stale and fail mode `closed`
    ├── InternalGatewayError  502       unexpected exception (logged without secrets)
    └── UpstreamError         502       provider failure, mapped at the transport boundary
        ├── UpstreamUnavailable 502     connection refused/reset, upstream 5xx, bad payload
        ├── UpstreamTimeout     504     no answer within `gateway.upstream_timeout_s`
        └── UpstreamStatusError 4xx     upstream 4xx/429 passed through (body, Retry-After)
"""

from __future__ import annotations

import orjson

from schemas import error_types

__all__ = [
    "AuthenticationFailed",
    "Blocked",
    "BodyTooLarge",
    "BudgetExceeded",
    "ControlPlaneUnavailable",
    "EnforcementUnavailable",
    "GatewayError",
    "GuardrailBlocked",
    "InternalGatewayError",
    "InvalidRequest",
    "MethodNotAllowed",
    "ModelNotAllowed",
    "ModelNotFound",
    "NotFound",
    "RateLimited",
    "Throttled",
    "UpstreamError",
    "UpstreamStatusError",
    "UpstreamTimeout",
    "UpstreamUnavailable",
    "error_body",
]


def error_body(
    message: str, type_: str, code: str | None = None, param: str | None = None
) -> bytes:
    return orjson.dumps(
        {"error": {"message": message, "type": type_, "code": code, "param": param}}
    )


class GatewayError(Exception):
    status: int = 400
    type: str = "invalid_request_error"
    code: str | None = None

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code
        self.headers = headers or {}

    @property
    def error_type(self) -> str:
        """Short name recorded in RequestEvent.error_type."""
        return self.code or self.type

    def render(self) -> bytes:
        return error_body(self.message, self.type, self.code, self.param)


class InvalidRequest(GatewayError):
    status = 400
    code = "invalid_request"


class BodyTooLarge(InvalidRequest):
    status = 413
    code = "body_too_large"


class GuardrailBlocked(InvalidRequest):
    """400 naming the guardrail and category (never the offending text); `param` is the
    request field for input, None for a blocked response."""

    code = "guardrail_blocked"

    def __init__(
        self, message: str, *, guardrail: str, category: str, param: str | None = None
    ) -> None:
        super().__init__(message, param=param)
        self.guardrail = guardrail
        self.category = category

    def render(self) -> bytes:
        error = {"message": self.message, "type": self.type, "code": self.code}
        error |= {"param": self.param, "guardrail": self.guardrail, "category": self.category}
        return orjson.dumps({"error": error})


class AuthenticationFailed(GatewayError):
    status = 401
    type = "authentication_error"
    code = "invalid_api_key"


class ModelNotAllowed(GatewayError):
    status = 403
    type = "permission_error"
    code = "model_not_allowed"


class Blocked(GatewayError):
    """403 naming what is blocked, why and by whom (`subject`, `reason`, `source`)."""

    status = 403
    type = "permission_error"
    code = error_types.BLOCKED

    def __init__(
        self,
        message: str,
        *,
        subject: str,
        source: str,
        reason: str = "",
        extra: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.fields = {"subject": subject, "source": source, "reason": reason, **(extra or {})}

    def render(self) -> bytes:
        error = {"message": self.message, "type": self.type, "code": self.code, "param": None}
        return orjson.dumps({"error": {**error, **self.fields}})


class BudgetExceeded(Blocked):
    code = error_types.BUDGET_EXCEEDED


class RateLimited(GatewayError):
    status = 429
    type = "rate_limit_error"
    code = error_types.RATE_LIMIT_EXCEEDED


class Throttled(RateLimited):
    code = error_types.THROTTLED


class NotFound(GatewayError):
    status = 404
    code = "not_found"


class ModelNotFound(NotFound):
    code = error_types.MODEL_NOT_FOUND


class MethodNotAllowed(GatewayError):
    status = 405
    code = "method_not_allowed"


class ControlPlaneUnavailable(GatewayError):
    status = 503
    type = "service_unavailable"
    code = "control_plane_unavailable"


class EnforcementUnavailable(GatewayError):
    status = 503
    type = "service_unavailable"
    code = "enforcement_unavailable"


class InternalGatewayError(GatewayError):
    status = 502
    type = "api_error"
    code = "gateway_error"


class UpstreamError(GatewayError):
    status = 502
    type = "api_error"
    code = "upstream_error"
    upstream_status: int | None = None  # the upstream's HTTP status, when it answered
    retry_after: str | None = None  # the upstream's Retry-After header, when it sent one


class UpstreamUnavailable(UpstreamError):
    """Connection refused or reset, an incomplete or malformed answer, or an upstream 5xx
    (`upstream_status`, and its `retry_after` when given)."""

    code = "upstream_unavailable"

    def __init__(
        self, message: str, *, upstream_status: int | None = None, retry_after: str | None = None
    ) -> None:
        super().__init__(message)
        self.upstream_status = upstream_status
        self.retry_after = retry_after


class UpstreamTimeout(UpstreamError):
    status = 504
    code = "upstream_timeout"


class UpstreamStatusError(UpstreamError):
    """An upstream 4xx: the client sees the upstream's status and (OpenAI-shaped) body."""

    def __init__(
        self, status: int, body: bytes, *, retry_after: str | None = None, message: str = ""
    ) -> None:
        headers = {"retry-after": retry_after} if retry_after else {}
        super().__init__(message or f"upstream returned {status}", headers=headers)
        self.status = status
        self.upstream_status = status
        self.retry_after = retry_after
        self.body = body
        self.code = "rate_limited" if status == 429 else f"upstream_{status}"

    def render(self) -> bytes:
        try:
            parsed = orjson.loads(self.body)
        except orjson.JSONDecodeError:
            parsed = None
        message = self.message
        if isinstance(parsed, dict) and isinstance(parsed.get("error"), dict):
            if parsed.get("type") != "error":  # OpenAI's shape: the upstream's own words
                return self.body
            inner = parsed["error"]  # Anthropic's shape (a translated request): its message
            if isinstance(inner.get("message"), str):
                message = inner["message"][:1000]
        kind = "rate_limit_error" if self.status == 429 else "invalid_request_error"
        return error_body(message, kind, self.code)
