"""Routing: model groups of deployments, load balancing, retries with backoff, fallback
chains and a circuit breaker per deployment, all in the gateway's memory."""

from __future__ import annotations

from gateway.routing.breaker import BreakerState, CircuitBreaker
from gateway.routing.failures import is_upstream_fault, retry_after_s, trigger_of
from gateway.routing.router import Attempt, Deployment, Group, Router, Timeouts

__all__ = [
    "Attempt",
    "BreakerState",
    "CircuitBreaker",
    "Deployment",
    "Group",
    "Router",
    "Timeouts",
    "is_upstream_fault",
    "retry_after_s",
    "trigger_of",
]
