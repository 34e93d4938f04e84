"""Everything one gateway process holds: keys, views, limits, providers, emitter, metrics.

The runtime owns the in-memory state (keys, decisions, budgets, limits) and takes its I/O
as collaborators: the emitter, the upstream, the view reader, the control publisher and
the clock. `GatewayRuntime.from_settings` is the one place production builds them
(Kafka, the upstream client); a unit test passes in-memory ones (`MemoryEmitter`,
`InProcessUpstream`, `StaticViews`) and drives the proxy with no broker and no socket.
`start()` runs inside the server's event loop (the upstream session must be created
there) and `aclose()` stops intake, then flushes.
"""

from __future__ import annotations

import asyncio
import time

import orjson

from gateway.budgets import BudgetGuard
from gateway.cache import ResponseCache
from gateway.cache.embed import Embedder
from gateway.cache.shared import SharedStore
from gateway.collaborators import Clock, ControlSink, ViewsFactory
from gateway.control import ControlPublisher, apply_control_record
from gateway.emit import EventEmitter, KafkaEmitter
from gateway.enforcement import EnforcementView
from gateway.enforcer import Enforcer
from gateway.guardrails import Guardrails
from gateway.keys import KeyStore
from gateway.metrics import Metrics
from gateway.pricing import PriceEstimator
from gateway.providers import NetworkUpstream, Provider, Timeouts, Upstream
from gateway.rate_share import RateShare
from gateway.ratelimit import KeyLimiter
from gateway.record import RequestRecord
from gateway.routing import Router
from gateway.routing.observe import RoutingMetrics
from gateway.tracing import GatewayTracer
from meterline.settings import Settings
from meterline.views import ViewReader
from schemas.credentials import CredentialBook
from schemas.topics import BUDGETS, CONTROL, ENFORCEMENT, REQUESTS, SPANS

__all__ = ["GatewayRuntime"]


