"""Event emitter: RequestEvents to Kafka, never blocking or failing a request."""

from gateway.emit.base import EventEmitter
from gateway.emit.kafka import KafkaEmitter
from gateway.emit.memory import MemoryEmitter
from gateway.emit.spool import Spool

__all__ = ["EventEmitter", "KafkaEmitter", "MemoryEmitter", "Spool"]
