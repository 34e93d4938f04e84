"""How each kind of provider is addressed: URL and headers per call."""

from __future__ import annotations

import pytest

from gateway.providers.wire import Wire
from meterline.routing_config import ProviderConfig


@pytest.mark.parametrize(
    ("config", "url", "auth"),
    [
        (
            ProviderConfig(name="o", base_url="https://api.openai.com/v1/"),
            "https://api.openai.com/v1/chat/completions",
            {"Authorization": "Bearer k"},
        ),
        (
            ProviderConfig(name="a", kind="anthropic", base_url="https://api.anthropic.com/v1"),
            "https://api.anthropic.com/v1/messages",
            {"x-api-key": "k", "anthropic-version": "2023-06-01"},
        ),
        (
            ProviderConfig(
                name="z",
                kind="azure",
                base_url="https://acme.openai.azure.com",
                api_version="2024-10-21",
            ),
            "https://acme.openai.azure.com/openai/deployments/prod%2F4o/chat/completions"
            "?api-version=2024-10-21",
            {"api-key": "k"},
        ),
    ],
)
def test_each_kind_gets_its_url_and_auth_headers(config, url, auth) -> None:
    wire = Wire.of(config, "k")
    path = "/messages" if config.kind == "anthropic" else "/chat/completions"
    assert wire.url(path, "prod/4o") == url
    assert wire.headers == {"Content-Type": "application/json", **auth}


def test_no_key_sends_no_auth_header_and_azure_needs_a_version() -> None:
    wire = Wire.of(ProviderConfig(name="local", base_url="http://vllm:8000/v1"), None)
    assert wire.headers == {"Content-Type": "application/json"}
    with pytest.raises(ValueError, match="api_version"):
        ProviderConfig(name="z", kind="azure", base_url="https://x")
