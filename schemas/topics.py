"""Topic names (ARCHITECTURE §3), without the configurable prefix."""

from __future__ import annotations

import zlib
from typing import Final, Literal

__all__ = [
    "AGENTLOOP_INPUT",
    "ANOMALIES",
    "BUDGETS",
    "BUDGET_SPEND",
    "COMPACTED_TOPICS",
    "CONTROL",
    "CONTROL_RECORD_TYPES",
    "COSTS",
    "DLQ",
    "DRIFT",
    "DRIFT_INPUT",
    "ENFORCEMENT",
    "ENFORCEMENT_KEY_SEPARATOR",
    "GUARDRAILS",
    "LLMJACKING_KEYS",
    "LLMJACKING_PEERS",
    "RATE_USAGE",
    "REQUESTS",
    "SPANS",
    "TOPICS",
    "TOPIC_CONFIGS",
    "ControlRecordType",
    "control_key",
    "control_record_id",
    "enforcement_key",
    "parse_control_key",
    "parse_enforcement_key",
    "parse_routed_key",
    "partition_for",
    "routed_key",
]

REQUESTS: Final = "requests"
SPANS: Final = "spans"
GUARDRAILS: Final = "guardrails"
COSTS: Final = "costs"
BUDGETS: Final = "budgets"
# Internal: each cost's spend per budget subject, keyed and partitioned by the subject
# (schemas.budget_spend), so one processors worker owns each subject's budgets.
BUDGET_SPEND: Final = "budget-spend"
# Internal: each gateway's RPM/TPM consumption per key, read by every other gateway so a
# key's limit holds across the fleet (schemas.rate_usage); short-lived, no consumer group.
RATE_USAGE: Final = "rate-usage"
ANOMALIES: Final = "anomalies"
DRIFT: Final = "drift"
# Internal: each request again (the same bytes), keyed and partitioned by its drift scope
# (app x model), so one processors worker holds each scope's windows.
DRIFT_INPUT: Final = "drift-input"
# Internal: the requests, spans and costs of agent sessions again (the same bytes), keyed
# `<source topic>|<session subject>` (routed_key) on the session's partition, so one
# processors worker holds each session.
AGENTLOOP_INPUT: Final = "agentloop-input"
# Internal: what each processors worker's keys taught their LLMjacking peer baselines,
# read by every other worker (schemas.peer_learning); no consumer group.
LLMJACKING_PEERS: Final = "llmjacking-peers"
# Internal: each key's learned normal (schemas.llmjacking_keys), keyed by key_id on the
# partition of the key's requests, so the worker that takes a partition over takes its
# keys' history too; compacted: the last snapshot of each key is what counts.
LLMJACKING_KEYS: Final = "llmjacking-keys"
ENFORCEMENT: Final = "enforcement"
CONTROL: Final = "control"
DLQ: Final = "dlq"

TOPICS: Final = (
    REQUESTS,
    SPANS,
    GUARDRAILS,
    COSTS,
    BUDGETS,
    BUDGET_SPEND,
    RATE_USAGE,
    ANOMALIES,
    DRIFT,
    DRIFT_INPUT,
    AGENTLOOP_INPUT,
    LLMJACKING_PEERS,
    LLMJACKING_KEYS,
    ENFORCEMENT,
    CONTROL,
    DLQ,
)
COMPACTED_TOPICS: Final = frozenset({ENFORCEMENT, CONTROL, LLMJACKING_KEYS})
# Topic configs beyond the defaults: rate usage matters for a minute at most; drift's
# and the agent-loop detector's copies for a day (a window is an hour at most, a session
# minutes; the source topics keep the originals); peer learning for an hour (a reader
# starts at the end).
TOPIC_CONFIGS: Final[dict[str, dict[str, str]]] = {
    RATE_USAGE: {"retention.ms": "300000"},
    DRIFT_INPUT: {"retention.ms": "86400000"},
    AGENTLOOP_INPUT: {"retention.ms": "86400000"},
    LLMJACKING_PEERS: {"retention.ms": "3600000"},
}


def routed_key(source: str, subject: str) -> bytes:
    """The key of a record re-sent to an internal input topic: where it came from (a topic
    name above, without "|"), and for whom."""
    return f"{source}|{subject}".encode()


def parse_routed_key(key: bytes | None) -> tuple[str, str]:
    """(source topic, subject) of a `routed_key`; ("", "") for anything else."""
    source, separator, subject = (key or b"").decode(errors="replace").partition("|")
    return (source, subject) if separator else ("", "")


def partition_for(key: str, partitions: int) -> int:
    """The partition of an internal topic that holds every record of `key` (a budget
    subject, a drift scope): CRC-32 of the key, chosen by the producer explicitly, so the
    owner of a partition knows which keys it owns without depending on a client's
    partitioner."""
    return zlib.crc32(key.encode()) % max(partitions, 1)


# Enforcement records are keyed per (source, subject): `<source>|<subject>`. Each source
# (budget, llmjacking, agent_loop, guardrail, manual) owns its own compacted slot, so a
# budget lifting its block never lifts a manual or llmjacking block on the same subject.
# Sources are fixed identifiers without "|", so splitting at the first "|" is unambiguous.
ENFORCEMENT_KEY_SEPARATOR: Final = "|"


def enforcement_key(source: str, subject: str) -> str:
    return f"{source}{ENFORCEMENT_KEY_SEPARATOR}{subject}"


def parse_enforcement_key(key: str) -> tuple[str | None, str]:
    """(source, subject); a key without a source (older producers) gives (None, key)."""
    source, separator, subject = key.partition(ENFORCEMENT_KEY_SEPARATOR)
    if not separator or not source or ":" in source:
        return None, key
    return source, subject


# Control records are keyed `<record_type>:<record_id>`: `key:<key_id>`,
# `ingest_token:<token_id>`, `budget:<budget_id>`, `policy:<policy_id>`. Record types are
# fixed identifiers without ":" (each equals its record's `event_type`), so splitting at the
# first ":" is unambiguous.
ControlRecordType = Literal["key", "ingest_token", "budget", "policy"]
CONTROL_RECORD_TYPES: Final[tuple[ControlRecordType, ...]] = (
    "key",
    "ingest_token",
    "budget",
    "policy",
)


def control_key(record_type: ControlRecordType, record_id: str) -> str:
    return f"{record_type}:{record_id}"


def parse_control_key(key: str) -> tuple[str, str]:
    """(record_type, record_id); a key without ":" gives ("", key)."""
    record_type, separator, record_id = key.partition(":")
    return (record_type, record_id) if separator else ("", key)


def control_record_id(key: bytes | str | None, record_type: ControlRecordType) -> str | None:
    """The record id of a control key of `record_type` (e.g. a tombstone's `budget:<id>`),
    None for a key of another type. Readers of the control topic use it to route tombstones."""
    text = key.decode(errors="replace") if isinstance(key, bytes) else (key or "")
    found_type, record_id = parse_control_key(text)
    return record_id if found_type == record_type else None
