"""Issue 5.1 and 5.2: no cross-site or rebinding access to the proxy; only the provider's own paths go upstream."""

from __future__ import annotations

import json
import socket
from urllib.parse import unquote

import httpx
import pytest

from pooltui.client.pool_client import PoolClient, Upstream
from pooltui.core import KeySpec, Pool
from pooltui.providers.profiles import profile_for
from pooltui.proxy.app import is_loopback
from pooltui.proxy.guard import AccessGuard, AccessPolicy, PathRefused, safe_path, safe_query
from pooltui.sim.server import ThreadedServer
from tests.safety.helpers import Recorder, client_on, raw_request
from tests.test_proxy import ProxyThread, proxied  # noqa: F401  (fixture)

CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


def _requests_upstream(server) -> int:
    return sum(sum(c.values()) for p in server.state.stats().values() for c in p.values())


def test_cross_site_text_plain_post_cannot_flip_a_key_or_spend_the_pool(proxied) -> None:  # noqa: F811
    server, clients = proxied
    with ProxyThread(clients) as px:
        url = px.service.url
        page = {"origin": "http://evil.example", "content-type": "text/plain", "sec-fetch-site": "cross-site"}
        command = json.dumps({"provider": "oai", "action": "toggle", "label": "good0"})
        r = httpx.post(f"{url}/pooltui/command", content=command, headers=page)
        assert r.status_code == 403
        r = httpx.post(f"{url}/v1/chat/completions", content=json.dumps(CHAT), headers=page)
        assert r.status_code == 403 and r.json()["error"]["type"] == "permission_error"
        r = httpx.post(f"{url}/v1/messages", content=json.dumps(CHAT), headers=page)
        assert r.status_code == 403 and r.json()["type"] == "error"  # the anthropic dialect
        # no Origin (a form post from a page that hides it): a POST that is not JSON is refused all the same
        r = httpx.post(f"{url}/v1/chat/completions", content=json.dumps(CHAT), headers={"content-type": "text/plain"})
        assert r.status_code == 415
        r = httpx.post(f"{url}/pooltui/command", content=command, headers={"content-type": "text/plain"})
        assert r.status_code == 415
        # JSON but no admin token: still closed, even on loopback
        assert httpx.post(f"{url}/pooltui/command", content=command,
                          headers={"content-type": "application/json"}).status_code == 401
        assert httpx.get(f"{url}/pooltui/state").status_code == 401
        assert httpx.get(f"{url}/metrics").status_code == 401
    assert clients["oai"].primary.pool.key("good0").state.value == "ok"
    assert _requests_upstream(server) == 0, "nothing reached the provider"


def test_allowed_origin_passes(proxied) -> None:  # noqa: F811
    _, clients = proxied
    for client in clients.values():
        client.primary.pool.disable("limited")
    with ProxyThread(clients, allow_origins=("http://localhost:3000/",)) as px:
        ok = httpx.post(f"{px.service.url}/v1/chat/completions", json=CHAT,
                        headers={"origin": "http://localhost:3000", "sec-fetch-site": "cross-site"})
        assert ok.status_code == 200


def test_a_rebinding_host_gets_nothing(proxied) -> None:  # noqa: F811
    server, clients = proxied
    with ProxyThread(clients) as px:
        port = px.service.port
        for host in (f"attacker.example:{port}", f"127.attacker.example:{port}", "attacker.example",
                     f"localhost:{port + 1}", f"127.0.0.1.nip.io:{port}"):
            status, body = raw_request(port, "POST /v1/chat/completions HTTP/1.1",
                                       {"host": host, "content-type": "application/json"}, json.dumps(CHAT).encode())
            assert status == 403, host
            assert b"is not this proxy" in body
            status, _ = raw_request(port, "GET /pooltui/state HTTP/1.1",
                                    {"host": host, "x-pooltui-admin-token": px.proxy.admin_token})
            assert status == 403, host
        assert _requests_upstream(server) == 0
        for host in (f"localhost:{port}", f"127.0.0.1:{port}", f"127.0.0.2:{port}"):
            status, _ = raw_request(port, "GET /pooltui/state HTTP/1.1",
                                    {"host": host, "x-pooltui-admin-token": px.proxy.admin_token})
            assert status == 200, host


