"""`free_port(span)`: a run of free local ports for a stack that is about to bind them.

Tests, benches and `meterline eval` start their own stacks on ports nobody else uses. Asking
the kernel for port 0 hands out a port from the ephemeral range, which every outgoing
connection on the machine draws from too, so between the pick and the bind a client socket
can take it ("Address already in use" one run in many). Ports are therefore drawn below the
ephemeral range, where only listeners live, and never handed out twice by one process.
Parallel test processes pass `lane`/`lanes` to draw from disjoint slices.

A run of `span` ports covers services that bind the ports after a base one (gateway and
processors workers: `meterline/workers.py`).
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

__all__ = ["free_port"]

_LOWEST = 10_000
_EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_handed_out: set[int] = set()
_random = random.SystemRandom()


def _ephemeral_start() -> int:
    try:
        return int(_EPHEMERAL_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768  # Linux's default


def _bindable(port: int, host: str) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def free_port(span: int = 1, *, lane: int = 0, lanes: int = 1, host: str = "127.0.0.1") -> int:
    """A port p such that p .. p+span-1 are free now and not yet handed out by this process."""
    top = _ephemeral_start()
    if top - _LOWEST < 1_000 * lanes:  # an unusual port range: fall back to the kernel's pick
        with socket.socket() as sock:
            sock.bind((host, 0))
            return int(sock.getsockname()[1])
    width = (top - _LOWEST) // lanes
    low = _LOWEST + width * (lane % lanes)
    for _ in range(1_000):
        base = _random.randrange(low, low + width - span)
        run = range(base, base + span)
        if any(port in _handed_out for port in run):
            continue
        if all(_bindable(port, host) for port in run):
            _handed_out.update(run)
            return base
    raise RuntimeError(f"no run of {span} free ports between {low} and {low + width}")
