"""The FIX 4.4 gateway against an independent engine: QuickFIX/C++ (its Python binding) as the client.

QuickFIX validates everything the gateway sends against its own FIX44.xml; a
message it will not accept becomes a Reject it sends, or a line in its event
log, and every test fails on either (:meth:`QuickFixClient.problems`).
Marked ``interop`` (deselected by default): ``python3 dev.py interop`` builds
the quickfix wheel once into a cache, installs it and runs these tests.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import pytest

pytest.importorskip(
    "quickfix",
    reason="QuickFIX is not installed: `python3 dev.py interop` builds it once (cached), installs it "
    "into .venv and runs these tests",
)

# After the skip: qfclient imports quickfix.
from .conftest import Gateway
from .qfclient import QuickFixClient, Snapshot, session

pytestmark = pytest.mark.interop

#: The simulated venues the gateway merges (the server's default venues).
VENUES = {"binance", "bitstamp"}
#: Levels a side of the merged book (the server's default --depth).
DEPTH = 10


def canonical(symbol: str) -> str:
    """``ETH/BTC``, ``eth-btc``, ``ethbtc`` -> ``ethbtc``."""
    return symbol.lower().replace("/", "").replace("-", "")


def assert_sane(s: Snapshot, most: int) -> None:
    """A W is a sound book: bids descending, asks ascending, every level from a venue, no venue crossed.

    The merged book may be locked or crossed across venues (it is published
    as is, see dragonfly.core.types.MergedBook), so the touch rule holds per
    venue: each venue's best bid is below its best ask.
    """
    bids, asks = s.bids, s.asks
    assert bids and asks, s
    assert len(bids) <= most and len(asks) <= most, s
    assert len(bids) + len(asks) == len(s.entries), ("an entry neither bid nor offer", s)
    for e in s.entries:
        assert math.isfinite(e.price) and e.price > 0, s
        assert math.isfinite(e.size) and e.size > 0, s
        assert e.originator in VENUES, ("MDEntryOriginator is not a venue", s)
    assert [e.price for e in bids] == sorted((e.price for e in bids), reverse=True), s
    assert [e.price for e in asks] == sorted(e.price for e in asks), s
    for side in (bids, asks):
        assert [e.position for e in side] == list(range(1, len(side) + 1)), ("MDEntryPositionNo", s)
    assert s.view_seq is not None, ("DFViewSeq (20001)", s)
    for venue in VENUES:
        vb = [e.price for e in bids if e.originator == venue]
        va = [e.price for e in asks if e.originator == venue]
        assert vb == sorted(set(vb), reverse=True) and va == sorted(set(va)), (venue, s)
        if vb and va:
            assert vb[0] < va[0], (venue, "crossed against itself", s)


def finish(client: QuickFixClient, gateway: Gateway) -> None:
    """Log out cleanly; then nothing may have gone wrong in the session or the gateway."""
    client.logout()
    assert client.record.logons == 1, "QuickFIX had to reconnect: the gateway dropped the session"
    assert client.problems() == []
    gateway.check_healthy()


def wait_snapshots(client: QuickFixClient, req_id: str, n: int, timeout: float = 10.0) -> list[Snapshot]:
    client.wait(lambda r: sum(s.req_id == req_id for s in r.snapshots) >= n, timeout, f"{n} W for {req_id}")
    return client.snapshots(req_id)


def assert_quiet(client: QuickFixClient, req_id: str, settle: float = 0.5, window: float = 1.0) -> None:
    """No W answers ``req_id`` any more (after ``settle`` s for those already on the wire)."""
    time.sleep(settle)
    before = len(client.snapshots(req_id))
    time.sleep(window)
    assert len(client.snapshots(req_id)) == before, f"W for {req_id} after it ended"


def test_merged_top_n_snapshot_updates_and_unsubscribe(gateway: Gateway, tmp_path: Path) -> None:
    with session(gateway.fix_port, "QF-TOPN", tmp_path) as client:
        req = client.request(["ethbtc"], subscription="1", depth=0)
        books = wait_snapshots(client, req, 8)
        for s in books:
            assert canonical(s.symbol) == "ethbtc", s
            assert_sane(s, DEPTH)
        assert max(len(s.bids) for s in books) == DEPTH and max(len(s.asks) for s in books) == DEPTH
        assert len({s.entries for s in books}) > 1, "the same book over and over: no updates"
        assert {e.originator for s in books for e in s.entries} == VENUES
        views = [s.view_seq for s in books]
        assert views == sorted(set(views)), ("DFViewSeq must increase", views)
        client.request(["ethbtc"], subscription="2", depth=0, req_id=req)
        assert_quiet(client, req)
        finish(client, gateway)


def assert_sane_bbo(s: Snapshot) -> None:
    """A top-of-book W (MarketDepth 1, the BBO view; docs/fix.md): the cross-venue best bid and offer
    (QuoteCondition D) and each venue's best (C), all at MDEntryPositionNo 1; the D entry is the best of
    the C entries and names a venue quoting that price."""
    for e in s.entries:
        assert e.position == 1 and e.condition in ("C", "D"), s
        assert math.isfinite(e.price) and e.price > 0 and math.isfinite(e.size) and e.size > 0, s
        assert e.originator in VENUES, s
    for side, best_of in ((s.bids, max), (s.asks, min)):
        (best,) = [e for e in side if e.condition == "D"]
        quotes = [e for e in side if e.condition == "C"]
        assert len({e.originator for e in quotes}) == len(quotes), ("one best a venue", s)
        assert best.price == best_of(e.price for e in quotes), s
        assert any(e.originator == best.originator and e.price == best.price for e in quotes), s
    for venue in VENUES:
        bid = [e.price for e in s.bids if e.condition == "C" and e.originator == venue]
        ask = [e.price for e in s.asks if e.condition == "C" and e.originator == venue]
        if bid and ask:
            assert bid[0] < ask[0], (venue, "crossed against itself", s)
    assert s.view_seq is not None, s


def test_top_of_book(gateway: Gateway, tmp_path: Path) -> None:
    with session(gateway.fix_port, "QF-BBO", tmp_path) as client:
        req = client.request(["ETH/BTC"], subscription="1", depth=1)
        books = wait_snapshots(client, req, 5)
        for s in books:
            assert canonical(s.symbol) == "ethbtc", s
            assert_sane_bbo(s)
        assert {e.originator for s in books for e in s.entries if e.condition == "C"} == VENUES
        client.request(["ETH/BTC"], subscription="2", depth=1, req_id=req)
        assert_quiet(client, req)
        finish(client, gateway)


def test_two_instruments_in_one_request(gateway: Gateway, tmp_path: Path) -> None:
    with session(gateway.fix_port, "QF-TWO", tmp_path) as client:
        req = client.request(["ethbtc", "BTC/USDT"], subscription="1", depth=0)

        def both(r: object) -> bool:
            got = [canonical(s.symbol) for s in client.record.snapshots if s.req_id == req]
            return got.count("ethbtc") >= 3 and got.count("btcusdt") >= 3

        client.wait(lambda r: both(r), 10.0, "3 W of each instrument")
        books = client.snapshots(req)
        assert {canonical(s.symbol) for s in books} == {"ethbtc", "btcusdt"}
        for s in books:
            assert_sane(s, DEPTH)
            mid = (s.bids[0].price + s.asks[0].price) / 2
            # ETH/BTC trades well below 1, BTC/USDT in the thousands: each W carries its own instrument.
            assert (mid < 1) if canonical(s.symbol) == "ethbtc" else (mid > 1000), s
        client.request(["ethbtc", "BTC/USDT"], subscription="2", depth=0, req_id=req)
        assert_quiet(client, req)
        finish(client, gateway)


def test_snapshot_only(gateway: Gateway, tmp_path: Path) -> None:
    with session(gateway.fix_port, "QF-SNAP", tmp_path) as client:
        req = client.request(["ethbtc", "btcusdt"], subscription="0", depth=0)
        books = wait_snapshots(client, req, 2)
        assert_quiet(client, req, settle=0.0)
        books = client.snapshots(req)
        assert sorted(canonical(s.symbol) for s in books) == ["btcusdt", "ethbtc"], books
        for s in books:
            assert_sane(s, DEPTH)
        finish(client, gateway)


def test_unknown_instrument_is_rejected_with_reason_0(gateway: Gateway, tmp_path: Path) -> None:
    with session(gateway.fix_port, "QF-UNKNOWN", tmp_path) as client:
        req = client.request(["nosuchcoin"], subscription="1", depth=0)
        client.wait(lambda r: any(m.msg_type == "Y" for m in r.received), 5.0, "a MarketDataRequestReject")
        (reject,) = client.received("Y")
        assert reject.get(262) == req
        assert reject.get(281) == "0", reject.text  # MDReqRejReason 0: unknown symbol
        assert reject.get(58), "a reject says why (Text)"
        assert client.snapshots(req) == []
        # The session lives on: a TestRequest is still answered.
        client.test_request("after-reject")
        client.wait(lambda r: any(m.msg_type == "0" and m.get(112) == "after-reject" for m in r.received),
                    5.0, "the Heartbeat answering TestRequest after-reject")
        finish(client, gateway)


def test_heartbeats_and_test_request(gateway: Gateway, tmp_path: Path) -> None:
    with session(gateway.fix_port, "QF-HB", tmp_path, heartbeat=1) as client:
        logon = client.received("A")[0]
        assert logon.get(108) == "1", ("the gateway's Logon answers with the client's HeartBtInt", logon.text)
        # Idle: each side keeps the session alive with Heartbeats every second.
        time.sleep(3.5)
        assert len(client.received("0")) >= 2, client.events()[-2000:]
        assert len(client.sent("0")) >= 2
        client.test_request("ping-1")
        client.wait(lambda r: any(m.msg_type == "0" and m.get(112) == "ping-1" for m in r.received), 3.0,
                    "the Heartbeat answering TestRequest ping-1")
        # Streaming: the client's Heartbeats keep a session alive whose only traffic is W the other way.
        req = client.request(["ethbtc"], subscription="1", depth=1)
        wait_snapshots(client, req, 1)
        time.sleep(3.0)
        assert client.record.logouts == 0
        assert len(client.snapshots(req)) > 5
        client.request(["ethbtc"], subscription="2", depth=1, req_id=req)
        assert_quiet(client, req)
        finish(client, gateway)


def test_liquidity_view(liquidity_gateway: Gateway, tmp_path: Path) -> None:
    """DFView (20000) = liquidity: bands and fills in the entries, in the gateway's documented tags."""
    gateway = liquidity_gateway
    with session(gateway.fix_port, "QF-LIQ", tmp_path) as client:
        req = client.request(["ethbtc"], subscription="1", depth=0, view="liquidity")
        books = wait_snapshots(client, req, 3)
        for s in books:
            assert canonical(s.symbol) == "ethbtc", s
            bands = [e for e in s.entries if e.band_bps is not None]
            fills = [e for e in s.entries if e.fill_qty is not None]
            assert bands and fills and len(bands) + len(fills) == len(s.entries), s
            # Per side: one total per band (10 and 50 bps) and per fill quantity (1 and 10).
            for side in ("0", "1"):
                totals = [e for e in bands + fills if e.type == side and e.originator is None]
                assert sorted(e.band_bps for e in totals if e.band_bps is not None) == [10, 50], s
                assert sorted(e.fill_qty for e in totals if e.fill_qty is not None) == [1, 10], s
            for e in s.entries:
                assert e.type in ("0", "1") and math.isfinite(e.size) and e.size >= 0, s
                assert e.originator is None or e.originator in VENUES, s
            # A band's total (no originator) is the sum of its venues' parts.
            for e in bands:
                if e.originator is None:
                    parts = [v.size for v in bands
                             if v.originator and v.type == e.type and v.band_bps == e.band_bps]
                    assert math.isclose(sum(parts), e.size, rel_tol=1e-9, abs_tol=1e-12), (e, s)
            for e in fills:
                if e.originator is None:
                    assert e.size <= e.fill_qty * (1 + 1e-12), s
                    assert e.fill_complete == ("Y" if math.isclose(e.size, e.fill_qty) else "N"), s
                    if e.size > 0:  # an average price of what filled
                        assert math.isfinite(e.price) and e.price > 0, s
        client.request(["ethbtc"], subscription="2", depth=0, req_id=req)
        assert_quiet(client, req)
        finish(client, gateway)


