"""Upstream providers behind one transport interface."""

from gateway.providers.asgi import ASGIProvider
from gateway.providers.base import Provider
from gateway.providers.openai import OpenAICompatibleProvider
from gateway.providers.upstream import AiohttpUpstream, InProcessUpstream, Upstream

__all__ = [
    "ASGIProvider",
    "AiohttpUpstream",
    "InProcessUpstream",
    "OpenAICompatibleProvider",
    "Provider",
    "Upstream",
]
