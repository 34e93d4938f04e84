"""Where the gateway's providers come from: one seam for the upstream transport.

`GatewayRuntime` asks its `Upstream` for one `Provider` per configured provider.
`NetworkUpstream` is production (one pooled upstream client, API keys from the
environment variables the config names); `InProcessUpstream` answers from an ASGI app in
the same process (the mock provider in unit tests), so the proxy is tested without sockets.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Protocol

from gateway.providers.asgi import ASGIApp, ASGIProvider
from gateway.providers.base import Provider
from gateway.providers.http import HttpProvider, create_client
from meterline.routing_config import ProviderConfig

if TYPE_CHECKING:
    from gateway.providers.transport import UpstreamClient

__all__ = ["InProcessUpstream", "NetworkUpstream", "Upstream"]

log = logging.getLogger(__name__)


class Upstream(Protocol):
    """Loop-bound: `start()` runs inside the server's event loop, `aclose()` last."""

    async def start(self) -> None: ...

    def provider(self, config: ProviderConfig) -> Provider: ...

    async def aclose(self) -> None: ...


def api_key(config: ProviderConfig) -> str | None:
    """The provider's key from the environment variable its config names (never logged)."""
    key = os.environ.get(config.api_key_env) if config.api_key_env else None
    if config.api_key_env and not key:
        log.warning(
            "provider %s: environment variable %s is not set", config.name, config.api_key_env
        )
    return key


class NetworkUpstream:
    """Providers over one shared upstream client (created in `start`, inside the loop)."""

    def __init__(self) -> None:
        self._client: UpstreamClient | None = None

    async def start(self) -> None:
        self._client = create_client()

    def provider(self, config: ProviderConfig) -> Provider:
        assert self._client is not None, "start() first"
        return HttpProvider(config=config, api_key=api_key(config), client=self._client)

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()


class InProcessUpstream:
    """Every configured provider answered by `app` (the path and query of its `base_url`
    and its kind's headers are what the app sees)."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def start(self) -> None:
        pass

    def provider(self, config: ProviderConfig) -> Provider:
        return ASGIProvider(config=config, app=self._app, api_key=api_key(config))

    async def aclose(self) -> None:
        pass
