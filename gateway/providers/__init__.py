"""Upstream providers behind one transport interface."""

from gateway.providers.asgi import ASGIProvider
from gateway.providers.base import NATIVE_APIS, Provider, Timeouts
from gateway.providers.http import HttpProvider
from gateway.providers.upstream import InProcessUpstream, NetworkUpstream, Upstream

__all__ = [
    "NATIVE_APIS",
    "ASGIProvider",
    "HttpProvider",
    "InProcessUpstream",
    "NetworkUpstream",
    "Provider",
    "Timeouts",
    "Upstream",
]