class GatewayRuntime:
    """**Collaborators:** `emitter`, `upstream`, `views` (builds the view reader from the
    runtime's apply functions), `publisher` (admin API writes), `metrics` (shared with the
    emitter), `clock` (monotonic seconds for rate limits and view staleness)."""

    def __init__(
        self,
        settings: Settings,
        *,
        emitter: EventEmitter,
        upstream: Upstream,
        views: ViewsFactory,
        publisher: ControlSink,
        metrics: Metrics | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.requests_topic = settings.topic(REQUESTS)
        self.keys = KeyStore()
        self.ingest_tokens = CredentialBook(kinds=("ingest_token",))  # admin listing only
        self.metrics = metrics or Metrics(per_key=settings.gateway.metrics_per_key)
        self.emitter = emitter
        self.upstream = upstream
        self.tracer = (
            GatewayTracer(self.emitter.emit, settings.topic(SPANS))
            if settings.gateway.spans
            else None
        )
        self.enforcement = EnforcementView()
        self.budgets = BudgetGuard()
        self.limiter = KeyLimiter()
        self.rate_share: RateShare | None = None  # with Kafka: limits across the fleet
        self.guardrails = Guardrails(settings, self.emitter.emit, self.metrics)
        self.prices = PriceEstimator(settings.price_overrides)
        self.metrics.price_with(self.prices.rates)  # the cost estimate series, at scrape time
        self.cache = ResponseCache(settings.gateway.cache, self.metrics)
        self.enforcement_topic = settings.topic(ENFORCEMENT)
        self.reader = views(
            {
                settings.topic(CONTROL): lambda k, v: (
                    self.ingest_tokens.apply(k, v)
                    or self.cache.policies.apply(k, v)
                    or apply_control_record(self.keys, k, v, self.budgets, self.guardrails.policies)
                ),
                self.enforcement_topic: self.enforcement.apply,
                settings.topic(BUDGETS): self.budgets.apply_state,
            },
        )
        self.enforcer = Enforcer(
            self.enforcement,
            self.budgets,
            view_age_s=lambda: self.reader.age_s,
            stale_after_s=settings.gateway.enforcement.stale_after_s,
            fail_mode=settings.gateway.enforcement.fail_mode,
            monotonic=clock,
            metrics=self.metrics,
        )
        self.publisher = publisher
        self.providers: dict[str, Provider] = {}  # by config name, built at start
        upstream_s = settings.gateway.upstream_timeout_s
        self.router = Router(
            settings.routing,
            patterns=lambda model: (p := settings.provider_for(model)) and p.name,
            default_timeouts=Timeouts(
                connect_s=settings.gateway.upstream_connect_timeout_s,
                first_byte_s=upstream_s,
                total_s=upstream_s,
            ),
            clock=clock,
        )
        self.routing_metrics = RoutingMetrics(self.metrics, self.router)
        self.metrics.gauge(
            "meterline_gateway_emitter_queue_depth",
            "Events handed to librdkafka, not yet acknowledged.",
            lambda: self.emitter.queue_depth,
        )
        self.metrics.gauge(
            "meterline_gateway_spool_events",
            "Events waiting in the disk spool for the broker.",
            lambda: self.emitter.spool_size,
        )
        self.metrics.gauge(
            "meterline_gateway_spool_oldest_age_seconds",
            "Age of the oldest event waiting for the broker (0 when none waits).",
            lambda: round(self.emitter.oldest_undelivered_age_s or 0.0, 3),
        )
        self.metrics.gauge(
            "meterline_gateway_keys_loaded", "Virtual keys known.", lambda: len(self.keys)
        )
        self.metrics.gauge(
            "meterline_gateway_enforcement_view_age_seconds",
            "Seconds since the enforcement, budget and key views were last known current.",
            lambda: round(self.reader.age_s, 3),
        )
        self.metrics.gauge(
            "meterline_gateway_enforcement_decisions",
            "Enforcement decisions held (including expired ones not yet replaced).",
            lambda: len(self.enforcement),
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> GatewayRuntime:
        """The production runtime: Kafka emitter, view reader and control publisher, and
        providers over one pooled upstream client. The only place they are built."""
        metrics = Metrics(per_key=settings.gateway.metrics_per_key)
        runtime = cls(
            settings,
            emitter=KafkaEmitter(settings, metrics=metrics),
            upstream=NetworkUpstream(),
            views=lambda handlers: ViewReader(settings, handlers),
            publisher=ControlPublisher(settings),
            metrics=metrics,
        )
        runtime.rate_share = RateShare(
            settings, runtime.limiter, runtime.budgets, runtime.emitter.emit, runtime.clock
        )
        return runtime

    async def start(self) -> None:
        await self.upstream.start()
        for config in self.settings.providers:
            self.providers[config.name] = self.upstream.provider(config)
        self.router.bind(self.providers)
        self._start_cache()
        self.emitter.start()
        self.reader.start()
        if self.rate_share is not None:
            self.rate_share.start()

    def _start_cache(self) -> None:
        """The semantic cache's embedder and the shared store, once providers exist."""
        config = self.settings.gateway.cache
        self.cache.bind(
            Embedder(
                self.router,
                config.embedding_model,
                lambda name: p.price_provider if (p := self.providers.get(name)) else None,
                self.emit_record,
            ),
            SharedStore.from_url(config.redis_url) if config.redis_url else None,
        )

    def emit_record(self, record: RequestRecord) -> None:
        """Emit a RequestEvent the gateway makes on its own (the cache's embedding calls)."""
        key = record.key.key_id.encode() if record.key else b""
        self.emitter.emit(self.requests_topic, key, orjson.dumps(record.to_event()))

    async def aclose(self) -> None:
        if self.rate_share is not None:
            await self.rate_share.aclose()
        if self.cache.shared is not None:
            await self.cache.shared.aclose()
        self.reader.close()
        for provider in self.providers.values():
            await provider.aclose()
        await self.upstream.aclose()
        if self.tracer is not None:
            self.tracer.close()
        await asyncio.to_thread(self.emitter.close)
        await asyncio.to_thread(self.publisher.close)
