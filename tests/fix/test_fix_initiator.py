"""A FIX venue under a hub, against a hand-written acceptor: books, rejects, liveness, hostile input.

The hub, feed, listener and aggregators are the ones every WebSocket venue
runs under; only the spec's connection (the FIX initiator) differs.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from dragonfly.core.health import VenueStatus
from dragonfly.core.types import MergedBook
from dragonfly.fix.codec import FieldValue, encode, sending_time
from dragonfly.fix.initiator import FixInitiator
from dragonfly.fix.venue import FixVenue, fix_venue_spec
from dragonfly.sim.tls import client_ssl_context, make_self_signed, server_ssl_context
from dragonfly.topology.hub import Hub, VenueEndpoint

from .fakevenue import FakeVenue

BOOKS = {
    "ethbtc": ((("0.05", "1.5"), ("0.0499", "2")), (("0.0501", "1"), ("0.0502", "4"))),
    "btcusdt": ((("60000.1", "0.3"),), (("60000.2", "0.5"),)),
}


async def wait_until(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    try:
        async with asyncio.timeout(timeout):
            while not condition():
                await asyncio.sleep(0.01)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


@pytest.fixture
async def fake() -> AsyncIterator[FakeVenue]:
    venue = FakeVenue(dict(BOOKS))
    await venue.start()
    yield venue
    await venue.stop()


def hub_on(port: int, instruments: list[str], heartbeat: int = 5, **options: object) -> Hub:
    spec = fix_venue_spec(FixVenue("up", f"fix://127.0.0.1:{port}", heartbeat=heartbeat))
    return Hub(instruments, [VenueEndpoint(spec)], **options)  # type: ignore[arg-type]


def levels(hub: Hub, instrument: str) -> tuple[object, object] | None:
    book = hub.venue_book("up", instrument)
    return None if book is None else (book.bids, book.asks)


def initiator(hub: Hub) -> FixInitiator:
    conn = hub.feed("up").conn
    assert isinstance(conn, FixInitiator)
    return conn


async def test_several_instruments_on_one_session_and_their_updates(fake: FakeVenue) -> None:
    async with hub_on(fake.port, ["ethbtc", "btcusdt"]) as hub:
        assert hub.report == {"ethbtc": {"up": None}, "btcusdt": {"up": None}}
        assert fake.sessions == 1 and len(hub.connections["up"]) == 1
        assert levels(hub, "ethbtc") == (((0.05, 1.5), (0.0499, 2.0)), ((0.0501, 1.0), (0.0502, 4.0)))
        assert levels(hub, "btcusdt") == (((60000.1, 0.3),), ((60000.2, 0.5),))
        fake.publish("ethbtc", (("0.0498", "1"),), (("0.0503", "2"),))
        await wait_until(lambda: levels(hub, "ethbtc") == (((0.0498, 1.0),), ((0.0503, 2.0),)), "the update")
        merged = hub.declared("book", "ethbtc").current()
        assert isinstance(merged, MergedBook)
        assert [(lv.exchange, lv.price, lv.amount) for lv in merged.bids] == [("up", 0.0498, 1.0)]
        assert levels(hub, "btcusdt") == (((60000.1, 0.3),), ((60000.2, 0.5),))
        conn = fake.conns[0]
        assert conn.client == "DRAGONFLY-FEED" and conn.received.count(b"V") == 2


async def test_an_instrument_the_venue_refuses_is_one_clear_line_and_the_rest_carries_on(
    fake: FakeVenue, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    async with hub_on(fake.port, ["ethbtc", "xyzabc"]) as hub:
        assert hub.report["ethbtc"] == {"up": None}
        assert hub.report["xyzabc"] == {
            "up": "up rejected xyzabc: MarketDataRequestReject: unknown symbol (unknown symbol xyzabc)"
        }
        assert hub.rejected("xyzabc", "up") and not hub.rejected("ethbtc", "up")
        assert hub.feed("up", "xyzabc").health("xyzabc").status is VenueStatus.REJECTED
        fake.publish("ethbtc", (("0.0497", "1"),), (("0.0503", "2"),))
        await wait_until(lambda: levels(hub, "ethbtc") == (((0.0497, 1.0),), ((0.0503, 2.0),)), "the update")
    refusals = [r.getMessage() for r in caplog.records if "rejected xyzabc" in r.getMessage()]
    assert len(refusals) == 2  # the feed's line, and the hub's "skipped" line naming it
    assert fake.sessions == 1


async def test_hostile_messages_never_crash_the_venue_and_a_gap_starts_a_fresh_session(
    fake: FakeVenue,
) -> None:
    async with hub_on(fake.port, ["ethbtc"]) as hub:
        feed = hub.feed("up")

        async def fresh_session(n: int, what: str) -> None:
            await wait_until(lambda: fake.sessions == n and levels(hub, "ethbtc") is not None, what)

        conn = fake.conns[0]
        # A W whose entries are not numbers: the book leaves the merge until a good one.
        conn.send("W", [(262, "ethbtc"), (55, "ethbtc"), (268, 1), (269, "0"), (270, "abc"), (271, "1")])
        await wait_until(lambda: feed.health("ethbtc").status is VenueStatus.BAD_DATA, "bad data")
        assert levels(hub, "ethbtc") is None
        fake.publish("ethbtc", (("0.0495", "1"),), (("0.0505", "1"),))
        await wait_until(lambda: levels(hub, "ethbtc") == (((0.0495, 1.0),), ((0.0505, 1.0),)), "back")
        # A crossed book (the listener's rule): out of the merge, then back.
        fake.publish("ethbtc", (("0.051", "1"),), (("0.05", "1"),))
        await wait_until(lambda: feed.health("ethbtc").status is VenueStatus.BAD_DATA, "crossed")
        fake.publish("ethbtc", (("0.0494", "1"),), (("0.0505", "1"),))
        await wait_until(lambda: levels(hub, "ethbtc") == (((0.0494, 1.0),), ((0.0505, 1.0),)), "uncrossed")
        assert fake.sessions == 1
        # A bad checksum: the session drops it with a Reject; it may have been a W, and
        # the next message shows its number missing: a fresh session, fresh snapshots.
        conn.raw(fake.w(conn, "ethbtc", "ethbtc")[:-4] + b"999\x01")
        fake.publish("ethbtc", (("0.0496", "1"),), (("0.0504", "1"),))
        await fresh_session(2, "a fresh session after a garbled message")
        assert b"3" in conn.received
        assert levels(hub, "ethbtc") == (((0.0496, 1.0),), ((0.0504, 1.0),))
        # A sequence number ahead of the expected one: a fresh session.
        conn = fake.conns[-1]
        conn.seq += 5
        fake.publish("ethbtc", (("0.0493", "1"),), (("0.0505", "1"),))
        await fresh_session(3, "a fresh session after a gap")
        assert initiator(hub).gaps == 2
        assert levels(hub, "ethbtc") == (((0.0493, 1.0),), ((0.0505, 1.0),))
        # A sequence number below the expected one: the session ends (Logout), then a new one.
        fake.conns[-1].send("0", [], seq=1)
        await fresh_session(4, "a fresh session after a number too low")
        # A Logout from the venue: reconnect and resubscribe.
        fake.conns[-1].send("5", [(58, "maintenance")])
        await fresh_session(5, "a fresh session after the venue's Logout")
        # Bytes that are not FIX at all: the stream cannot be framed, the session ends.
        fake.conns[-1].raw(b"GET / HTTP/1.1\r\n\r\n")
        await fresh_session(6, "a fresh session after bytes that are not FIX")
        # An incremental refresh we did not ask for: books unknown until the next W.
        fake.conns[-1].send("X", [(262, "ethbtc"), (268, 0)])
        await wait_until(lambda: levels(hub, "ethbtc") is None, "withdrawn after an X")
        fake.publish("ethbtc", (("0.0492", "1"),), (("0.0505", "1"),))
        await wait_until(
            lambda: levels(hub, "ethbtc") == (((0.0492, 1.0),), ((0.0505, 1.0),)), "back after X"
        )
        assert feed.stats.disconnects == 5 and feed.state.value == "live"


async def test_an_oversized_message_ends_the_session_and_counts(fake: FakeVenue) -> None:
    spec = fix_venue_spec(FixVenue("up", f"fix://127.0.0.1:{fake.port}"))
    import dataclasses

    spec = dataclasses.replace(spec, max_message=4096)
    async with Hub(["ethbtc"], [VenueEndpoint(spec)]) as hub:
        conn = fake.conns[0]
        conn.send("W", [(262, "ethbtc"), (268, 0), (58, "x" * 5000)])
        await wait_until(lambda: fake.sessions == 2 and levels(hub, "ethbtc") is not None, "a fresh session")
        assert initiator(hub).oversized == 1


async def test_heartbeats_keep_a_quiet_book_in_and_silence_takes_it_out(fake: FakeVenue) -> None:
    # HeartBtInt 1 s: the book is stale 2 s after the last proof.
    async with hub_on(fake.port, ["ethbtc"], heartbeat=1) as hub:
        # The venue sends no W for 3 s, only answers our TestRequests: the book stays in.
        await asyncio.sleep(3.0)
        assert hub.feed("up").health("ethbtc").status is VenueStatus.LIVE
        assert levels(hub, "ethbtc") is not None
        # A venue that stops answering: out of the merge, the session ended, a new one made.
        fake.heartbeat_echo = False
        await wait_until(lambda: levels(hub, "ethbtc") is None, "the book withdrawn", timeout=6)
        fake.heartbeat_echo = True
        await wait_until(lambda: fake.sessions >= 2 and levels(hub, "ethbtc") is not None, "back", timeout=8)


async def test_a_venue_that_goes_away_is_retried_with_backoff_and_comes_back(fake: FakeVenue) -> None:
    port = fake.port
    async with hub_on(port, ["ethbtc"]) as hub:
        await fake.stop()
        await wait_until(lambda: levels(hub, "ethbtc") is None, "the book out while the venue is down")
        feed = hub.feed("up")
        await wait_until(lambda: feed.stats.connect_failures >= 2, "failed attempts")
        assert "connection refused" in feed.last_error
        await fake.start(port)
        await wait_until(lambda: levels(hub, "ethbtc") is not None, "the book back", timeout=15)


async def test_a_logon_the_venue_refuses_is_a_failed_attempt() -> None:
    async def refuse(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(4096)
        head: list[tuple[int, FieldValue]] = [(49, "DRAGONFLY"), (56, "DRAGONFLY-FEED"), (34, 1)]
        head.append((52, sending_time()))
        writer.write(encode("5", [*head, (58, "unknown CompID")]))
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(refuse, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        hub = hub_on(port, ["ethbtc"])
        report = await hub.start(wait=1.5)
        feed = hub.feed("up")
        assert report == {"ethbtc": {"up": feed.last_error}}
        assert feed.stats.connect_failures >= 1 and feed.stats.connects == 0
        assert "unknown CompID" in feed.last_error or "Logon" in feed.last_error
        await hub.stop()
    finally:
        server.close()


async def test_fixs_is_fix_over_tls_verified_against_the_trusted_certificate(tmp_path: Path) -> None:
    cert, key = make_self_signed(tmp_path)
    venue = FakeVenue(dict(BOOKS))
    port = await venue.start(tls=server_ssl_context(cert, key))
    spec = fix_venue_spec(FixVenue("up", f"fixs://127.0.0.1:{port}"))
    try:
        async with Hub(["ethbtc"], [VenueEndpoint(spec, ssl_context=client_ssl_context(cert))]) as hub:
            assert hub.report == {"ethbtc": {"up": None}}
            assert levels(hub, "ethbtc") == (((0.05, 1.5), (0.0499, 2.0)), ((0.0501, 1.0), (0.0502, 4.0)))
        # Not trusting the certificate: every attempt fails, and says why.
        hub = Hub(["ethbtc"], [VenueEndpoint(spec)])
        await hub.start(wait=1.0)
        feed = hub.feed("up")
        await wait_until(lambda: feed.stats.connect_failures >= 1, "a failed attempt")
        assert "certificate" in feed.last_error and venue.sessions == 1
        await hub.stop()
    finally:
        await venue.stop()
