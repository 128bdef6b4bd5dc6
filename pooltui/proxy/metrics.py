"""Prometheus text for the proxy's /metrics: per key requests, outcomes and state; per pool usable keys
and queue depth (rendered with prometheus-client from the engine's counters, no global registry)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

from pooltui.core.health import KeyState

if TYPE_CHECKING:
    from pooltui.proxy.app import PoolProxy

OUTCOMES = ("ok", "rate_limited", "invalid", "forbidden", "quota", "server_errors", "transport", "request_errors")


class _PoolCollector:
    def __init__(self, proxy: PoolProxy) -> None:
        self.proxy = proxy

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily("pooltui_key_requests", "Attempts sent with each key",
                                       labels=["provider", "key"])
        outcomes = CounterMetricFamily("pooltui_key_responses", "Responses per key by outcome",
                                       labels=["provider", "key", "outcome"])
        tokens = CounterMetricFamily("pooltui_key_tokens", "Tokens per key", labels=["provider", "key", "direction"])
        cost = CounterMetricFamily("pooltui_key_cost_dollars", "Spend per key, from [prices] (0 without them)",
                                   labels=["provider", "key"])
        state = GaugeMetricFamily("pooltui_key_state", "1 for the key's current state",
                                  labels=["provider", "key", "state"])
        usable = GaugeMetricFamily("pooltui_pool_usable_keys", "Keys that can serve now", labels=["provider"])
        size = GaugeMetricFamily("pooltui_pool_keys", "Keys in the pool", labels=["provider"])
        queue = GaugeMetricFamily("pooltui_pool_queue_depth", "Requests waiting for a key", labels=["provider"])
        fallback = CounterMetricFamily("pooltui_fallback", "Requests that went to a fallback provider",
                                       labels=["provider"])
        learned_limit = GaugeMetricFamily(
            "pooltui_key_learned_limit", "Requests per window a key is learnt to allow (from its 429s; no header "
            "states it); model is empty for the key as a whole", labels=["provider", "key", "model"])
        learned_window = GaugeMetricFamily("pooltui_key_learned_window_seconds", "The learnt limit's window",
                                           labels=["provider", "key", "model"])
        learned_rate = GaugeMetricFamily("pooltui_key_learned_rate", "Requests per second the learnt limit allows",
                                         labels=["provider", "key", "model"])
        learned_sure = GaugeMetricFamily("pooltui_key_learned_sure", "How sure the learnt limit is, 0 to 1",
                                         labels=["provider", "key", "model"])
        hits = CounterMetricFamily("pooltui_key_affinity_hits", "Requests that stayed on this key because its "
                                   "prompt cache holds their conversation", labels=["provider", "key"])
        moves = CounterMetricFamily("pooltui_key_affinity_moves", "Conversations that moved off this key: it had no "
                                    "room (cooling, parked, at a limit or its cap)", labels=["provider", "key"])
        cache = CounterMetricFamily("pooltui_key_cache_tokens", "Prompt tokens each key's answers read from or "
                                    "wrote to their organization's prompt cache, and the cacheable input",
                                    labels=["provider", "key", "kind"])
        hit_rate = GaugeMetricFamily("pooltui_key_cache_hit_ratio", "Prompt tokens read from the cache / cacheable "
                                     "input tokens, 0 to 1 (keys whose answers reported caching)",
                                     labels=["provider", "key"])
        round_robin = CounterMetricFamily(
            "pooltui_key_cost_round_robin_dollars", "What the key's answers would have cost under round-robin without "
            "affinity (an estimate from each answer's cache use: see README, Prompt caches), from [prices]",
            labels=["provider", "key"])
        conversations = GaugeMetricFamily("pooltui_pool_conversations", "Conversations whose key the pool remembers "
                                          "(affinity on)", labels=["provider"])
        seen = set()  # a provider's pool is reported once, however many clients use it (one pool per provider)
        waiting: dict[str, int] = {}
        for client in self.proxy.clients.values():
            waiting[client.primary.name] = waiting.get(client.primary.name, 0) + client.waiting
        for client in self.proxy.clients.values():
            fallback.add_metric([client.primary.name], client.fallback_used)
            for up in client.upstreams:
                pool = up.pool
                if pool is None or up.name in seen:
                    continue
                seen.add(up.name)
                usable.add_metric([up.name], pool.usable())
                size.add_metric([up.name], len(pool))
                queue.add_metric([up.name], waiting.get(up.name, 0))
                if pool.affinity != "off":
                    conversations.add_metric([up.name], pool.conversations)
                for key in pool.keys:
                    s = key.stats
                    requests.add_metric([up.name, key.label], s.requests)
                    for outcome in OUTCOMES:
                        outcomes.add_metric([up.name, key.label, outcome], getattr(s, outcome))
                    tokens.add_metric([up.name, key.label, "in"], s.tokens_in)
                    tokens.add_metric([up.name, key.label, "out"], s.tokens_out)
                    cost.add_metric([up.name, key.label], s.cost)
                    if key.cacheable:
                        cache.add_metric([up.name, key.label, "read"], key.cache_read)
                        cache.add_metric([up.name, key.label, "write"], key.cache_write)
                        cache.add_metric([up.name, key.label, "cacheable"], key.cacheable)
                        hit_rate.add_metric([up.name, key.label], key.cache_read / key.cacheable)
                        round_robin.add_metric([up.name, key.label], s.cost + key.cost_round_robin_extra)
                    if pool.affinity != "off":
                        hits.add_metric([up.name, key.label], key.affinity_hits)
                        moves.add_metric([up.name, key.label], key.affinity_moves)
                    for st in KeyState:
                        state.add_metric([up.name, key.label, st.value], 1.0 if key.state is st else 0.0)
                    for fit in key.estimates():
                        labels = [up.name, key.label, fit.model]
                        learned_limit.add_metric(labels, fit.limit)
                        learned_window.add_metric(labels, fit.window_s)
                        learned_rate.add_metric(labels, fit.limit / fit.window_s)
                        learned_sure.add_metric(labels, fit.estimate.sure)
        proxied = CounterMetricFamily("pooltui_proxy_requests", "Requests answered by the proxy",
                                      labels=["api", "status"])
        for (api, status), n in sorted(self.proxy.stats.requests.items()):
            proxied.add_metric([api, str(status)], n)
        refused = CounterMetricFamily("pooltui_proxy_refused", "Requests refused: wrong or missing token, Host, "
                                      "origin or content type")
        refused.add_metric([], self.proxy.stats.refused)
        yield from (requests, outcomes, tokens, cost, state, learned_limit, learned_window, learned_rate, learned_sure,
                    usable, size, queue, fallback, proxied, refused, hits, moves, conversations, cache, hit_rate,
                    round_robin)
        yield from self._callers()
        yield self._upstream()

    def _upstream(self) -> Metric:
        """Each upstream attempt's latency per key (buckets: observe.UPSTREAM_BUCKETS)."""
        family = HistogramMetricFamily("pooltui_upstream_latency_seconds", "Upstream attempts from send to the "
                                       "answer (a stream's first event), per key; waits for a key not included",
                                       labels=["provider", "key"])
        for (provider, key), hist in sorted(self.proxy.observer.upstream_latency.items()):
            buckets = [(f"{bound:g}", n) for bound, n in hist.cumulative()] + [("+Inf", hist.count)]
            family.add_metric([provider, key], buckets, hist.total)
        return family

    def _callers(self) -> Iterator[Metric]:
        """What callers felt, per provider they called: latency from arrival to answer (waits included) and the
        time spent waiting for a key, as histograms; the longest wait of a request waiting now."""
        latency = HistogramMetricFamily("pooltui_caller_latency_seconds", "Callers' requests from arrival to answer "
                                        "(first byte of a stream), waits for a key included", labels=["provider"])
        wait = HistogramMetricFamily("pooltui_caller_queue_wait_seconds", "Time callers' requests spent waiting "
                                     "for a key", labels=["provider"])
        longest = GaugeMetricFamily("pooltui_caller_longest_wait_seconds", "How long the request waiting longest "
                                    "now has waited for a key", labels=["provider"])
        now = self.proxy.clock.now()
        for name, series in self.proxy.series.items():
            for family, hist in ((latency, series.latency_hist), (wait, series.wait_hist)):
                buckets = [(f"{bound:g}", n) for bound, n in hist.cumulative()] + [("+Inf", hist.count)]
                family.add_metric([name], buckets, hist.total)
            longest.add_metric([name], series.client.longest_wait(now))
        yield from (latency, wait, longest)


def render(proxy: PoolProxy) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_PoolCollector(proxy))
    return generate_latest(registry)
