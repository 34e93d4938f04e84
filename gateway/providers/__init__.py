"""Upstream providers behind one transport interface."""

from gateway.providers.base import Provider
from gateway.providers.openai import OpenAICompatibleProvider

__all__ = ["OpenAICompatibleProvider", "Provider"]
