"""Typed clients of Meterline's HTTP APIs: the gateway admin API and ingest's read API.

One place for how Meterline calls itself over HTTP: one auth rule, one timeout and retry
policy, one error type parsed from the OpenAI-shaped error body. The CLI, dashboards,
simulator, evaluation and processors use these; no other module speaks these APIs.
"""

from __future__ import annotations

from meterline.clients.admin import AdminClient
from meterline.clients.errors import ApiError, ApiUnreachable, ClientError
from meterline.clients.read import AsyncReadClient, ReadClient, Role, read_token

__all__ = [
    "AdminClient",
    "ApiError",
    "ApiUnreachable",
    "AsyncReadClient",
    "ClientError",
    "ReadClient",
    "Role",
    "read_token",
]
