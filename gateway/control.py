"""The control plane: apply control records to the key and budget views, and publish
admin changes (to `meterline.control` or `meterline.enforcement`) waiting for the broker.

Every gateway instance reads the whole topic itself (`meterline.views.ViewReader`): all
partitions from the beginning, no consumer group (ARCHITECTURE §7).
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import orjson
from confluent_kafka import KafkaError, KafkaException, Producer

from gateway.budgets import BudgetGuard
from gateway.guardrails.policies import GuardrailPolicies
from gateway.keys import KeyStore
from meterline.kafka import producer_config
from meterline.settings import Settings
from schemas.topics import CONTROL, parse_control_key

__all__ = ["ControlPublisher", "apply_control_record"]

log = logging.getLogger(__name__)


def apply_control_record(
    store: KeyStore,
    key: bytes | None,
    value: bytes | None,
    budgets: BudgetGuard | None = None,
    policies: GuardrailPolicies | None = None,
) -> bool:
    """Apply one control record to the key (budget, guardrail policy) view; False if it
    was ignored."""
    if value is None:  # tombstone: `key:<id>`, `budget:<id>`, `policy:<id>`
        record_type, record_id = parse_control_key((key or b"").decode(errors="replace"))
        if budgets is not None and record_type == "budget":
            return budgets.remove(record_id)
        if policies is not None and record_type == "policy":
            return policies.remove(record_id)
        return record_type == "key" and store.remove(record_id)
    try:
        record = orjson.loads(value)
    except orjson.JSONDecodeError:
        log.warning("control: skipping a record that is not JSON")
        return False
    if not isinstance(record, dict):
        return False
    if record.get("event_type") == "budget" and budgets is not None:
        return budgets.apply_record(record)
    if record.get("event_type") == "policy" and policies is not None:
        return policies.apply_record(record)  # guardrail kinds only; others: processors'
    if record.get("event_type") != "key":
        return False
    return store.apply(record)


class ControlPublisher:
    """Publishes control records and waits for the broker to acknowledge them."""

    def __init__(self, settings: Settings) -> None:
        self._topic = settings.topic(CONTROL)
        self._timeout_s = settings.gateway.emitter.delivery_timeout_ms / 1000
        self._producer = Producer(producer_config(settings, **{"linger.ms": 0}))
        self._lock = threading.Lock()

    def publish(
        self,
        key: str,
        value: bytes | None,
        topic: str | None = None,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> None:
        """Blocking (run it off the event loop); raises ConnectionError if not delivered.
        `topic` defaults to the control topic; a None value is a tombstone."""
        outcome: list[KafkaError | None] = []

        def deliver(error: KafkaError | None, _message: Any) -> None:
            outcome.append(error)

        with self._lock:
            try:
                self._producer.produce(
                    topic or self._topic, value, key.encode(), on_delivery=deliver, headers=headers
                )
            except (BufferError, KafkaException) as exc:
                raise ConnectionError(f"control topic unavailable: {exc}") from exc
            if self._producer.flush(self._timeout_s + 1):
                # Not acknowledged in time: withdraw it, so a 503 never turns into a change.
                self._producer.purge()
                self._producer.poll(0)
        if not outcome or outcome[0] is not None:
            reason = outcome[0].name() if outcome and outcome[0] else "no acknowledgement"
            raise ConnectionError(f"control topic unavailable: {reason}")

    def close(self) -> None:
        self._producer.flush(1)
