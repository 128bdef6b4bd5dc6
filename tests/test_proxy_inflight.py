"""A request in flight through the proxy gets its answer when its key is removed, disabled or given a new
secret meanwhile (the config file changed, applied live): the upstream's 200 reaches the caller."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import openai
import pytest

from pooltui.session.local import config_session
from pooltui.store.config import ConfigEditor, load_config
from tests.conftest import config_on_simulator, keys
from tests.test_proxy import ProxyThread

LATENCY_MS = 1500  # every answer of the simulator waits this long: the config changes meanwhile


def remove(p, store) -> None:
    p.keys = [e for e in p.keys if e.label != "k0"]


def disable(p, store) -> None:
    p.key("k0").disabled = True


def new_secret(p, store) -> None:
    p.key("k0").secret = store.put(p.name, "k0-rotated", keys("k", 2)[1]["secret"])  # the simulator's k1


CHANGES = {"removed": remove, "disabled": disable, "new secret": new_secret}


def ask(url: str, stream: bool) -> str:
    sdk = openai.OpenAI(base_url=f"{url}/v1", api_key="caller", max_retries=0, timeout=20)
    messages = [{"role": "user", "content": "hi"}]
    if stream:
        chunks = sdk.chat.completions.create(model="m", messages=messages, max_tokens=4, stream=True)
        return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    return sdk.chat.completions.create(model="m", messages=messages, max_tokens=4).choices[0].message.content


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize("change", list(CHANGES))
def test_a_key_changed_while_its_request_is_in_flight_still_answers_the_caller(
        serve, tmp_path, change: str, stream: bool) -> None:
    path, store, server = config_on_simulator(serve, tmp_path, n_keys=1, keys=keys("k", 2),
                                              latency_ms=[LATENCY_MS, LATENCY_MS])
    session, _ = config_session(load_config(path), store, None, "main")
    pool = session.clients["main"].primary.pool
    usage: list = []  # what the history would record: the answer's attempt is not lost
    session.clients["main"].usage_listeners.append(usage.append)
    with ProxyThread(session.clients) as px:
        px.loop.call_soon_threadsafe(session.live.start)  # the config watcher, on the proxy's loop
        got: dict[str, object] = {}

        def call() -> None:
            try:
                got["answer"] = ask(px.service.url, stream)
            except Exception as exc:  # the test reads it below
                got["error"] = exc

        caller = threading.Thread(target=call)
        caller.start()
        # until the request is at the key: the proxy and the SDK starting on a loaded machine took over the 1.2 s
        # bound (3 of 6 failed in a run at -n 4); the change then has the answer's 1.5 s to land, checked below
        wait_for(lambda: pool.key("k0").inflight == 1, timeout_s=30.0)
        applied = session.live.applied
        edit: Callable = CHANGES[change]
        with ConfigEditor(path) as cfg:
            edit(cfg.provider("main"), store)
        wait_for(lambda: session.live.applied > applied)
        assert caller.is_alive(), "the change must land while the request is in flight"
        caller.join(10)
        px.loop.call_soon_threadsafe(session.live.close)
    assert "error" not in got, got.get("error")
    assert got["answer"]
    assert server.state.stats()["main"]["k0"] == {"200": 1}
    assert [(u.key, u.requests, u.ok) for u in usage if u.requests] == [("k0", 1, 1)]


def wait_for(condition: Callable[[], bool], timeout_s: float = 1.2) -> None:
    end = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.01)

