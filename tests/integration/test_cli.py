"""The server and client as a user runs them: real processes, signals, exit codes."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import sys
from collections.abc import AsyncIterator

import pytest

from dragonfly.sim import Simulator
from latency.ports import free_port

SERVE = [sys.executable, "-m", "dragonfly.serve"]
CLIENT = [sys.executable, "-m", "dragonfly.client"]


async def run(*args: str, timeout: float = 30.0) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


class Server:
    def __init__(self, proc: asyncio.subprocess.Process, port: int) -> None:
        self.proc = proc
        self.port = port
        self.stderr = ""

    async def wait_serving(self, timeout: float = 20.0) -> None:
        assert self.proc.stderr is not None
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            remaining = deadline - asyncio.get_running_loop().time()
            line = await asyncio.wait_for(self.proc.stderr.readline(), max(remaining, 0.01))
            if not line:
                raise AssertionError(f"server exited early: {self.stderr}")
            self.stderr += line.decode()
            if "serving ethbtc merged top" in self.stderr:
                return

    async def stop(self, sig: int = signal.SIGTERM, timeout: float = 5.0) -> int:
        self.proc.send_signal(sig)
        _, err = await asyncio.wait_for(self.proc.communicate(), timeout)
        self.stderr += err.decode()
        assert self.proc.returncode is not None
        return self.proc.returncode


async def start_server(*extra: str) -> Server:
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        *SERVE,
        "ethbtc",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        *extra,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    return Server(proc, port)


async def start_serving(*extra: str, timeout: float = 20.0) -> Server:
    """A server that has said it serves, on a port again if the one chosen was taken meanwhile.

    ``free_port`` closes the port it found, so another socket could take it
    before the server binds it; its ports lie outside the kernel's ephemeral
    range (latency/ports.py), and should one be taken all the same, the server
    exits with "address already in use" and a new port is tried.
    """
    for attempt in range(3):
        server = await start_server(*extra)
        try:
            await server.wait_serving(timeout)
            return server
        except AssertionError:
            if "address already in use" not in server.stderr or attempt == 2:
                raise
            await server.proc.wait()
    raise AssertionError("unreachable")


@pytest.fixture
async def sim_server() -> AsyncIterator[Server]:
    server = await start_serving("--sim", "--sim-period", "0.02")
    yield server
    if server.proc.returncode is None:
        server.proc.kill()
        await server.proc.wait()


async def test_sim_server_streams_merged_books_to_the_client(sim_server: Server) -> None:
    code, out, err = await run(*CLIENT, "--server", f"127.0.0.1:{sim_server.port}", "--count", "5", "--json")
    assert code == 0, err
    books = [json.loads(line) for line in out.splitlines()]
    assert len(books) == 5
    for book in books:
        assert book["instrument"] == "ethbtc"
        assert len(book["bids"]) == 10 and len(book["asks"]) == 10
        prices = [lv["price"] for lv in book["bids"]]
        assert prices == sorted(prices, reverse=True)
    assert [b["sequence"] for b in books] == sorted(b["sequence"] for b in books)
    assert {lv["exchange"] for b in books for lv in b["bids"] + b["asks"]} == {"binance", "bitstamp"}
    code, out, _ = await run(*CLIENT, "--server", f"127.0.0.1:{sim_server.port}", "--count", "1")
    assert code == 0 and "spread" in out and "binance" in out


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
async def test_signal_stops_cleanly_with_a_subscriber_attached(sim_server: Server, sig: int) -> None:
    client = await asyncio.create_subprocess_exec(
        *CLIENT,
        "--server",
        f"127.0.0.1:{sim_server.port}",
        "--json",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert client.stdout is not None
    await asyncio.wait_for(client.stdout.readline(), 10)  # the stream is flowing
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    assert await sim_server.stop(sig) == 0
    assert loop.time() - t0 < 5
    assert "Traceback" not in sim_server.stderr
    await asyncio.wait_for(client.communicate(), 10)
    assert client.returncode == 0  # the stream ended: the client exits cleanly


async def test_unknown_instrument_exits_nonzero_naming_the_venues() -> None:
    code, _, err = await run(*SERVE, "xyzabc", "--sim", "--host", "127.0.0.1", "--port", str(free_port()))
    assert code == 1
    assert "binance rejected instrument 'xyzabc'" in err
    assert "bitstamp rejected instrument 'xyzabc'" in err
    assert "Traceback" not in err


async def test_port_in_use_is_one_clear_line() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code, _, err = await run(*SERVE, "ethbtc", "--sim", "--host", "127.0.0.1", "--port", str(port))
    assert code != 0
    assert f"127.0.0.1:{port}" in err and "in use" in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--endpoint", "binance"], "--endpoint expects VENUE=URL"),
        (["--endpoint", "binance=http://x"], "--endpoint expects VENUE=URL"),
        (["--endpoint", "nowhere=ws://127.0.0.1:1/ws"], "unknown venue 'nowhere'"),
        (["--venues", "binance,foo"], "unknown venue 'foo'"),
        (["--depth", "50"], "deeper than binance"),
        (["--depth", "0"], "--depth must be between 1 and 5000, got 0"),
        (["--depth", str(2**61 + 8)], f"--depth must be between 1 and 5000, got {2**61 + 8}"),
        (["--channel", "binance=diff", "--depth", "5001"], "--depth must be between 1 and 5000"),
        (["--queue", "0"], "--queue must be at least 1"),
        (["--max-lag-ms", "-1"], "--max-lag-ms must be >= 0"),
        (["--max-lag-ms", "nan"], "--max-lag-ms must be >= 0"),
    ],
)
async def test_bad_arguments_are_one_clear_line(args: list[str], message: str) -> None:
    code, _, err = await run(*SERVE, "ethbtc", *args, "--port", str(free_port()))
    assert code != 0
    assert message in err
    assert "Traceback" not in err


async def test_unreachable_endpoint_is_reported_and_retried() -> None:
    server = await start_serving(
        "--venues", "binance", "--endpoint", "binance=ws://127.0.0.1:9/ws", "--start-timeout", "1"
    )
    assert await server.stop() == 0
    assert "cannot connect to ws://127.0.0.1:9/ws: connection refused" in server.stderr
    assert "Traceback" not in server.stderr


async def test_endpoint_override_with_sim_points_one_venue_elsewhere() -> None:
    async with Simulator(venues=["binance"], instruments=["ethbtc"], seed=11, period_s=0.02) as own:
        server = await start_serving("--sim", "--endpoint", f"binance={own.ws_url('binance')}")
        try:
            code, out, err = await run(
                *CLIENT, "--server", f"127.0.0.1:{server.port}", "--count", "20", "--json"
            )
            assert code == 0, err
            assert own.clients("binance") == 1  # the server's binance feed is ours
            venues = {lv["exchange"] for line in out.splitlines() for lv in json.loads(line)["bids"]}
            assert "binance" in venues
        finally:
            assert await server.stop() == 0


async def test_a_venue_that_acks_but_sends_no_book_is_not_listed_as_serving() -> None:
    """The start-up line used to list a venue that acked and then sent nothing."""
    async with Simulator(venues=["binance", "bitstamp"], instruments=["ethbtc"], period_s=0.02) as sim:
        sim.fault("binance", "pause")  # acks, no data
        server = await start_serving(
            *(f"--endpoint={v}={sim.ws_url(v)}" for v in ("binance", "bitstamp")),
            *(f"--rest-endpoint={v}={sim.rest_url(v)}" for v in ("binance", "bitstamp")),
            timeout=30,
        )
        assert await server.stop() == 0
    line = next(ln for ln in server.stderr.splitlines() if "serving ethbtc merged top" in ln)
    assert " from bitstamp (live)" in line
    assert "binance: subscribed, but no book yet" in server.stderr
