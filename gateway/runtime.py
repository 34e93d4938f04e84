"""Everything one gateway process holds: keys, providers, emitter, control plane, metrics.

Built from settings by `create_app`; `start()` runs inside the server's event loop (the
upstream session must be created there) and `aclose()` stops intake, then flushes.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import TYPE_CHECKING

from gateway.control import ControlPublisher, ControlReader
from gateway.emit import KafkaEmitter
from gateway.keys import KeyStore
from gateway.metrics import Metrics
from gateway.providers import OpenAICompatibleProvider, Provider
from gateway.providers.openai import create_session
from meterline.settings import Settings
from schemas.topics import REQUESTS

if TYPE_CHECKING:
    import aiohttp

__all__ = ["GatewayRuntime"]

log = logging.getLogger(__name__)


class GatewayRuntime:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.requests_topic = settings.topic(REQUESTS)
        self.keys = KeyStore()
        self.metrics = Metrics()
        self.emitter = KafkaEmitter(settings)
        self.control_reader = ControlReader(settings, self.keys)
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
            "meterline_gateway_keys_loaded", "Virtual keys known.", lambda: len(self.keys)
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
        self.control_reader.start()

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
        self.control_reader.close()
        for _, provider in self.providers:
            await provider.aclose()
        if self._session is not None:
            await self._session.close()
        await asyncio.to_thread(self.emitter.close)
        await asyncio.to_thread(self.publisher.close)
