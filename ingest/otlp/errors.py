"""Errors of the OTLP receiver; each carries the HTTP status the OTLP spec asks for.

IngestError
+-- OtlpError                   the request as a whole is refused (status, message)
    +-- MalformedPayloadError   400: the body cannot be decoded at all
    +-- UnauthenticatedError    401: no credential, or not a known one
    +-- PayloadTooLargeError    413: over `ingest.otlp.max_body_bytes`, before or after gzip
    +-- UnsupportedMediaError   415: content type or content encoding we do not speak
    +-- PublishUnavailableError 503: Kafka did not take the spans; the exporter retries
    +-- CredentialsLoadingError 503: credentials not read yet (at start); the exporter retries
"""

from __future__ import annotations

from ingest.sink.errors import IngestError

__all__ = [
    "CredentialsLoadingError",
    "MalformedPayloadError",
    "OtlpError",
    "PayloadTooLargeError",
    "PublishUnavailableError",
    "UnauthenticatedError",
    "UnsupportedMediaError",
]


class OtlpError(IngestError):
    status_code = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class MalformedPayloadError(OtlpError):
    status_code = 400


class PayloadTooLargeError(OtlpError):
    status_code = 413


class UnsupportedMediaError(OtlpError):
    status_code = 415


class PublishUnavailableError(OtlpError):
    # 503 is retryable for OTLP exporters; deterministic event ids make the retry harmless.
    status_code = 503


class UnauthenticatedError(OtlpError):
    status_code = 401


class CredentialsLoadingError(OtlpError):
    status_code = 503
