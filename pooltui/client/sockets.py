"""A listening socket for the servers pooltui runs (the proxy, the simulator): IPv4 or IPv6, port 0 = free."""

from __future__ import annotations

import socket


def listen(host: str, port: int, backlog: int = 2048) -> socket.socket:
    """Bound and listening on ``host:port`` (``port`` 0 picks a free one), inheritable by a child process."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(backlog)
    sock.set_inheritable(True)
    return sock
