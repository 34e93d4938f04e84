"""The response cache: exact and semantic, partitioned by org or key (docs/cache.md).

`keys` (what makes two requests the same), `store` (bounded LRU/TTL memory), `vectors`
(cosine search), `policy` (modes per subject), `embed` (the semantic cache's embedding
call), `shared` (optional Redis/Valkey store) and `service` (the request path's hooks).
"""

from __future__ import annotations

from gateway.cache.entry import CachedAnswer
from gateway.cache.policy import CachePolicies, CachePolicy, policy_params_error
from gateway.cache.service import CacheLookup, ResponseCache

__all__ = [
    "CacheLookup",
    "CachePolicies",
    "CachePolicy",
    "CachedAnswer",
    "ResponseCache",
    "policy_params_error",
]
