"""Where the gateway's providers come from: one seam for the upstream transport.

`GatewayRuntime` asks its `Upstream` for one `Provider` per configured provider.
`AiohttpUpstream` is production (one pooled aiohttp session, API keys from the
environment variables the config names); `InProcessUpstream` answers from an ASGI app in
the same process (the mock provider in unit tests), so the proxy is tested without sockets.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Protocol

from gateway.providers.asgi import ASGIApp, ASGIProvider
from gateway.providers.base import Provider
from gateway.providers.http import HttpProvider, create_session
from meterline.routing_config import ProviderConfig

if TYPE_CHECKING:
    import aiohttp

__all__ = ["AiohttpUpstream", "InProcessUpstream", "Upstream"]

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


class AiohttpUpstream:
    """Providers over one shared aiohttp session (created in `start`, inside the loop)."""

    def __init__(self, *, connect_timeout_s: float) -> None:
        self._connect_timeout_s = connect_timeout_s
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        self._session = create_session(self._connect_timeout_s)

    def provider(self, config: ProviderConfig) -> Provider:
        assert self._session is not None, "start() first"
        return HttpProvider(config=config, api_key=api_key(config), session=self._session)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()


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
