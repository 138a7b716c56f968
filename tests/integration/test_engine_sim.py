"""The engine against the simulator over real loopback sockets."""

from __future__ import annotations

import asyncio
import math
import ssl
from pathlib import Path

import pytest

from dragonfly.core.engine import Engine, VenueEndpoint
from dragonfly.core.errors import ConfigError, SubscribeError
from dragonfly.sim import Simulator
from dragonfly.sim.tls import client_ssl_context, server_ssl_context
from dragonfly.venues import get_venue

from .conftest import endpoints, quiesce, reference_merge, wait_until


async def test_merged_book_matches_what_the_venues_sent(sim: Simulator, engine: Engine) -> None:
    sub = engine.books()
    seen = 0
    async for _ in sub:
        seen += 1
        if seen == 20:
            break
    book = await quiesce(sim, engine)
    sent = {v: sim.last_sent(v, "ethbtc") for v in ("binance", "bitstamp")}
    assert all(s is not None for s in sent.values())
    bids, asks = reference_merge({v: s for v, s in sent.items() if s is not None}, 10)
    assert list(book.bids) == bids
    assert list(book.asks) == asks
    assert book.spread == pytest.approx(asks[0].price - bids[0].price)
    assert {lv.exchange for lv in book.bids + book.asks} == {"binance", "bitstamp"}


async def test_a_dropped_venue_leaves_the_merge_and_comes_back(sim: Simulator, engine: Engine) -> None:
    await wait_until(lambda: all(f.listener.has_book for f in engine.feeds.values()), what="both books")
    sim.pause("binance")
    await sim.drop_clients("binance")
    await wait_until(lambda: not engine.feeds["binance"].listener.has_book, what="binance withdrawn")
    await asyncio.sleep(0.1)
    latest = engine.latest
    assert latest is not None
    assert {lv.exchange for lv in latest.bids + latest.asks} == {"bitstamp"}
    sim.resume("binance")
    await wait_until(lambda: engine.feeds["binance"].listener.has_book, timeout=15, what="binance back")
    assert engine.feeds["binance"].stats.connects == 2
    await wait_until(
        lambda: (
            engine.latest is not None
            and "binance" in {lv.exchange for lv in engine.latest.bids + engine.latest.asks}
        ),
        what="binance back in the merge",
    )


async def test_malformed_frames_are_counted_and_harmless(sim: Simulator, engine: Engine) -> None:
    await wait_until(lambda: engine.feeds["binance"].listener.has_book, what="binance book")
    for raw in (b"garbage", b'{"lastUpdateId":1,"bids":[["x","1"]],"asks":[]}', b"[1,2,3]"):
        sim.inject("binance", raw)
    sim.inject("bitstamp", b'{"event":"data","channel":"order_book_ethbtc","data":{"bids":[["1"]]}}')
    await wait_until(lambda: engine.feeds["binance"].listener.malformed >= 1, what="malformed counted")
    await wait_until(lambda: engine.feeds["bitstamp"].listener.malformed >= 1, what="malformed counted")
    # A bad frame withdraws its venue's book; the next good one brings it back.
    for venue in ("binance", "bitstamp"):
        await wait_until(lambda v=venue: engine.feeds[v].listener.has_book, what=f"{venue} back")
    book = await quiesce(sim, engine)
    sent = {v: sim.last_sent(v, "ethbtc") for v in ("binance", "bitstamp")}
    bids, asks = reference_merge({v: s for v, s in sent.items() if s is not None}, 10)
    assert (list(book.bids), list(book.asks)) == (bids, asks)
    assert engine.feeds["binance"].stats.connects == 1  # no reconnect for a bad frame


async def test_bitstamp_request_reconnect_is_honoured(sim: Simulator, engine: Engine) -> None:
    await wait_until(lambda: engine.feeds["bitstamp"].listener.has_book, what="bitstamp book")
    sim.request_reconnect("bitstamp")
    await wait_until(lambda: engine.feeds["bitstamp"].stats.connects == 2, timeout=15, what="reconnect")
    await wait_until(lambda: engine.feeds["bitstamp"].listener.has_book, what="bitstamp book again")


async def test_unknown_instrument_is_rejected_by_every_venue(sim: Simulator) -> None:
    eng = Engine("xyzabc", endpoints(sim))
    with pytest.raises(SubscribeError) as err:
        await eng.start(wait=10)
    text = str(err.value)
    assert "binance rejected instrument 'xyzabc' (XYZABC): not listed (Invalid symbol.)" in text
    assert "bitstamp rejected instrument 'xyzabc' (xyzabc): Bad subscription string." in text


async def test_one_venue_rejecting_leaves_the_other_streaming() -> None:
    async with (
        Simulator(venues=["binance"], instruments=["ethbtc"], period_s=0.02) as only_binance,
        Simulator(venues=["bitstamp"], instruments=["btcusdt"], period_s=0.02) as other,
    ):
        eng = Engine(
            "ethbtc",
            [
                VenueEndpoint(get_venue("binance"), only_binance.ws_url("binance")),
                VenueEndpoint(get_venue("bitstamp"), other.ws_url("bitstamp")),
            ],
        )
        report = await eng.start(wait=10)
        try:
            assert report["binance"] is None
            assert "Bad subscription string" in str(report["bitstamp"])
            await wait_until(lambda: eng.latest is not None, what="a merged book")
        finally:
            await eng.stop()


async def test_unreachable_endpoint_reports_and_retries() -> None:
    eng = Engine("ethbtc", [VenueEndpoint(get_venue("binance"), "ws://127.0.0.1:9/ws", "http://127.0.0.1:9")])
    report = await eng.start(wait=1.5)
    try:
        assert "cannot connect to ws://127.0.0.1:9/ws: connection refused" in str(report["binance"])
        assert eng.feeds["binance"].stats.connect_failures >= 1
    finally:
        await eng.stop()


async def test_tls_with_a_verified_self_signed_certificate(cert_files: tuple[Path, Path]) -> None:
    cert, key = cert_files
    async with Simulator(
        venues=["binance", "bitstamp"],
        instruments=["ethbtc"],
        period_s=0.02,
        ssl_context=server_ssl_context(cert, key),
    ) as tls_sim:
        assert tls_sim.ws_url("binance").startswith("wss://")
        eng = Engine("ethbtc", endpoints(tls_sim), ssl_context=client_ssl_context(cert))
        assert await eng.start(wait=10) == {"binance": None, "bitstamp": None}
        try:
            await wait_until(
                lambda: eng.latest is not None and len({lv.exchange for lv in eng.latest.bids}) == 2,
                what="books over TLS",
            )
        finally:
            await eng.stop()
        # Without trusting the certificate the connection must fail verification.
        untrusting = Engine(
            "ethbtc", endpoints(tls_sim, ["bitstamp"]), ssl_context=ssl.create_default_context()
        )
        report = await untrusting.start(wait=1.5)
        await untrusting.stop()
        assert "certificate" in str(report["bitstamp"]).lower()


def test_bad_configuration_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="invalid instrument"):
        Engine("eth btc!", [get_venue("binance")])
    with pytest.raises(ConfigError, match="deeper than binance"):
        Engine("ethbtc", [get_venue("binance")], depth=50)
    with pytest.raises(ConfigError, match="no venues"):
        Engine("ethbtc", [])


async def test_spread_is_nan_only_when_a_side_is_empty(sim: Simulator, engine: Engine) -> None:
    await wait_until(lambda: engine.latest is not None, what="a book")
    assert engine.latest is not None and not math.isnan(engine.latest.spread)
