"""The proof that the venue layer is pluggable: a dragonfly server takes another's FIX gateway as a venue.

Server A runs on the simulator and serves FIX (``--fix-port``); server B has
A's gateway as its only venue (``--fix-venue upstream=fix://...``). Both are
real processes, read by real gRPC clients (dragonfly.v1). B's merged book
is A's merged book: every book B publishes with ``upstream`` in the merge
equals the book A published under the view sequence B's venue state names
(the W's DFViewSeq), level by level, prices and amounts; A's levels at one
price (two venues quoting it) are one level in B (a venue book has one level
a price, and no per-level originator: B's levels name ``upstream``).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import grpc
import grpc.aio
import pytest

from dragonfly.serve import dragonfly_v1_pb2 as v1
from dragonfly.serve import dragonfly_v1_pb2_grpc as v1_grpc
from latency.ports import free_port

SERVE = [sys.executable, "-m", "dragonfly.serve"]
Levels = list[tuple[float, float]]


@dataclass
class Server:
    """One ``python -m dragonfly.serve`` process and the log lines it wrote.

    Spawned by CPython's ``subprocess`` (vfork), not the event loop's (uvloop
    forks): a fork while this process has gRPC threads at work runs gRPC's fork
    handlers, which skip and can leave the child to crash before it runs
    (seen: A's restart dying with SIGSEGV and no output, 2 in 25 runs).
    """

    args: list[str]
    port: int
    proc: subprocess.Popen[bytes] | None = None
    lines: list[str] = field(default_factory=list)
    _pump: asyncio.Future[None] | None = None

    async def start(self) -> None:
        self.lines.clear()  # a restart: only the new process's lines count
        self.proc = subprocess.Popen(
            [*SERVE, *self.args, "--host", "127.0.0.1", "--port", str(self.port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        self._pump = asyncio.ensure_future(asyncio.to_thread(self._read, self.proc))
        await self.until("serving ethbtc merged top", timeout=30)

    def _read(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            self.lines.append(line.decode(errors="replace"))

    def count(self, text: str) -> int:
        return sum(text in line for line in list(self.lines))

    async def until(self, text: str, timeout: float = 20.0) -> None:
        try:
            async with asyncio.timeout(timeout):
                while not self.count(text):
                    if self.proc is not None and self.proc.poll() is not None:
                        if self._pump is not None:
                            await asyncio.wait_for(self._pump, 5)  # the last lines, the reason
                        code = self.proc.returncode
                        raise AssertionError(f"server exited ({code}): {''.join(self.lines)[-3000:]}")
                    await asyncio.sleep(0.05)
        except TimeoutError:
            raise AssertionError(f"no {text!r} in the log: {''.join(self.lines)[-3000:]}") from None

    async def stop(self) -> None:
        proc = self.proc
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.to_thread(proc.wait, 10)
            except subprocess.TimeoutExpired:
                proc.kill()
                await asyncio.to_thread(proc.wait)
        if self._pump is not None:
            await asyncio.wait_for(self._pump, 5)


@dataclass
class Book:
    """One dragonfly.v1 book update as a client read it."""

    sequence: int
    bids: list[tuple[str, float, float]]
    asks: list[tuple[str, float, float]]
    venues: dict[str, v1.VenueState]


class Reader:
    """Read a server's dragonfly.v1 book stream of one instrument in the background."""

    def __init__(self, port: int, instrument: str = "ethbtc") -> None:
        self.books: list[Book] = []
        self.port = port
        self.instrument = instrument
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        request = v1.SubscribeRequest(instruments=[self.instrument], kind=v1.KIND_BOOK)
        while True:  # across a restart of the server
            with contextlib.suppress(grpc.aio.AioRpcError):
                async with grpc.aio.insecure_channel(f"127.0.0.1:{self.port}") as channel:
                    async for update in v1_grpc.MarketDataStub(channel).Subscribe(request):
                        self.books.append(
                            Book(
                                update.sequence,
                                [(lv.venue, lv.price, lv.amount) for lv in update.book.bids],
                                [(lv.venue, lv.price, lv.amount) for lv in update.book.asks],
                                {s.venue: s for s in update.venues},
                            )
                        )
            await asyncio.sleep(0.1)

    async def until(self, condition: object, what: str, timeout: float = 20.0) -> Book:
        assert callable(condition)
        try:
            async with asyncio.timeout(timeout):
                while True:
                    if self.books and condition(self.books[-1]):
                        return self.books[-1]
                    await asyncio.sleep(0.02)
        except TimeoutError:
            raise AssertionError(f"timed out waiting for {what}") from None

    async def close(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


def by_price(levels: list[tuple[str, float, float]]) -> Levels:
    """A merged side as one level a price (amounts summed in the order given), best first."""
    out: Levels = []
    for _, price, amount in levels:
        if out and out[-1][0] == price:
            out[-1] = (price, out[-1][1] + amount)
        else:
            out.append((price, amount))
    return out


def upstream_in(book: Book) -> bool:
    state = book.venues.get("upstream")
    return state is not None and state.in_merge


@pytest.fixture
async def servers() -> AsyncIterator[tuple[Server, Server]]:
    fix_port = free_port()
    a = Server(
        ["ethbtc", "btcusdt", "--sim", "--sim-period", "0.05", "--fix-port", str(fix_port)], free_port()
    )
    b = Server(
        ["ethbtc", "btcusdt", "ethusdt", "--start-timeout", "5",
         "--fix-venue", f"upstream=fix://127.0.0.1:{fix_port}?heartbeat=1"],
        free_port(),
    )  # fmt: skip
    try:
        await a.start()
        await b.start()
        yield a, b
    finally:
        await b.stop()
        await a.stop()


async def test_a_server_takes_another_servers_fix_gateway_as_its_venue(
    servers: tuple[Server, Server],
) -> None:
    a, b = servers
    # Several instruments on ONE FIX session; the one A does not serve is refused, one clear line.
    assert a.count("DRAGONFLY-FEED logged on") == 1
    assert b.count("upstream rejected ethusdt: MarketDataRequestReject: unknown symbol") >= 1
    reader_a, reader_b = Reader(a.port), Reader(b.port)
    try:
        await reader_b.until(upstream_in, "upstream in B's merge")
        await asyncio.sleep(3.0)
        published = {book.sequence: book for book in reader_a.books}
        compared = 0
        for book in reader_b.books:
            if not upstream_in(book):
                assert not book.bids and not book.asks  # nothing but upstream to merge
                continue
            assert {lv[0] for lv in book.bids + book.asks} == {"upstream"}
            theirs = published.get(book.venues["upstream"].seq)
            if theirs is None:
                continue  # an A book this reader of A skipped (conflated)
            assert [(p, q) for _, p, q in book.bids] == by_price(theirs.bids)
            assert [(p, q) for _, p, q in book.asks] == by_price(theirs.asks)
            compared += 1
        assert compared >= 10, f"only {compared} of B's {len(reader_b.books)} books matched one of A's"
        # And the latest converge: B holds one of A's newest books (once A's is not crossed).
        latest_b = await reader_b.until(upstream_in, "upstream in B's merge")
        newest_a = max(book.sequence for book in reader_a.books)
        assert latest_b.venues["upstream"].seq >= newest_a - 5, (latest_b.venues["upstream"].seq, newest_a)
        # B's other instrument is A's too, on the same session.
        other = Reader(b.port, "btcusdt")
        try:
            await other.until(upstream_in, "btcusdt from upstream in B's merge", timeout=5)
        finally:
            await other.close()
        assert a.count("DRAGONFLY-FEED logged on") == 1

        # A goes away: the book leaves B's merge; A comes back: B reconnects and resubscribes.
        # (Nothing of ours dials A's ports while it is down: a loopback dial can land on its
        # own port number as the source port and hold it, and A could not bind it again.)
        await reader_a.close()
        await a.stop()
        await reader_b.until(lambda bk: not upstream_in(bk), "upstream out of B's merge", timeout=10)
        assert b.proc is not None and b.proc.returncode is None
        await a.start()
        try:
            back = await reader_b.until(upstream_in, "upstream back in B's merge", timeout=40)
        except AssertionError:
            print("B:", "".join(b.lines[-40:]), "A:", "".join(a.lines[-40:]))
            raise
        assert back.bids and back.asks
        assert b.count("upstream: disconnected") >= 1
    finally:
        await reader_a.close()
        await reader_b.close()
