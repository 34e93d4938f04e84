"""Admin API request errors say what is wrong in words, in OpenAI's shape."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response

from gateway.admin import KeyCreate
from gateway.app import invalid_request_for


def _app() -> FastAPI:
    app = FastAPI()

    @app.post("/keys")
    async def create(body: KeyCreate) -> dict[str, str]:
        return {"org": body.org}

    @app.exception_handler(RequestValidationError)
    async def handler(_: Request, exc: RequestValidationError) -> Response:
        error = invalid_request_for(exc)
        return Response(error.render(), status_code=error.status, media_type="application/json")

    return app


async def _post(content: bytes) -> httpx.Response:
    transport = httpx.ASGITransport(app=_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://admin") as client:
        return await client.post(
            "/keys", content=content, headers={"content-type": "application/json"}
        )


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            b'{"org": "a" "team": "b"}',
            "request body is not valid JSON: Expecting ',' delimiter at line 1 column 13",
        ),
        (
            b'{\n  "org": "a"\n  "rpm": 5\n}',
            "request body is not valid JSON: Expecting ',' delimiter at line 3 column 3",
        ),
        (b"[1", "request body is not valid JSON: Expecting ',' delimiter at line 1 column 3"),
    ],
)
async def test_malformed_json_is_described_with_line_and_column(body: bytes, message: str) -> None:
    response = await _post(body)
    assert response.status_code == 400
    assert response.json() == {
        "error": {
            "message": message,
            "type": "invalid_request_error",
            "code": "invalid_request",
            "param": None,
        }
    }


@pytest.mark.parametrize(
    ("body", "param", "words"),
    [
        (b'{"team": "t"}', "org", "Field required"),
        (b'{"org": "a", "rpm": "many"}', "rpm", "valid integer"),
        (b'{"org": "a", "models": ["m", 7]}', "models[1]", "valid string"),
        (b'{"org": "a", "colour": "red"}', "colour", "Extra inputs"),
    ],
)
async def test_field_errors_name_the_field(body: bytes, param: str, words: str) -> None:
    error = (await _post(body)).json()["error"]
    assert error["param"] == param
    assert error["message"].startswith(f"{param}: ") and words in error["message"]
