"""One map of conversations across the fleet (issue 28): two `pooltui proxy` processes on one Redis, each
conversation's turns sent to them in turn, stay on one key (its prompt cache); Redis restarted, nothing worse
than a cold cache: every turn is served, the conversations the proxies know stay where they were, each proxy says
once that it serves on its own view (its own map), and new conversations are shared again once the store is back."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import keys, make_scenario
from tests.shared.conftest import ask, log_until, proxy_env, start_proxies, stop_proxies

pytestmark = pytest.mark.timeout(150)
DOWN = "unreachable; serving on this process's own view"  # the store's status line: once per outage
BACK = "shared affinity: conversations are placed for the whole fleet again"


def turn(port: int, session: str, n: int) -> str:
    """One turn of conversation ``session`` through the proxy on ``port``: the key that served it."""
    answer = httpx.post(f"http://127.0.0.1:{port}/v1/chat/completions", headers={"x-pooltui-session": session},
                        json={"model": "m", "messages": [{"role": "user", "content": f"turn {n}"}]}, timeout=10.0)
    assert answer.status_code == 200, answer.text
    return answer.headers["x-pooltui-served-by"]


def conversations(ports: list[int], sessions: list[str], turns: int) -> dict[str, set[str]]:
    """Each conversation's turns sent to each proxy in turn: the keys that served each conversation."""
    served: dict[str, set[str]] = {s: set() for s in sessions}
    for n in range(turns):
        for i, session in enumerate(sessions):
            served[session].add(turn(ports[(n + i) % len(ports)], session, n))
    return served


def test_two_proxies_keep_a_conversation_on_one_key_through_a_redis_restart(redis_server, serve, tmp_path) -> None:
    sc = make_scenario({"name": "oai", "keys": keys("k", 3)})  # three keys, three organizations
    server = serve(sc)
    env = proxy_env(tmp_path, redis_server.url, server.base_url("oai"),
                    ", ".join(f'{{ label = "k{i}", secret = "env:K{i}" }}' for i in range(3)),
                    **{f"K{i}": k.secret for i, k in enumerate(sc.primary.keys)})
    procs, ports = start_proxies(2, env, logs=tmp_path)
    try:
        assert ask(ports[1]).status_code == 200  # the second proxy's rotation is one ahead of the first's
        served = conversations(ports, [f"chat-{i}" for i in range(6)], 4)
        assert all(len(keys_of) == 1 for keys_of in served.values()), served
        assert len(set().union(*served.values())) > 1  # the conversations were spread over the keys
        redis_server.stop()
        again = conversations(ports, list(served), 2)  # served all the same, each where it was
        assert again == served, again
        redis_server.start()
        for i in range(2):
            assert log_until(tmp_path / f"proxy{i}.log", BACK, 30.0) is not None, (tmp_path / f"proxy{i}.log")
            assert (tmp_path / f"proxy{i}.log").read_text().count(DOWN) == 1
        fresh = conversations(ports, [f"new-{i}" for i in range(6)], 4)
        assert all(len(keys_of) == 1 for keys_of in fresh.values()), fresh
    finally:
        stop_proxies(procs)
