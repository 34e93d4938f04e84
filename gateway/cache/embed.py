"""The semantic cache's embedding call: the configured embedding model through the
gateway's own routing (retries, fallbacks, breakers), attributed to the requesting key
with its own RequestEvent (app `meterline-cache`), so what the cache costs is metered as
spend like any other request."""

from __future__ import annotations

import logging
from collections.abc import Callable

import orjson

from gateway.apis import EMBEDDINGS
from gateway.cache.vectors import Vector, unit
from gateway.errors import GatewayError
from gateway.keys import KeyInfo
from gateway.record import RequestRecord
from gateway.routing import Attempt, Deployment, Group, Router

__all__ = ["CACHE_APP", "MAX_EMBED_CHARS", "Embedder"]

log = logging.getLogger(__name__)

CACHE_APP = "meterline-cache"
MAX_EMBED_CHARS = 32_000  # prompts past this are embedded by their start


class Embedder:
    def __init__(
        self,
        router: Router,
        model: str,
        price_provider: Callable[[str], str | None],
        finish: Callable[[RequestRecord], None],
    ) -> None:
        self._router = router
        self._model = model
        self._price_provider = price_provider  # provider config name -> pricing id
        self._finish = finish  # emits the call's RequestEvent

    async def embed(self, text: str, key: KeyInfo) -> Vector | None:
        """The prompt's unit embedding, or None when the call fails (the request then
        misses: the cache never fails a request)."""
        record = RequestRecord(endpoint=EMBEDDINGS.endpoint)
        record.key, record.app, record.model_requested = key, CACHE_APP, self._model
        attempts: list[Attempt] = []
        vector = None
        try:
            chain = self._router.chain(self._model)
            data, _ = await self._router.call(
                chain,
                self._attempt(text[:MAX_EMBED_CHARS]),
                attempts,
                self._model,
                usable=lambda d: d.provider is not None and "embeddings" in d.provider.apis,
            )
            answer = orjson.loads(data)
            record.summary = EMBEDDINGS.summarize(answer)
            vector = unit(answer["data"][0]["embedding"])
        except GatewayError as exc:
            record.status_code, record.error_type = exc.status, exc.error_type
        except (orjson.JSONDecodeError, KeyError, IndexError, TypeError, ValueError):
            record.status_code, record.error_type = 502, "upstream_error"
        if attempts:
            last = attempts[-1]
            record.provider = self._price_provider(last.provider) or last.provider
            record.deployment = last.deployment
            record.upstream_api = EMBEDDINGS.name
        if vector is None and record.status_code == 200:
            record.status_code, record.error_type = 502, "upstream_error"
        self._finish(record)
        return vector

    def _attempt(self, text: str) -> Callable[[Group, Deployment, float], object]:
        async def attempt(group: Group, deployment: Deployment, left: float) -> bytes:
            assert deployment.provider is not None  # the router only picks usable ones
            model = deployment.upstream_model(self._model)
            return await deployment.provider.send(
                EMBEDDINGS.upstream_path,
                orjson.dumps({"model": model, "input": text}),
                model=model,
                timeouts=deployment.timeouts,
            )

        return attempt
