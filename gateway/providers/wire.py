"""How to address one provider: the URL and headers of a call, per provider kind.

Shared by the network transport (`http.py`) and the in-process one (`asgi.py`), so a
unit test's mock sees exactly the paths, query strings and headers a real upstream would.

- openai: `<base_url><path>`, `Authorization: Bearer <key>`.
- azure: `<base_url>/openai/deployments/<model><path>?api-version=<v>`, `api-key: <key>`.
- anthropic: `<base_url><path>`, `x-api-key: <key>`, `anthropic-version: <v>`.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

from meterline.routing_config import ProviderConfig, ProviderKind

__all__ = ["Wire"]


@dataclass(frozen=True, slots=True)
class Wire:
    kind: ProviderKind
    base_url: str
    headers: dict[str, str]
    api_version: str | None = None

    @classmethod
    def of(cls, config: ProviderConfig, api_key: str | None) -> Wire:
        headers = {"Content-Type": "application/json"}
        if config.kind == "anthropic":
            headers["anthropic-version"] = config.anthropic_version
            if api_key:
                headers["x-api-key"] = api_key
        elif config.kind == "azure":
            if api_key:
                headers["api-key"] = api_key
        elif api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        return cls(config.kind, config.base_url.rstrip("/"), headers, config.api_version)

    def url(self, path: str, model: str) -> str:
        if self.kind == "azure":
            deployment = quote(model, safe="")
            return (
                f"{self.base_url}/openai/deployments/{deployment}{path}"
                f"?api-version={quote(self.api_version or '', safe='')}"
            )
        return self.base_url + path

    def models_url(self) -> str:
        if self.kind == "azure":
            return f"{self.base_url}/openai/models?api-version={self.api_version}"
        return self.base_url + "/models"
