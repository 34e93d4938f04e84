"""What ingest believes of a span a sender exported (ARCHITECTURE §13). Pure: no I/O.

- Attribution (key, org, team, project) comes from the sender's credential, never from
  what the span claims: `meterline.*` attributes are Meterline's own namespace, so a
  claim that disagrees with the credential is dropped (and reported), and spend can
  never be put on another org or key.
- Token counts are bounded: a span claiming more than `max_tokens` in any count is
  rejected with the reason (a typo or a forgery, either way not a bill to keep).
"""

from __future__ import annotations

from schemas.credentials import Credential
from schemas.events.v1 import SpanEvent

__all__ = ["ATTRIBUTION_FIELDS", "attribute", "check_token_counts"]

ATTRIBUTION_FIELDS = ("key_id", "org", "team", "project")
_NAMESPACE = "meterline."
_OWN_MARKERS = frozenset({"meterline.attributes_dropped"})  # set by normalize_span itself
_TOKEN_FIELDS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens")


def attribute(event: SpanEvent, credential: Credential) -> tuple[SpanEvent, list[str]]:
    """The event attributed to `credential`, and the claims dropped because they disagreed
    (as `meterline.org='other'`), for the exporter's partial-success message."""
    truth = {
        "key_id": credential.key_id,
        "org": credential.org,
        "team": credential.team,
        "project": credential.project,
    }
    dropped = []
    for field in ATTRIBUTION_FIELDS:
        claimed = getattr(event, field)
        if claimed and claimed != truth[field]:
            dropped.append(f"{_NAMESPACE}{field}={claimed[:64]!r}")
    # Any other meterline.* attribute (e.g. meterline.source) is a claim only Meterline's
    # own components may make: an exporter never does.
    reserved = {
        key for key in event.attributes if key.startswith(_NAMESPACE) and key not in _OWN_MARKERS
    }
    dropped += [f"{key[:64]}={event.attributes[key][:64]!r}" for key in sorted(reserved)]
    attributes = (
        {k: v for k, v in event.attributes.items() if k not in reserved}
        if reserved
        else event.attributes
    )
    attributed = event.model_copy(update={**truth, "attributes": attributes})
    return attributed, dropped


def check_token_counts(event: SpanEvent, max_tokens: int) -> None:
    """Raises ValueError naming the count beyond the plausibility bound."""
    for field in _TOKEN_FIELDS:
        value = getattr(event, field)
        if value > max_tokens:
            raise ValueError(
                f"{field} {value} is beyond the plausible {max_tokens} tokens per span"
            )