def test_log_on_again_with_reset_on_logon(gateway: Gateway, tmp_path: Path) -> None:
    """A QuickFIX session set to ResetOnLogon=Y (141=Y) logs out, logs on again and is served again."""
    with session(gateway.fix_port, "QF-AGAIN", tmp_path, reset_on_logon=True) as client:
        req = client.request(["ethbtc"], subscription="1", depth=1)
        wait_snapshots(client, req, 2)
        client.logout()
        client.logon_again()
        assert [m.get(141) for m in client.received("A")] == ["Y", "Y"]
        req = client.request(["ethbtc"], subscription="1", depth=1)
        for s in wait_snapshots(client, req, 2):
            assert_sane_bbo(s)
        client.logout()
        assert client.record.logons == 2
        assert client.problems() == []
        gateway.check_healthy()


def test_log_on_again_with_sequence_numbers_kept(gateway: Gateway, tmp_path: Path) -> None:
    """A QuickFIX session with QuickFIX's defaults (sequence numbers kept across logons) logs on again."""
    with session(gateway.fix_port, "QF-KEEP", tmp_path) as client:
        req = client.request(["ethbtc"], subscription="1", depth=1)
        wait_snapshots(client, req, 2)
        client.logout()
        client.logon_again(timeout=5.0)
        req = client.request(["ethbtc"], subscription="1", depth=1)
        wait_snapshots(client, req, 2, timeout=5.0)
        client.logout()
        assert client.record.logons == 2
        assert client.problems() == []


