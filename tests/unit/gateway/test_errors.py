from __future__ import annotations

import orjson

from gateway.errors import (
    GatewayError,
    ModelNotFound,
    UpstreamStatusError,
    UpstreamTimeout,
    UpstreamUnavailable,
)


def test_errors_render_openai_shape() -> None:
    body = orjson.loads(ModelNotFound("no such model", param="model").render())
    assert body == {
        "error": {
            "message": "no such model",
            "type": "invalid_request_error",
            "code": "model_not_found",
            "param": "model",
        }
    }
    assert UpstreamTimeout("slow").status == 504
    assert UpstreamUnavailable("down").status == 502
    assert isinstance(UpstreamTimeout("x"), GatewayError)


def test_upstream_status_passes_openai_bodies_through_and_wraps_others() -> None:
    upstream = orjson.dumps({"error": {"message": "slow down", "type": "rate_limit_error"}})
    error = UpstreamStatusError(429, upstream, retry_after="7")
    assert error.status == 429 and error.headers == {"retry-after": "7"}
    assert error.render() == upstream
    wrapped = orjson.loads(UpstreamStatusError(418, b"<html>teapot</html>").render())
    assert wrapped["error"]["code"] == "upstream_418"
