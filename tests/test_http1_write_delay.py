"""A request counts from its write, not its pick (core/learned.py): through the real client (our HTTP/1.1 sender)
against an upstream on loopback whose TLS handshake is slow, as a provider's is over the internet (50-300 ms), the
learnt estimate keeps each accepted request at the time it was written, which is when the provider starts counting
it, and fits a 429 from that time, not from its pick, which came a handshake earlier."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import socket
import ssl
import time
from pathlib import Path

import pytest
from cryptography import x509

from pooltui.client.pool_client import PoolClient, PoolUnavailableError, Upstream
from pooltui.client.upstream_http import tls_context
from pooltui.core.learned import LearnedLimit
from pooltui.core.pool import KeySpec, Pool
from pooltui.providers.profiles import profile_for
from tests.odd_upstream import completion, read_request

SECRET = "sk-test-write-delay-0000000000000001"
HANDSHAKE_S = 0.3  # the upstream starts its TLS handshake this long after the connection (more than any margin)


def certificate(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key, as PEM files in ``folder``."""
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, "pooltui test upstream")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = folder / "upstream.pem", folder / "upstream.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def test_the_learnt_estimate_counts_a_request_from_its_write_after_a_slow_handshake(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> None:
    """Regression: the pool kept an accepted request at its pick (the attempt's start), and fitted a 429 from the
    pick too, a handshake before the provider began counting the request: the pacing freed its slot that much
    early, and the window learnt was that much short. Our sender says when it wrote (``Http1Answer.written_s``)
    and the client passes it to the pool's report, for a success (read whole) as for a 429."""
    cert_path, key_path = certificate(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert_path))  # how a process trusts a private upstream's certificate
    tls_context.cache_clear()  # (the process's one context, built afresh from the environment: now, and after)
    request.addfinalizer(tls_context.cache_clear)
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert_path, key_path)
    arrived: list[float] = []  # when each request's head had reached the upstream (epoch seconds)
    retry_s = 1.5  # the 429's retry-after (precise: a fit reads it as said)

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One request per connection: the first a success stating no budget (the pool learns from it), the
        second a 429 saying a slot frees in ``retry_s``."""
        try:
            await read_request(reader)
            arrived.append(time.time())
            if len(arrived) == 1:
                body = completion()
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\n"
                             b"content-length: %d\r\n\r\n%s" % (len(body), body))
            else:
                body = b'{"error": {"message": "Rate limit reached for requests", "type": "requests"}}'
                writer.write(b"HTTP/1.1 429 Too Many Requests\r\ncontent-type: application/json\r\n"
                             b"retry-after-ms: %d\r\nconnection: close\r\ncontent-length: %d\r\n\r\n%s"
                             % (retry_s * 1000, len(body), body))
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            pass
        finally:
            writer.close()

    async def handshake_late(conn: socket.socket) -> None:
        """The client's hello waits in the socket unread: its connect ends once this handshake does."""
        await asyncio.sleep(HANDSHAKE_S)
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        protocol = asyncio.StreamReaderProtocol(reader)
        transport, _ = await loop.connect_accepted_socket(lambda: protocol, conn, ssl=server_tls)
        await answer(reader, asyncio.StreamWriter(transport, protocol, reader, loop))

    async def serve(listener: socket.socket) -> None:
        loop, tasks = asyncio.get_running_loop(), set()
        while True:
            conn, _ = await loop.sock_accept(listener)
            task = asyncio.create_task(handshake_late(conn))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

    async def run() -> tuple[list[float], LearnedLimit]:
        listener = socket.create_server(("127.0.0.1", 0))
        listener.setblocking(False)
        server = asyncio.create_task(serve(listener))
        profile = profile_for("openai", name="tls", base_url=f"https://127.0.0.1:{listener.getsockname()[1]}/v1")
        pool = Pool("tls", [KeySpec("k0", SECRET)], learn=True)
        client = PoolClient(Upstream(profile, pool), deadline_s=20, max_attempts=1)
        asked: list[float] = []
        try:
            async with client:
                asked.append(pool.clock.now())  # its pick comes after this
                assert (await client.chat("hi")).status == 200
                asked.append(pool.clock.now())
                with pytest.raises(PoolUnavailableError):  # a 429, and no other attempt allowed
                    await client.chat("hi")
        finally:
            server.cancel()
            listener.close()
        est = pool.key("k0").learned
        assert est is not None
        return asked, est

    asked, est = asyncio.run(run())
    assert len(arrived) == 2
    # each request was written once its handshake was done, at least HANDSHAKE_S after its pick, and is counted
    # from then (counted from its pick, each would be a few ms after asked[n]), not from a handshake later than
    # its arrival (the report reads the pool's clock once the answer is read and classified: on a loaded machine
    # up to 8 ms after its arrival was seen in a whole-suite run)
    first = est.accepted[0]
    assert asked[0] + HANDSHAKE_S <= first <= arrived[0] + 0.1, (first - asked[0], arrived[0] - asked[0])
    assert est.limit == 1  # the 429 fitted: "1 per window", the window from the accepted one's send to the slot's
    second = first + est.window_s - retry_s  # the 429's send time, as the fit read it
    assert asked[1] + HANDSHAKE_S <= second <= arrived[1] + 0.1, (second - asked[1], arrived[1] - asked[1])
