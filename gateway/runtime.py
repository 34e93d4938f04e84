"""Everything one gateway process holds: keys, views, limits, providers, emitter, metrics.

Built from settings by `create_app`; `start()` runs inside the server's event loop (the
upstream session must be created there) and `aclose()` stops intake, then flushes.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import TYPE_CHECKING

from gateway.budgets import BudgetGuard
from gateway.control import ControlPublisher, apply_control_record
from gateway.emit import KafkaEmitter
from gateway.enforcement import EnforcementView
from gateway.enforcer import Enforcer
from gateway.guardrails import Guardrails
from gateway.keys import KeyStore
from gateway.metrics import Metrics
from gateway.pricing import PriceEstimator
from gateway.providers import OpenAICompatibleProvider, Provider
from gateway.providers.openai import create_session
from gateway.ratelimit import KeyLimiter
from gateway.reader import ViewReader
from gateway.tracing import GatewayTracer
from meterline.settings import Settings
from schemas.credentials import CredentialBook
from schemas.topics import BUDGETS, CONTROL, ENFORCEMENT, REQUESTS, SPANS

if TYPE_CHECKING:
    import aiohttp

__all__ = ["GatewayRuntime"]

log = logging.getLogger(__name__)


class GatewayRuntime:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.requests_topic = settings.topic(REQUESTS)
        self.keys = KeyStore()
        self.ingest_tokens = CredentialBook(kinds=("ingest_token",))  # admin listing only
        self.metrics = Metrics()
        self.emitter = KafkaEmitter(settings, metrics=self.metrics)
        self.tracer = (
            GatewayTracer(self.emitter.emit, settings.topic(SPANS))
            if settings.gateway_spans
            else None
        )
        self.enforcement = EnforcementView()
        self.budgets = BudgetGuard()
        self.limiter = KeyLimiter()
        self.guardrails = Guardrails(settings, self.emitter.emit, self.metrics)
        self.prices = PriceEstimator(settings.price_overrides)
        self.enforcement_topic = settings.topic(ENFORCEMENT)
        self.reader = ViewReader(
            settings,
            {
                settings.topic(CONTROL): lambda k, v: (
                    self.ingest_tokens.apply(k, v)
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
            stale_after_s=settings.enforcement_stale_after_s,
            fail_mode=settings.enforcement_fail_mode,
            metrics=self.metrics,
        )
        self.publisher = ControlPublisher(settings)
        self.providers: list[tuple[str, Provider]] = []
        self._session: aiohttp.ClientSession | None = None
        self._routes: dict[str, Provider | None] = {}
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

    async def start(self) -> None:
        self._session = create_session(self.settings.upstream_connect_timeout_s)
        for config in self.settings.providers:
            api_key = os.environ.get(config.api_key_env) if config.api_key_env else None
            if config.api_key_env and not api_key:
                log.warning(
                    "provider %s: environment variable %s is not set",
                    config.name,
                    config.api_key_env,
                )
            provider = OpenAICompatibleProvider(
                name=config.name,
                base_url=config.base_url,
                api_key=api_key,
                session=self._session,
                timeout_s=self.settings.upstream_timeout_s,
                price_provider=config.price_provider,
            )
            self.providers.append((config.name, provider))
        self.emitter.start()
        self.reader.start()

    def provider_for(self, model: str) -> Provider | None:
        """The provider serving `model` (first match in settings order), memoized."""
        try:
            return self._routes[model]
        except KeyError:
            pass
        config = self.settings.provider_for(model)
        provider = next((p for name, p in self.providers if config and name == config.name), None)
        if len(self._routes) < 10_000:  # clients choose model names: bound the memo
            self._routes[model] = provider
        return provider

    async def aclose(self) -> None:
        self.reader.close()
        for _, provider in self.providers:
            await provider.aclose()
        if self._session is not None:
            await self._session.close()
        if self.tracer is not None:
            self.tracer.shutdown()
        await asyncio.to_thread(self.emitter.close)
        await asyncio.to_thread(self.publisher.close)
