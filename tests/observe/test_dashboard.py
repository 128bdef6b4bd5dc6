"""The Grafana dashboard (contrib/grafana/pooltui.json) asks only for metrics pooltui exports: every PromQL
expression in it is read and each metric name it uses is found in a real running proxy's /metrics."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.test_proxy import ProxyThread, proxied  # noqa: F401 - the fixture

DASHBOARD = Path(__file__).resolve().parents[2] / "contrib" / "grafana" / "pooltui.json"
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless", "offset",
            "inf", "nan"}
TOKEN = re.compile(r"(?P<num>\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)|(?P<name>[A-Za-z_:][A-Za-z0-9_:]*)(?P<call>\s*\()?")


def metric_names(expr: str) -> set[str]:
    """The metric names of one PromQL expression: what is left once strings, label matchers, ranges, grouping
    clauses, Grafana variables, numbers, functions and keywords are taken out."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    text = re.sub(r"\$\{?\w+\}?", " ", text)
    names = set()
    for m in TOKEN.finditer(text):
        if m.group("name") and not m.group("call") and m.group("name").lower() not in KEYWORDS:
            names.add(m.group("name"))
    return names


def expressions(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [v for k, v in node.items() if k == "expr" and isinstance(v, str)] + [
            e for v in node.values() for e in expressions(v)]
    if isinstance(node, list):
        return [e for v in node for e in expressions(v)]
    return []


def test_the_reader_finds_names() -> None:
    assert metric_names('histogram_quantile(0.95, sum by (le, provider) (rate(a_bucket{x=~"$p"}[$__rate_interval])))'
                        ) == {"a_bucket"}
    assert metric_names("sum(rate(a_total[5m])) / clamp_min(sum(rate(b_total[5m])), 1e-9)") == {"a_total", "b_total"}
    assert metric_names("label_values(c, provider)") == {"c", "provider"}  # a variable query names a label too


def test_every_dashboard_expression_names_exported_metrics(proxied) -> None:  # noqa: F811 - the fixture
    _, clients = proxied
    with ProxyThread(clients, admin_token="admin") as px:
        httpx.post(f"{px.service.url}/v1/chat/completions", timeout=30, json={
            "model": "gpt-sim-1", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]})
        text = httpx.get(f"{px.service.url}/metrics", headers={"authorization": "Bearer admin"}).text
    samples = [s for f in text_string_to_metric_families(text) for s in f.samples]
    exported = {s.name for s in samples}
    # the attempts of that request, one per key: a 429 on "limited", then "early" served
    attempts = {s.labels["key"]: s.value for s in samples if s.name == "pooltui_upstream_latency_seconds_count"}
    assert attempts == {"limited": 1, "early": 1}
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = expressions(dashboard["panels"])
    assert len(exprs) >= 10
    for expr in exprs:
        names = metric_names(expr)
        assert names, expr
        assert names <= exported, f"{sorted(names - exported)} in {expr!r} is not exported"
    query = dashboard["templating"]["list"][0]["query"]
    assert metric_names(query) - {"provider"} <= exported
    # what the dashboard is for: latency quantiles, 429s per key, key states, queue wait, fallback, tokens, spend
    used = set().union(*map(metric_names, exprs))
    assert {"pooltui_caller_latency_seconds_bucket", "pooltui_key_responses_total", "pooltui_key_state",
            "pooltui_caller_queue_wait_seconds_bucket", "pooltui_fallback_total", "pooltui_key_tokens_total",
            "pooltui_key_cost_dollars_total", "pooltui_upstream_latency_seconds_bucket"} <= used