def test_allow_host_lets_a_named_host_in(proxied) -> None:  # noqa: F811
    _, clients = proxied
    with ProxyThread(clients, allow_hosts=("pool.internal",)) as px:
        status, _ = raw_request(px.service.port, "GET /pooltui/state HTTP/1.1",
                                {"host": "pool.internal", "x-pooltui-admin-token": px.proxy.admin_token})
        assert status == 200


def test_loopback_is_decided_on_the_address_not_the_name() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("127.attacker.example")
    assert not is_loopback("0.0.0.0") and not is_loopback("10.0.0.1")


@pytest.mark.parametrize("path", ["/v1/../admin", "/v1/%2e%2e/admin", "/v1/%2E%2e/%2e%2E/x", "/v1/./models",
                                  "/v1/..%2fadmin", "/v1/%5c..%5cadmin", "/v1\\..\\admin", "//evil.example/v1/x",
                                  "/v1//models", "/v1/%00x"])
def test_traversal_and_odd_paths_never_go_upstream(path: str) -> None:
    recorder = Recorder()
    with ThreadedServer(recorder.app) as up, ProxyThread({"up": client_on(f"{up.url}/api/v1")}) as px:
        status, body = raw_request(px.service.port, f"GET {path} HTTP/1.1")
        assert status in (400, 404), (path, status, body)
    assert recorder.seen == [], f"{path} reached the upstream as {recorder.seen}"


def test_forwarded_paths_stay_under_the_base_and_drop_caller_credentials() -> None:
    recorder = Recorder()
    with ThreadedServer(recorder.app) as up, ProxyThread({"up": client_on(f"{up.url}/api/v1")}) as px:
        port = px.service.port
        status, _ = raw_request(port, "GET /v1/batches?key=caller-secret&limit=2&API_KEY=x&token=t HTTP/1.1",
                                {"connection": "close, x-hop-secret", "x-hop-secret": "caller-private"})
        assert status == 200
        r = httpx.get(f"{px.service.url}/v1/files/ft%3Agpt-4o",  # (a model's page is answered by the proxy)
                      headers={"authorization": "Bearer caller-own-key", "x-api-key": "caller-own-key",
                               "openai-organization": "org-caller", "openai-project": "proj-caller",
                               "cookie": "session=caller", "proxy-authorization": "Basic caller"})
        assert r.status_code == 200
        assert "x-up-hop" not in r.headers and r.headers["x-kept"] == "1"
    first, second = recorder.seen
    assert first["path"] == "/api/v1/batches" and first["query"] == "limit=2"  # (/v1/models: answered here)
    assert "x-hop-secret" not in first["headers"]
    assert first["headers"]["authorization"] == "Bearer sk-test-recorder-000000000001"
    assert unquote(second["path"]) == "/api/v1/files/ft:gpt-4o"
    # the caller's own credentials and account headers never go upstream: only the pooled key does
    assert second["headers"]["authorization"] == "Bearer sk-test-recorder-000000000001"
    for name in ("x-api-key", "openai-organization", "openai-project", "cookie", "proxy-authorization"):
        assert name not in second["headers"], name
    assert "caller-own-key" not in str(second["headers"])


def test_path_and_query_rules() -> None:
    assert safe_path(b"/v1/chat/completions") == "/v1/chat/completions"
    assert safe_path("/v1/models/ft%3Agpt-4o-mini%2B1") == "/v1/models/ft%3Agpt-4o-mini%2B1"
    for bad in ("/v1/%2e%2e", "v1/x", "/v1/%2F", "/v1/%0d%0aHost:x"):
        with pytest.raises(PathRefused):
            safe_path(bad)
    assert safe_query("a=1&key=s&Api_Key=s&access_token=t") == "a=1"
    assert safe_query("a=1&b=2") == "a=1&b=2"