def test_market_depth_n(gateway: Gateway, tmp_path: Path) -> None:
    """MarketDepth N (1 < N < the served depth): the merged book's top N levels a side."""
    with session(gateway.fix_port, "QF-DEPTH5", tmp_path) as client:
        req = client.request(["ethbtc"], subscription="1", depth=5)
        books = wait_snapshots(client, req, 3)
        for s in books:
            assert_sane(s, 5)
        assert max(len(s.bids) for s in books) == 5 and max(len(s.asks) for s in books) == 5
        too_deep = client.request(["ethbtc"], subscription="1", depth=DEPTH + 1)
        client.wait(lambda r: any(m.msg_type == "Y" and m.get(262) == too_deep for m in r.received), 5.0,
                    "a MarketDataRequestReject for a MarketDepth deeper than served")
        (reject,) = [m for m in client.received("Y") if m.get(262) == too_deep]
        assert reject.get(281) == "5", reject.text  # MDReqRejReason 5: unsupported MarketDepth
        client.request(["ethbtc"], subscription="2", depth=5, req_id=req)
        assert_quiet(client, req)
        finish(client, gateway)


def test_a_message_the_gateway_does_not_serve_gets_a_reject_quickfix_accepts(
    gateway: Gateway, tmp_path: Path
) -> None:
    """An application message other than V: a session Reject (373=11, RefMsgType); the session lives on."""
    import quickfix as fix  # type: ignore[import-untyped]
    import quickfix44 as fix44  # type: ignore[import-untyped]

    with session(gateway.fix_port, "QF-OTHER", tmp_path) as client:
        message = fix44.SecurityListRequest()
        message.setField(fix.SecurityReqID("sl-1"))
        message.setField(fix.SecurityListRequestType(4))
        client.send(message)
        client.wait(lambda r: any(m.msg_type == "3" for m in r.received), 5.0, "a session Reject")
        (reject,) = client.received("3")
        assert reject.get(372) == "x" and reject.get(373) == "11", reject.text
        assert reject.get(45) == client.sent("x")[0].get(34), reject.text
        assert reject.get(58), reject.text
        client.test_request("after-x")
        client.wait(lambda r: any(m.msg_type == "0" and m.get(112) == "after-x" for m in r.received), 5.0,
                    "the Heartbeat answering TestRequest after-x")
        client.logout()
        # That Reject is the only problem: QuickFIX accepted it and nothing else was refused.
        assert [p for p in client.problems() if "|35=3|" not in p] == []
        assert len(client.rejects()) == 1
        gateway.check_healthy()
