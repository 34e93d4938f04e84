"""Bad input becomes a 400 naming the parameter, in the OpenAI error shape; never a 500."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

__all__ = ["InvalidParameter", "install_error_handlers"]


class InvalidParameter(ValueError):
    def __init__(self, param: str, message: str) -> None:
        super().__init__(message)
        self.param = param
        self.message = message


def error_body(param: str | None, message: str, code: str = "invalid_parameter") -> dict:
    return {
        "error": {
            "message": message,
            "type": "invalid_request_error",
            "param": param,
            "code": code,
        }
    }


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(InvalidParameter)
    async def _invalid_parameter(request: Request, exc: InvalidParameter) -> JSONResponse:
        return JSONResponse(status_code=400, content=error_body(exc.param, exc.message))

    @app.exception_handler(RequestValidationError)
    async def _invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        loc = [str(part) for part in first.get("loc", ())]
        param = loc[-1] if loc else None
        message = f"invalid value for {param!r}: {first.get('msg', 'invalid')}"
        return JSONResponse(status_code=400, content=error_body(param, message))
