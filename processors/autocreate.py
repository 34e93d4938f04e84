"""Stop aiokafka (under Faust) from auto-creating topics through metadata requests.

aiokafka asks for topic metadata with `allow_auto_topic_creation=True` and offers no
setting for it. A broker that honours the flag (the embedded tansu broker does, with no
broker-side switch) then creates a missing topic with its own default partition count: after
an embedded-broker restart, a processors worker that asks before `create_topics` ran
would create `meterline.costs` with the wrong partitions for good. Meterline's topics are
only ever created explicitly (ARCHITECTURE §7), so the flag is turned off here, the one
place it can be: the request class aiokafka's client builds its metadata requests from.
"""

from __future__ import annotations

from aiokafka import client as aiokafka_client
from aiokafka.protocol.metadata import MetadataRequest

__all__ = ["disable_topic_auto_creation"]


class _ExplicitTopicsMetadataRequest(MetadataRequest):
    def __init__(
        self, topics: list[str] | None = None, allow_auto_topic_creation: bool | None = False
    ) -> None:
        super().__init__(topics, allow_auto_topic_creation)


def disable_topic_auto_creation() -> None:
    """Idempotent; affects every aiokafka client in this process."""
    aiokafka_client.MetadataRequest = _ExplicitTopicsMetadataRequest  # type: ignore[misc]
