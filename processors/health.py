"""Can this worker consume? `/healthz` answers 503 while it cannot, never a blind "ok".

Faust keeps retrying on its own when the broker goes away or a topic disappears (an
embedded-broker restart loses every topic): the worker looks alive while nothing is
costed. So a periodic probe asks the broker for Meterline's topics, and the answer is
healthy only when the broker answered, every topic exists with its configured partitions,
and the consumer group gave this worker partitions.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from meterline.kafka import admin_config, partition_problem
from meterline.settings import Settings
from schemas.topics import TOPICS

__all__ = ["ConsumptionHealth", "Probe", "probe_topics"]


@dataclass(frozen=True)
class Probe:
    """What the broker said about our topics (pure data, made by `probe_topics`)."""

    reachable: bool
    problems: tuple[str, ...] = ()  # topics missing or with the wrong partition count
    error: str = ""


def probe_topics(
    settings: Settings, names: Iterable[str] = TOPICS, timeout_s: float = 2.0
) -> Probe:
    """Blocking (run it in an executor): one metadata request for every topic."""
    try:
        metadata = AdminClient(admin_config(settings)).list_topics(timeout=timeout_s)
    except KafkaException as exc:
        return Probe(reachable=False, error=str(exc.args[0]))
    problems = []
    for name in names:
        topic = metadata.topics.get(settings.topic(name))
        if topic is None or topic.error is not None:
            problems.append(f"{settings.topic(name)} missing")
        elif problem := partition_problem(settings, name, len(topic.partitions)):
            problems.append(problem)
    return Probe(reachable=True, problems=tuple(problems))


@dataclass
class ConsumptionHealth:
    """The latest probe plus the assignment; healthy only when both say so."""

    clock: Callable[[], float] = time.monotonic
    probe: Probe | None = None
    assigned_partitions: int = 0
    unhealthy_since: float | None = None

    def update(self, probe: Probe | None = None, assigned_partitions: int | None = None) -> None:
        """A new probe and/or assignment count (None: unchanged)."""
        if probe is not None:
            self.probe = probe
        if assigned_partitions is not None:
            self.assigned_partitions = assigned_partitions
        if not self.reasons():
            self.unhealthy_since = None
        elif self.unhealthy_since is None:
            self.unhealthy_since = self.clock()

    def reasons(self) -> list[str]:
        if self.probe is None:
            return ["not probed yet"]
        if not self.probe.reachable:
            return [f"broker unreachable: {self.probe.error}"]
        reasons = list(self.probe.problems)
        if not self.assigned_partitions:
            reasons.append("no partitions assigned yet")
        return reasons

    def report(self) -> tuple[bool, dict[str, Any]]:
        reasons = self.reasons()
        body: dict[str, Any] = {"status": "ok" if not reasons else "unavailable"}
        if reasons:
            body["reasons"] = reasons
            if self.unhealthy_since is not None:
                body["unavailable_for_s"] = round(self.clock() - self.unhealthy_since, 1)
        return not reasons, body
