"""The tests' server ports lie outside the kernel's ephemeral range, and are free when handed out."""

from __future__ import annotations

import socket

from latency.ports import LOWEST, ephemeral_range, free_port


def test_free_ports_are_below_the_ephemeral_range_and_bindable() -> None:
    lo, hi = ephemeral_range()
    assert 0 < lo <= hi <= 65535
    for _ in range(20):
        port = free_port()
        if lo - LOWEST >= 1000:
            assert LOWEST <= port < lo
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))  # free: nothing holds it


def test_a_port_held_by_a_listener_is_not_handed_out() -> None:
    held = []
    try:
        for _ in range(50):
            s = socket.socket()
            port = free_port()
            s.bind(("127.0.0.1", port))
            s.listen()
            held.append(s)
        ports = {s.getsockname()[1] for s in held}
        assert len(ports) == len(held)  # each new one was free, so none repeats a held one
    finally:
        for s in held:
            s.close()
