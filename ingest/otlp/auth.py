"""Who sends an OTLP export: the credential in `Authorization: Bearer <secret>`.

A Meterline virtual key or an ingest token (both published on the control topic and read
by `ingest.otlp.credentials.CredentialReader`). Missing or unknown: 401. Unknown while the
credentials are still being read at start: 503, so the exporter retries instead of
dropping the spans. With `ingest.otlp.auth="off"`, a sender on the loopback address may export
without a credential (embedded demos); a credential it sends is still checked.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Protocol

from ingest.otlp.errors import CredentialsLoadingError, UnauthenticatedError
from schemas.credentials import Credential, CredentialBook

__all__ = ["CredentialSource", "OtlpAuth", "bearer_secret"]


class CredentialSource(Protocol):
    @property
    def book(self) -> CredentialBook: ...

    @property
    def loaded(self) -> bool: ...


def bearer_secret(authorization: str | None) -> str | None:
    """The secret of `Bearer <secret>` (scheme case-insensitive), else None."""
    scheme, _, secret = (authorization or "").strip().partition(" ")
    secret = secret.strip()
    return secret if scheme.lower() == "bearer" and secret else None


def _is_loopback(host: str | None) -> bool:
    try:
        return host is not None and ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class OtlpAuth:
    credentials: CredentialSource
    required: bool = True  # False: `ingest.otlp.auth="off"` (loopback senders may omit it)

    def sender(self, authorization: str | None, client_host: str | None) -> Credential | None:
        """The sender's credential; None only for an open-mode loopback sender without one.
        Raises UnauthenticatedError (401) or CredentialsLoadingError (503)."""
        secret = bearer_secret(authorization)
        if secret is None:
            if not self.required and _is_loopback(client_host):
                return None
            raise UnauthenticatedError(
                "missing credential: send 'Authorization: Bearer <Meterline virtual key or "
                "ingest token>' (OTEL_EXPORTER_OTLP_HEADERS=Authorization=Bearer%20<key>)"
            )
        credential = self.credentials.book.lookup(secret)
        if credential is not None:
            return credential
        if not self.credentials.loaded:
            raise CredentialsLoadingError("credentials are still loading; retry shortly")
        raise UnauthenticatedError("unknown or revoked credential")