def test_a_route_of_one_dialect_never_reaches_a_fallback_of_the_other() -> None:
    """An openai provider that cannot be reached, an anthropic fallback: an openai route with no translation
    (/v1/batches) is never tried on the anthropic one. The caller hears the openai provider's failure (a 5xx),
    not a refusal to translate (a 400 that would blame its request), and the anthropic provider gets nothing."""
    recorder = Recorder()
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        dead_port = closed.getsockname()[1]  # nothing listens there once the socket is closed
    with ThreadedServer(recorder.app) as up:
        primary = client_on(f"http://127.0.0.1:{dead_port}/v1").primary
        fallback = Upstream(profile_for("anthropic", name="ant", base_url=f"{up.url}/api"),
                            Pool("ant", [KeySpec("a", "sk-ant-test-recorder-000000001")]))
        with ProxyThread({"up": PoolClient(primary, [fallback], deadline_s=5)}) as px:
            r = httpx.post(f"{px.service.url}/v1/batches", json={"input_file_id": "f"}, timeout=30)
    assert r.status_code >= 500, (r.status_code, r.text)
    assert recorder.seen == [], recorder.seen


def test_the_guard_remembers_a_verdict_per_set_of_the_values_it_reads(proxied) -> None:  # noqa: F811
    """The guard judges each (method, Host, Origin, Sec-Fetch-Site, Content-Type) once; a request that differs
    from one judged before in any of them, on the same connection, is judged on its own."""
    _, clients = proxied
    for client in clients.values():
        client.primary.pool.disable("limited")
    with ProxyThread(clients) as px, httpx.Client(base_url=px.service.url, timeout=30) as http:
        port, body = px.service.port, json.dumps(CHAT)
        json_type = {"content-type": "application/json"}
        assert http.post("/v1/chat/completions", content=body, headers=json_type).status_code == 200
        text = http.post("/v1/chat/completions", content=body, headers={"content-type": "text/plain"})
        assert text.status_code == 415 and "POST needs content-type" in text.json()["error"]["message"]
        put = http.put("/v1/chat/completions", content=body, headers={"content-type": "text/plain"})
        assert put.status_code == 415 and "PUT needs content-type" in put.json()["error"]["message"]
        assert http.get("/v1/models", headers={"content-type": "text/plain"}).status_code == 200
        assert http.post("/v1/chat/completions", content=body,
                         headers={**json_type, "origin": "http://evil.example"}).status_code == 403
        assert http.post("/v1/chat/completions", content=body,
                         headers={**json_type, "sec-fetch-site": "cross-site"}).status_code == 403
        assert http.post("/v1/chat/completions", content=body,
                         headers={**json_type, "host": f"attacker.example:{port}"}).status_code == 403
        assert http.post("/v1/chat/completions", content=body, headers=json_type).status_code == 200


def test_the_guard_remembers_a_bounded_number_of_verdicts() -> None:
    guard = AccessGuard(lambda *_: None, AccessPolicy.build(8787, "127.0.0.1"))  # type: ignore[arg-type,return-value]
    json_type = (b"content-type", b"application/json")
    for n in range(400):
        assert guard.check_head("POST", [(b"host", f"name{n}.example:8787".encode()), json_type]) is not None
    assert len(guard._verdicts) <= 256
    assert guard.check_head("POST", [(b"host", b"127.0.0.1:8787"), json_type]) is None  # judged, not remembered
    assert guard.check_head("POST", [(b"host", b"evil.example:8787"), json_type])[0] == 403


def test_the_callers_header_lines_go_upstream_as_a_dict_of_them_gives() -> None:
    """Kept as bytes until they are forwarded: a latin-1 value arrives as it was, a repeated line once with its last
    value, a line its Connection names and the caller's credentials never."""
    recorder = Recorder()
    with ThreadedServer(recorder.app) as up, ProxyThread({"up": client_on(f"{up.url}/api/v1")}) as px:
        port = px.service.port
        head = (f"GET /v1/batches HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\nconnection: close, x-hop\r\nx-hop: private\r\n"
                "x-many: 1\r\nx-note: caf\xe9\r\nX-Many: 2\r\nauthorization: Bearer caller-own-key\r\n\r\n")
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(head.encode("latin-1"))
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
        assert data.startswith(b"HTTP/1.1 200"), data[:200]
    (seen,) = recorder.seen
    assert seen["headers"]["x-note"] == "caf\xe9" and seen["headers"]["x-many"] == "2"
    assert "x-hop" not in seen["headers"] and seen["headers"]["accept-encoding"] == "identity"
    assert seen["headers"]["authorization"] == "Bearer sk-test-recorder-000000000001"
