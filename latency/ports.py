"""Loopback ports for the servers the harness and tests start, outside the kernel's ephemeral range.

A port found by binding port 0 and closing the socket is an ephemeral one:
the kernel may hand it to the next socket that binds port 0 or connects,
before the server started on it gets to bind it. A server's own simulator
binds several such sockets, and CI failed on "address already in use" twice
in a row that way (and a client connecting to an ephemeral port nothing
listens on yet can even be given it as its own source port). A port below
the ephemeral range (``/proc/sys/net/ipv4/ip_local_port_range``) is never
handed out like that; each one is checked free by binding it before it is
returned. The latency harness's cells and chaos runs take their servers'
ports here too, and so do the tests (``tests/latency/test_ports.py``).
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
#: The lowest port handed out (above the well-known and most registered services' ports).
LOWEST = 10_000
_pick = random.Random()  # seeded from the OS: two test runs do not walk the same ports


def ephemeral_range() -> tuple[int, int]:
    """The kernel's ephemeral port range (Linux's default where it cannot be read)."""
    try:
        lo, hi = (int(x) for x in _RANGE.read_text().split())
    except (OSError, ValueError):
        return 32768, 60999
    return lo, hi


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A free loopback TCP port that no socket binding port 0 or connecting can be given."""
    lo, _ = ephemeral_range()
    if lo - LOWEST >= 1000:
        for _ in range(500):
            port = _pick.randrange(LOWEST, lo)
            if _bindable(port):
                return port
    with socket.socket() as s:  # no room below the range: an ephemeral port, as before
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
