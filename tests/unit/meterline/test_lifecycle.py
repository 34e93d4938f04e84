"""Every long-lived component has the lifecycle shape meterline.lifecycle writes down:
thread-owning ones sync start()/close(), loop-bound ones async start()/aclose()."""

from __future__ import annotations

import inspect

import pytest

from gateway.collaborators import StaticViews
from gateway.emit import KafkaEmitter, MemoryEmitter
from gateway.providers import InProcessUpstream, NetworkUpstream
from gateway.runtime import GatewayRuntime
from ingest.controlplane.restore import ControlPlaneWatch
from ingest.otlp.credentials import CredentialReader
from ingest.otlp.publisher import KafkaSpanPublisher
from ingest.server import IngestService
from meterline.lifecycle import AsyncComponent, Component
from meterline.views import ViewReader

THREADED = [
    KafkaEmitter,
    MemoryEmitter,
    ViewReader,
    StaticViews,
    KafkaSpanPublisher,
    CredentialReader,
    ControlPlaneWatch,
    IngestService,
]
LOOP_BOUND = [GatewayRuntime, NetworkUpstream, InProcessUpstream]


@pytest.mark.parametrize("cls", THREADED, ids=lambda c: c.__name__)
def test_thread_owning_components_start_and_close(cls: type) -> None:
    assert issubclass(cls, Component)
    assert not inspect.iscoroutinefunction(cls.start)
    assert not inspect.iscoroutinefunction(cls.close)
    assert not hasattr(cls, "stop") and not hasattr(cls, "shutdown")


@pytest.mark.parametrize("cls", LOOP_BOUND, ids=lambda c: c.__name__)
def test_loop_bound_components_start_and_aclose(cls: type) -> None:
    assert issubclass(cls, AsyncComponent)
    assert inspect.iscoroutinefunction(cls.start)
    assert inspect.iscoroutinefunction(cls.aclose)
