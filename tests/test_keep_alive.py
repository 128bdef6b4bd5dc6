"""No connection resets (issue 21, item 6): the proxy and the simulator keep an idle connection open longer
than clients keep one pooled (httpx and node 5 s, aiohttp 15 s), so a client reusing it is answered."""

from __future__ import annotations

import http.client
import time

from tests.test_proxy import ProxyThread, proxied  # noqa: F401  (fixture)


def _get(conn: http.client.HTTPConnection, path: str, headers: dict[str, str]) -> int:
    conn.request("GET", path, headers=headers)
    resp = conn.getresponse()
    resp.read()
    return resp.status


def test_a_connection_reused_after_5_5_s_idle_is_answered_by_the_proxy_and_the_simulator(proxied) -> None:  # noqa: F811
    server, clients = proxied
    with ProxyThread(clients) as px:
        to_proxy = http.client.HTTPConnection("127.0.0.1", px.service.port, timeout=5)
        to_sim = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
        sim_key = {"authorization": f"Bearer {clients['oai'].primary.pool.keys[-1].secret}"}
        try:
            assert _get(to_proxy, "/healthz", {}) == 200
            assert _get(to_sim, "/oai/v1/models", sim_key) == 200
            first = to_proxy.sock.getsockname(), to_sim.sock.getsockname()
            time.sleep(5.5)  # longer than uvicorn's default keep-alive (5 s): a server that closes first resets
            assert _get(to_proxy, "/healthz", {}) == 200  # http.client never reconnects by itself
            assert _get(to_sim, "/oai/v1/models", sim_key) == 200
            assert (to_proxy.sock.getsockname(), to_sim.sock.getsockname()) == first  # the same connections
        finally:
            to_proxy.close()
            to_sim.close()
