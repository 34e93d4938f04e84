"""free_port: runs of free ports below the ephemeral range, never handed out twice."""

from __future__ import annotations

import socket

import pytest

from meterline import ports


def test_a_run_is_free_below_the_ephemeral_range_and_not_repeated() -> None:
    top = ports._ephemeral_start()
    seen: set[int] = set()
    for _ in range(50):
        base = ports.free_port(4)
        run = set(range(base, base + 4))
        assert base >= ports._LOWEST and base + 4 <= top
        assert not run & seen
        seen |= run
        for port in run:
            with socket.socket() as probe:
                probe.bind(("127.0.0.1", port))


def test_lanes_draw_from_disjoint_slices() -> None:
    first = {ports.free_port(lane=0, lanes=2) for _ in range(30)}
    second = {ports.free_port(lane=1, lanes=2) for _ in range(30)}
    assert max(first) < min(second)


def test_a_port_in_use_is_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        taken = held.getsockname()[1]
        picks = iter([taken, taken - 1, 20_000, 20_001, 20_002])
        monkeypatch.setattr(ports, "_LOWEST", 1_024)
        monkeypatch.setattr(ports._random, "randrange", lambda low, high: next(picks))
        monkeypatch.setattr(ports, "_handed_out", set())
        base = ports.free_port(2)
    assert base not in (taken - 1, taken)  # taken-1 .. taken would overlap the held port
