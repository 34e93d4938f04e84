"""Keep the embedded stack's children running: restart a crashed one with backoff.

Crash-only design: every service recovers its own state on start (the gateway replays its
spool, the sink resumes from committed offsets, the processors reconcile budgets from the
warehouse), so restarting a dead child is always safe, and the others keep running while
it is down. A child that keeps crashing is restarted less and less often, never given up
on: `meterline up` stops only when asked to.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

__all__ = ["Backoff", "Child", "Supervisor", "describe_exit"]

Log = Callable[[str], None]


class Child(Protocol):
    """A supervised process: the broker or one service."""

    name: str

    def start(self) -> None: ...

    @property
    def exit_code(self) -> int | None: ...

    def log_hint(self) -> str: ...


@dataclass(frozen=True)
class Backoff:
    """Delay before restart number `n` (1-based): initial * factor**(n-1), capped.

    A child that stayed up for `stable_after_s` counts as healthy again: its next crash
    restarts after `initial_s`, so one crash a day never waits 30 s.
    """

    initial_s: float = 0.5
    factor: float = 2.0
    max_s: float = 30.0
    stable_after_s: float = 60.0

    def delay(self, restarts: int) -> float:
        return min(self.max_s, self.initial_s * self.factor ** max(0, restarts - 1))


def describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited with code {code}"


@dataclass
class _Watch:
    child: Child
    on_restart: Callable[[], None] | None
    started_at: float
    restarts: int = 0  # consecutive, reset once the child is stable
    due: float | None = None  # when a scheduled restart runs
    hook_due: float | None = None  # when a failed on_restart hook runs again
    total_restarts: int = field(default=0)


class Supervisor:
    """Call `check()` periodically; it restarts children that exited, one step at a time.

    `on_restart` hooks run right after a child started again (the broker's recreates the
    topics before any client can auto-create them wrongly).
    """

    def __init__(
        self,
        *,
        log: Log,
        backoff: Backoff | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._log = log
        self._backoff = backoff or Backoff()
        self._clock = clock
        self._watches: list[_Watch] = []

    def watch(self, child: Child, on_restart: Callable[[], None] | None = None) -> None:
        """Supervise `child`, already started by the caller."""
        self._watches.append(_Watch(child, on_restart, self._clock()))

    @property
    def restarts(self) -> dict[str, int]:
        return {w.child.name: w.total_restarts for w in self._watches}

    def check(self) -> None:
        now = self._clock()
        for watch in self._watches:
            if watch.due is None:
                self._notice_exit(watch, now)
            elif now >= watch.due:
                self._restart(watch)
            if watch.hook_due is not None and now >= watch.hook_due and watch.due is None:
                self._run_hook(watch)

    def _notice_exit(self, watch: _Watch, now: float) -> None:
        code = watch.child.exit_code
        if code is None:
            return
        if now - watch.started_at >= self._backoff.stable_after_s:
            watch.restarts = 0
        watch.restarts += 1
        delay = self._backoff.delay(watch.restarts)
        watch.due = now + delay
        self._log(
            f"{watch.child.name} {describe_exit(code)}; restarting in {delay:.1f}s "
            f"(restart {watch.restarts}; {watch.child.log_hint()})"
        )

    def _restart(self, watch: _Watch) -> None:
        watch.due = None
        watch.hook_due = None
        watch.started_at = self._clock()
        try:
            watch.child.start()
        except Exception as exc:  # a failed start is noticed as an exit and retried
            self._log(f"{watch.child.name} could not be restarted: {exc}")
            return
        watch.total_restarts += 1
        self._log(f"{watch.child.name} restarted")
        self._run_hook(watch)

    def _run_hook(self, watch: _Watch) -> None:
        watch.hook_due = None
        if watch.on_restart is None:
            return
        try:
            watch.on_restart()
        except Exception as exc:  # the child runs; its set-up is retried until it works
            watch.hook_due = self._clock() + 1.0
            self._log(f"{watch.child.name}: set-up after restart failed ({exc}); retrying")
