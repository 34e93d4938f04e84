"""Prometheus text metrics with plain counters (a dict increment per request).

Hand-written on purpose, for the hot path (ARCHITECTURE §8): one request's `observe()`
(request count, latency histogram, input and output tokens) costs ~1.0 us here, the same
four updates through prometheus_client ~6.0 us, and a single labelled
`Counter.labels(...).inc()` ~1.6 us against ~0.18 us for `inc()` below (timeit, best of
5 x 200k, 2 slow vCPUs). The processors, off the hot path, use prometheus_client.

Per-model and per-provider series (requests, errors, tokens, latency, cost estimate) come
from the same single dict entry per (endpoint, status, provider, model): sums and prices
are computed at scrape time, so the hot path pays +0.7 us (1.16 -> 1.87 us per request,
timeit best of 7 interleaved rounds). Label cardinality is bounded (2,000 series, then
model "other"); per-key series only with `gateway.metrics_per_key`.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import defaultdict
from collections.abc import Callable

Rates = Callable[[str | None, str], tuple[float, float, float, float]]

__all__ = ["Metrics", "label_value"]

_MAX_UPSTREAM_SERIES = 2000
# Model names come from clients: past this many (endpoint, status, provider, model) series
# the rest count as model "other"; per-key series (off unless enabled) likewise as key
# "other".
_MAX_SERIES = 2000
_MAX_KEY_SERIES = 10_000
_NONE = "(none)"  # no provider tried (refused by the gateway) or no model named

_LATENCY_BUCKETS_S = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
)


def label_value(value: str) -> str:
    """A Prometheus label value: backslash, quote and newline escaped."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class Metrics:
    def __init__(self, *, per_key: bool = False) -> None:
        # (endpoint, status, provider, model) -> [requests, input tokens, output tokens,
        #   seconds, billed uncached input, output, cache read, cache write tokens]; every
        # request and token series is summed from it at scrape time (one dict entry per
        # request on the hot path).
        self.requests: dict[tuple[str, int, str, str], list[float]] = {}
        self._bucket_counts = [0] * (len(_LATENCY_BUCKETS_S) + 1)
        self._latency_sum = 0.0
        self._latency_count = 0
        self._gauges: dict[str, tuple[str, Callable[[], float]]] = {}
        self._counters: dict[str, str] = {}  # name -> help
        self.counts: defaultdict[tuple[str, str], int] = defaultdict(int)
        self._series: dict[str, tuple[str, Callable[[], list[tuple[str, float]]]]] = {}
        # (provider, deployment, model, outcome) -> [tries, seconds]
        self.upstream: dict[tuple[str, str, str, str], list[float]] = {}
        self._rates: Rates | None = None
        # key_id -> [requests, USD]; None unless per-key series are enabled
        self.keys: dict[str, list[float]] | None = {} if per_key else None

    def observe(
        self,
        endpoint: str,
        status: int,
        latency_s: float,
        tokens_in: int,
        tokens_out: int,
        provider: str | None = None,
        model: str | None = None,
        billed: tuple[int, int, int, int] | None = None,
        key_id: str | None = None,
    ) -> None:
        """One finished request. `billed`: the tokens a provider charges for (uncached
        input, output, cache read, cache write), None when nothing was (a cache hit, a
        refusal); they are priced at scrape time, not here (`price_with`)."""
        key = (endpoint, status, provider or _NONE, model or _NONE)
        entry = self.requests.get(key)
        if entry is None:
            if len(self.requests) >= _MAX_SERIES:
                key = (endpoint, status, key[2], "other")
            entry = self.requests.setdefault(key, [0, 0, 0, 0.0, 0, 0, 0, 0])
        entry[0] += 1
        entry[1] += tokens_in
        entry[2] += tokens_out
        entry[3] += latency_s
        if billed is not None:
            entry[4] += billed[0]
            entry[5] += billed[1]
            entry[6] += billed[2]
            entry[7] += billed[3]
        self._bucket_counts[bisect_left(_LATENCY_BUCKETS_S, latency_s)] += 1
        self._latency_sum += latency_s
        self._latency_count += 1
        if self.keys is not None and key_id:
            self._observe_key(key_id, key[2:], billed)

    def _observe_key(
        self, key_id: str, pair: tuple[str, str], billed: tuple[int, int, int, int] | None
    ) -> None:
        # Enabled on purpose only: priced per request (a memoized rate lookup).
        per_key = self.keys.get(key_id) if self.keys is not None else None
        if per_key is None and self.keys is not None:
            name = key_id if len(self.keys) < _MAX_KEY_SERIES else "other"
            per_key = self.keys.setdefault(name, [0, 0.0])
        if per_key is None:
            return
        per_key[0] += 1
        if billed is not None:
            per_key[1] += self._cost(pair, billed)

    def price_with(self, rates: Rates) -> None:
        """How to price tokens: (provider, model) -> USD per token (input, output, cache
        read, cache write), as the budget guard estimates spend (gateway.pricing)."""
        self._rates = rates

    def _cost(self, pair: tuple[str, str], tokens: tuple[int, int, int, int] | list) -> float:
        if self._rates is None:
            return 0.0
        provider, model = pair
        rates = self._rates(None if provider == _NONE else provider, model)
        return sum(n * rate for n, rate in zip(tokens, rates, strict=True))

    def gauge(self, name: str, help_text: str, read: Callable[[], float]) -> None:
        """Register a value read at scrape time (queue depth, spool size, keys)."""
        self._gauges[name] = (help_text, read)

    def gauge_series(
        self, name: str, help_text: str, read: Callable[[], list[tuple[str, float]]]
    ) -> None:
        """Register labelled values read at scrape time: `read()` -> [(labels, value)]."""
        self._series[name] = (help_text, read)

    def observe_upstream(
        self, provider: str, deployment: str, model: str, outcome: str, latency_s: float
    ) -> None:
        """One try against an upstream (`outcome`: its status code or failure). Model
        names can come from clients: past _MAX_UPSTREAM_SERIES series the rest are counted
        as model "other"."""
        key = (provider, deployment, model, outcome)
        entry = self.upstream.get(key)
        if entry is None:
            if len(self.upstream) >= _MAX_UPSTREAM_SERIES:
                key = (provider, deployment, "other", outcome)
            entry = self.upstream.setdefault(key, [0, 0.0])
        entry[0] += 1
        entry[1] += latency_s

    def counter(self, name: str, help_text: str) -> None:
        """Register a counter incremented with `inc(name, label)` (label: `reason="..."`)."""
        self._counters[name] = help_text

    def inc(self, name: str, labels: str = "") -> None:
        self.counts[(name, labels)] += 1

    def render(self) -> str:
        lines = [
            "# HELP meterline_gateway_requests_total Proxied requests by endpoint and status.",
            "# TYPE meterline_gateway_requests_total counter",
        ]
        by_status: defaultdict[tuple[str, int], int] = defaultdict(int)
        tokens = [0, 0]
        for (endpoint, status, _, _), entry in self.requests.items():
            by_status[(endpoint, status)] += int(entry[0])
            tokens[0] += int(entry[1])
            tokens[1] += int(entry[2])
        for (endpoint, status), count in sorted(by_status.items()):
            lines.append(
                f'meterline_gateway_requests_total{{endpoint="{endpoint}",status="{status}"}}'
                f" {count}"
            )
        lines += [
            "# HELP meterline_gateway_request_seconds Request latency through the gateway.",
            "# TYPE meterline_gateway_request_seconds histogram",
        ]
        cumulative = 0
        for bound, count in zip(_LATENCY_BUCKETS_S, self._bucket_counts, strict=False):
            cumulative += count
            lines.append(f'meterline_gateway_request_seconds_bucket{{le="{bound}"}} {cumulative}')
        lines.append(f'meterline_gateway_request_seconds_bucket{{le="+Inf"}} {self._latency_count}')
        lines.append(f"meterline_gateway_request_seconds_sum {self._latency_sum:.6f}")
        lines.append(f"meterline_gateway_request_seconds_count {self._latency_count}")
        lines += [
            "# HELP meterline_gateway_tokens_total Tokens reported by upstreams.",
            "# TYPE meterline_gateway_tokens_total counter",
        ]
        for direction, count in zip(("input", "output"), tokens, strict=True):
            lines.append(f'meterline_gateway_tokens_total{{direction="{direction}"}} {count}')
        for name, help_text in sorted(self._counters.items()):
            lines += [f"# HELP {name} {help_text}", f"# TYPE {name} counter"]
            series = [
                (labels, n) for (counter, labels), n in self.counts.items() if counter == name
            ]
            for labels, count in sorted(series) or [("", 0)]:
                lines.append(f"{name}{{{labels}}} {count}" if labels else f"{name} {count}")
        lines += [
            "# HELP meterline_gateway_upstream_requests_total Tries against upstreams, by "
            "provider, deployment, model and outcome (status code or failure).",
            "# TYPE meterline_gateway_upstream_requests_total counter",
        ]
        upstream = [
            (
                f'provider="{label_value(p)}",deployment="{label_value(d)}",'
                f'model="{label_value(m)}",outcome="{label_value(o)}"',
                count,
                seconds,
            )
            for (p, d, m, o), (count, seconds) in sorted(self.upstream.items())
        ]
        for labels, count, _ in upstream:
            lines.append(f"meterline_gateway_upstream_requests_total{{{labels}}} {int(count)}")
        lines += [
            "# HELP meterline_gateway_upstream_seconds_total Time spent in upstream tries.",
            "# TYPE meterline_gateway_upstream_seconds_total counter",
        ]
        for labels, _, seconds in upstream:
            lines.append(f"meterline_gateway_upstream_seconds_total{{{labels}}} {seconds:.6f}")
        lines += self._render_models()
        for name, (help_text, read) in sorted(self._gauges.items()):
            lines += [f"# HELP {name} {help_text}", f"# TYPE {name} gauge", f"{name} {read()}"]
        for name, (help_text, read_series) in sorted(self._series.items()):
            lines += [f"# HELP {name} {help_text}", f"# TYPE {name} gauge"]
            lines += [f"{name}{{{labels}}} {value}" for labels, value in read_series()]
        return "\n".join(lines) + "\n"

    def _render_models(self) -> list[str]:
        """Per (provider, model) series, per-provider sums of them (computed here, at
        scrape time, so the hot path pays for one dict entry), and per-key if enabled."""
        # (provider, model) -> [requests, errors, input, output, seconds, 4 billed counts]
        models: dict[tuple[str, str], list[float]] = {}
        for (_, status, provider, model), entry in self.requests.items():
            total = models.setdefault((provider, model), [0, 0, 0, 0, 0.0, 0, 0, 0, 0])
            total[0] += entry[0]
            total[1] += entry[0] if status >= 400 else 0
            for i in range(1, 8):
                total[i + 1] += entry[i]
        costs = {pair: self._cost(pair, entry[5:9]) for pair, entry in models.items()}
        providers: dict[str, list[float]] = {}
        for (provider, model), entry in models.items():
            total = providers.setdefault(provider, [0, 0, 0, 0, 0.0, 0.0])
            for i, value in enumerate(entry[:5]):
                total[i] += value
            total[5] += costs[(provider, model)]
        by_model = [
            (f'provider="{label_value(p)}",model="{label_value(m)}"', [*entry[:5], costs[(p, m)]])
            for (p, m), entry in sorted(models.items())
        ]
        by_provider = [
            (f'provider="{label_value(p)}"', entry) for p, entry in sorted(providers.items())
        ]
        lines: list[str] = []
        for scope, series in (("model", by_model), ("provider", by_provider)):
            prefix = f"meterline_gateway_{scope}"
            lines += _family(f"{prefix}_requests_total", f"Requests by {scope}.", series, 0)
            lines += _family(
                f"{prefix}_errors_total", f"Requests answered >= 400 by {scope}.", series, 1
            )
            lines += [
                f"# HELP {prefix}_tokens_total Tokens by {scope} and direction.",
                f"# TYPE {prefix}_tokens_total counter",
            ]
            for labels, entry in series:
                lines.append(f'{prefix}_tokens_total{{{labels},direction="input"}} {int(entry[2])}')
                lines.append(
                    f'{prefix}_tokens_total{{{labels},direction="output"}} {int(entry[3])}'
                )
            lines += [
                f"# HELP {prefix}_request_seconds Request latency by {scope}.",
                f"# TYPE {prefix}_request_seconds summary",
            ]
            for labels, entry in series:
                lines.append(f"{prefix}_request_seconds_sum{{{labels}}} {entry[4]:.6f}")
                lines.append(f"{prefix}_request_seconds_count{{{labels}}} {int(entry[0])}")
        lines += _family(
            "meterline_gateway_cost_estimate_usd_total",
            "The gateway's cost estimate in USD by provider and model (exact cost: processors).",
            by_model,
            5,
        )
        if self.keys is not None:
            keys = [(f'key_id="{label_value(k)}"', e) for k, e in sorted(self.keys.items())]
            lines += _family("meterline_gateway_key_requests_total", "Requests by key.", keys, 0)
            lines += _family(
                "meterline_gateway_key_cost_estimate_usd_total",
                "The gateway's cost estimate in USD by key.",
                keys,
                1,
            )
        return lines


def _family(
    name: str, help_text: str, series: list[tuple[str, list[float]]], index: int
) -> list[str]:
    lines = [f"# HELP {name} {help_text}", f"# TYPE {name} counter"]
    for labels, entry in series:
        value = entry[index]
        text = f"{value:.9f}" if isinstance(value, float) else str(int(value))
        lines.append(f"{name}{{{labels}}} {text}")
    return lines
