"""What callers experience, first (issue 22 item 1): latency from arrival to answer with the waits for a key
included, how long they wait, how many wait now, on the panel view, the status line, the incident line,
``/pooltui/state`` and ``/metrics``. The real client, against the simulator over loopback (the storm on the
simulated clock, in-process); open-loop traffic."""

from __future__ import annotations

import asyncio
import contextlib

import httpx

from pooltui.client.pool_client import PoolUnavailableError
from pooltui.session.incident import alerts_of
from pooltui.session.simtime import run_simulated
from pooltui.session.views import ClientSeries, PanelView, panel
from pooltui.sim.inprocess import InProcessSim
from pooltui.sim.wiring import client_for_scenario
from tests.conftest import keys, make_scenario, pooltui_in_process
from tests.test_proxy import ProxyThread

# one key of 4 requests per 2 s (2/s): offered 8/s, callers queue for it
SLOW = {"name": "oai", "window_s": 2, "latency_ms": [5, 10], "keys": keys("k", 1, rpm=4)}


def test_a_storm_shows_callers_waiting_not_the_keys_quick_answers() -> None:
    """On the simulated clock (the engine and an in-process simulator on a fast-forwarded loop): the same client,
    waits and views, its 3 s of storm in a fraction of a second of work instead of 3 s of wall clock."""
    sc = make_scenario(SLOW)

    async def storm() -> tuple[int, PanelView]:
        sim = InProcessSim(sc)
        loop = asyncio.get_running_loop()
        client = client_for_scenario(sc, sim, seed=1, deadline_s=30, clock=sim.clock, http=sim.http_client(),
                                     latency_clock=loop.time)
        series = ClientSeries(client, sim.clock)

        async def caller(i: int) -> None:  # open-loop arrivals, 8 a second (test traffic paces by the wall clock)
            await asyncio.sleep(i / 8.0)
            with contextlib.suppress(PoolUnavailableError):
                await client.chat("hi")

        callers = [asyncio.create_task(caller(i)) for i in range(24)]
        seen_waiting = 0
        for _ in range(30):
            await asyncio.sleep(0.1)
            seen_waiting = max(seen_waiting, client.waiting)
        view = panel(client, series, sim.clock.now())
        for task in callers:
            task.cancel()
        await asyncio.gather(*callers, return_exceptions=True)
        await client.aclose()
        return seen_waiting, view

    seen_waiting, view = run_simulated(storm())
    assert seen_waiting > 4  # more than the old concurrency cap: the real backlog
    keys_p50 = view["keys"][0]["p50_ms"]
    wait, latency = view["wait"], view["latency"]
    assert latency["requests"] >= 4 and wait["p95_s"] is not None and wait["p95_s"] >= 0.5
    assert latency["p95_ms"] >= wait["p95_s"] * 1000 > 10 * keys_p50  # the keys answer quickly; callers wait
    assert wait["waiting"] == view["queued"] and wait["longest_now_s"] >= 0.5
    alert = next(a for a in alerts_of(view, 0.0) if a.kind == "queue")
    assert alert.text.startswith("CALLERS WAIT p95 ") and "waiting (longest" in alert.text
    assert "callers waited up to" in view["incident"]["summary"]


def test_the_proxy_serves_callers_latency_and_waits_on_state_and_metrics(serve) -> None:
    sc = make_scenario(SLOW)
    server = serve(sc)
    client = client_for_scenario(sc, server, seed=3, deadline_s=30)
    with ProxyThread({"oai": client}) as px:
        url = px.service.url
        admin = {"authorization": f"Bearer {px.proxy.admin_token}"}
        body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}

        async def burst() -> list[int]:
            async with httpx.AsyncClient(base_url=url, timeout=30) as http:
                answers = await asyncio.gather(*(http.post("/v1/chat/completions", json=body) for _ in range(8)))
            return [r.status_code for r in answers]

        assert asyncio.run(burst()) == [200] * 8
        state = httpx.get(f"{url}/pooltui/state", headers=admin).json()["providers"]["oai"]
        metrics = httpx.get(f"{url}/metrics", headers=admin).text
    assert state["latency"]["requests"] == 8 and state["wait"]["p95_s"] >= 0.5
    assert state["latency"]["p95_ms"] >= state["wait"]["p95_s"] * 1000
    assert 'pooltui_caller_latency_seconds_count{provider="oai"} 8.0' in metrics
    assert 'pooltui_caller_queue_wait_seconds_count{provider="oai"} 8.0' in metrics
    waited = float(next(line for line in metrics.splitlines()
                        if line.startswith('pooltui_caller_queue_wait_seconds_bucket{le="0.5",provider="oai"}')
                        ).split()[-1])
    assert waited < 8  # some waited longer than half a second
    assert 'pooltui_caller_longest_wait_seconds{provider="oai"}' in metrics


def test_traffic_says_what_callers_waited() -> None:
    import json
    import subprocess
    import sys

    args = ["traffic", "--scenario", "peak-hour", "--requests", "40", "--rate", "12", "--seed", "1"]
    # side by side (each spends its 3 s of arrivals waiting): the table from a real process, the JSON from the
    # same command in this process (no second Python start, ~0.6 s of CPU)
    table = subprocess.Popen([sys.executable, "-m", "pooltui", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
    as_json = pooltui_in_process(*args, "--json")
    out, err = table.communicate(timeout=120)
    assert table.returncode == 0, err
    line = next(x for x in out.splitlines() if x.startswith("callers: "))
    assert "from arrival to answer; waited for a key p95 " in line and ", longest " in line
    assert as_json.returncode == 0, as_json.stderr
    felt = json.loads(as_json.stdout)["callers"]
    assert felt["latency_p95_ms"] >= felt["wait_p95_s"] * 1000 > 0 and felt["wait_max_s"] >= felt["wait_p95_s"]


def test_the_fleet_shows_the_worst_processs_callers_and_every_waiting_caller() -> None:
    from pooltui.session.fleet_view import merge_panels
    from pooltui.session.views import empty_panel

    fast, slow = empty_panel("oai"), empty_panel("oai")
    fast["latency"] = {"requests": 90, "p50_ms": 30.0, "p95_ms": 60.0}
    fast["wait"] = {"p50_s": 0.0, "p95_s": 0.0, "slowest_s": 0.1, "waiting": 0, "longest_now_s": 0.0}
    slow["latency"] = {"requests": 10, "p50_ms": 900.0, "p95_ms": 7000.0}
    slow["wait"] = {"p50_s": 0.8, "p95_s": 6.9, "slowest_s": 9.1, "waiting": 16, "longest_now_s": 3.2}
    merged = merge_panels([fast, slow])
    assert merged["latency"] == {"requests": 100, "p50_ms": 900.0, "p95_ms": 7000.0}
    assert merged["wait"] == {"p50_s": 0.8, "p95_s": 6.9, "slowest_s": 9.1, "waiting": 16, "longest_now_s": 3.2}
