"""Event emitter: RequestEvents to Kafka, never blocking or failing a request."""

from gateway.emit.kafka import KafkaEmitter
from gateway.emit.spool import Spool

__all__ = ["KafkaEmitter", "Spool"]
