"""Coinbase Advanced Trade adapter: documented message shapes, sequence gaps, a book end to end."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import pytest
from picows import WSFrame, WSListener, WSMsgType, WSTransport, ws_create_server

from dragonfly.core.aggregator import Aggregator
from dragonfly.core.diff import Delta, DiffListener, Reset, Snapshot, SyncState
from dragonfly.core.errors import ParseError
from dragonfly.core.feed import Feed
from dragonfly.core.types import MergedBook
from dragonfly.core.venue import ControlKind
from dragonfly.venues import coinbase

SPEC = coinbase.SPEC


class Control:
    """A FeedControl that records what the listener asks for."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def request_snapshot(self, symbol: str) -> None:
        self.calls.append(("snapshot", symbol))

    def resubscribe(self, symbol: str) -> None:
        self.calls.append(("resubscribe", symbol))


def level(side: str, price: str, qty: str) -> dict[str, str]:
    return {
        "side": side,
        "event_time": "2023-02-09T20:32:50.714964855Z",
        "price_level": price,
        "new_quantity": qty,
    }


def l2(seq: int, kind: str, product: str, *levels: dict[str, str]) -> bytes:
    """An ``l2_data`` message as documented (one event)."""
    msg = {
        "channel": "l2_data",
        "client_id": "",
        "timestamp": "2023-02-09T20:32:50.714964855Z",
        "sequence_num": seq,
        "events": [{"type": kind, "product_id": product, "updates": list(levels)}],
    }
    return json.dumps(msg).encode()


def heartbeat(seq: int) -> bytes:
    msg = {
        "channel": "heartbeats",
        "client_id": "",
        "timestamp": "2023-06-23T20:31:26.122969572Z",
        "sequence_num": seq,
        "events": [
            {
                "current_time": "2023-06-23 20:31:56.121961769 +0000 UTC m=+91717.525857105",
                "heartbeat_counter": 3049,
            }
        ],
    }
    return json.dumps(msg).encode()


def subscriptions(seq: int, **subs: Any) -> bytes:
    msg = {
        "channel": "subscriptions",
        "client_id": "",
        "timestamp": "2023-02-09T20:32:50.714964855Z",
        "sequence_num": seq,
        "events": [{"subscriptions": subs}],
    }
    return json.dumps(msg).encode()


# -- naming and frames ----------------------------------------------------------


@pytest.mark.parametrize(
    ("instrument", "product"),
    [
        ("ethbtc", "ETH-BTC"),
        ("btcusd", "BTC-USD"),
        ("btcusdt", "BTC-USDT"),
        ("ethusdc", "ETH-USDC"),
        ("cbetheth", "CBETH-ETH"),
        ("ethdai", "ETH-DAI"),
        ("btceur", "BTC-EUR"),
        ("usdtusd", "USDT-USD"),
    ],
)
def test_product_ids(instrument: str, product: str) -> None:
    assert SPEC.venue_symbol(instrument) == product


def test_unsplittable_instrument_goes_as_is_for_the_venue_to_reject() -> None:
    assert SPEC.venue_symbol("ethsol") == "ETHSOL"
    assert SPEC.venue_symbol("usd") == "USD"  # no base left


def test_subscribe_and_unsubscribe_frames() -> None:
    diff = SPEC.diff
    assert diff is not None
    frames = [json.loads(f) for f in diff.subscribe(["ETH-BTC", "ETH-USD"])]
    assert frames == [
        {"type": "subscribe", "product_ids": ["ETH-BTC", "ETH-USD"], "channel": "level2"},
        {"type": "subscribe", "channel": "heartbeats"},
    ]
    assert [json.loads(f) for f in diff.unsubscribe(["ETH-BTC"])] == [
        {"type": "unsubscribe", "product_ids": ["ETH-BTC"], "channel": "level2"}
    ]
    # An empty product list would unsubscribe the whole channel.
    assert diff.unsubscribe([]) == [] and diff.subscribe([]) == []
    assert SPEC.channel() == "diff" and SPEC.snapshot is None and diff.rest_snapshot is None


# -- decoding -------------------------------------------------------------------


def test_documented_snapshot_and_update() -> None:
    decode = coinbase.make_decoder()
    snap = l2(0, "snapshot", "ETH-BTC", level("bid", "0.0712", "1.5"), level("offer", "0.0713", "2"))
    assert decode(snap) == [Snapshot("ETH-BTC", [(0.0712, 1.5)], [(0.0713, 2.0)], None)]
    update = l2(1, "update", "ETH-BTC", level("offer", "0.0713", "0"), level("bid", "0.07121", "0.3"))
    assert decode(update) == [Delta("ETH-BTC", [(0.07121, 0.3)], [(0.0713, 0.0)])]


def test_several_events_in_one_message() -> None:
    msg = json.loads(l2(5, "update", "ETH-BTC", level("bid", "1", "1")))
    msg["events"].append({"type": "update", "product_id": "ETH-USD", "updates": [level("offer", "2", "3")]})
    events = coinbase.make_decoder()(json.dumps(msg).encode())
    assert events == [Delta("ETH-BTC", [(1.0, 1.0)], []), Delta("ETH-USD", [], [(2.0, 3.0)])]


def test_heartbeats_and_acks_are_not_book_frames_but_advance_the_sequence() -> None:
    decode = coinbase.make_decoder()
    assert decode(subscriptions(0, heartbeats=["heartbeats"])) is None
    assert decode(heartbeat(1)) is None
    assert decode(subscriptions(2, level2=["ETH-BTC"], heartbeats=["heartbeats"])) is None
    assert decode(b'{"type":"error","message":"failure to subscribe"}') is None  # no sequence_num
    # 3 follows 2: the heartbeats and acks were counted.
    events = decode(l2(3, "snapshot", "ETH-BTC", level("bid", "1", "1")))
    assert events is not None and not any(isinstance(e, Reset) for e in events)


def test_sequence_gap_resets_before_the_message_events() -> None:
    decode = coinbase.make_decoder()
    decode(l2(10, "snapshot", "ETH-BTC", level("bid", "1", "1")))
    events = decode(l2(12, "update", "ETH-BTC", level("bid", "1", "2")))
    assert events is not None and len(events) == 2
    reset, delta = events
    assert (
        isinstance(reset, Reset)
        and reset.symbol is None
        and "expected sequence_num 11, got 12" in reset.reason
    )
    assert delta == Delta("ETH-BTC", [(1.0, 2.0)], [])
    # The count continues from the message that showed the gap.
    assert decode(l2(13, "update", "ETH-BTC")) == [Delta("ETH-BTC", [], [])]


def test_sequence_gap_on_a_heartbeat_resets_at_once() -> None:
    decode = coinbase.make_decoder()
    assert decode(heartbeat(7)) is None
    events = decode(heartbeat(9))
    assert events is not None and len(events) == 1 and isinstance(events[0], Reset)
    assert decode(heartbeat(10)) is None


def test_repeated_or_backward_sequence_is_a_gap_too() -> None:
    decode = coinbase.make_decoder()
    decode(heartbeat(4))
    events = decode(heartbeat(4))
    assert events is not None and isinstance(events[0], Reset)


def test_each_connection_counts_afresh() -> None:
    first = coinbase.make_decoder()
    first(heartbeat(500))
    assert coinbase.make_decoder()(heartbeat(0)) is None


def test_malformed_book_frames_raise() -> None:
    decode = coinbase.make_decoder()
    with pytest.raises(ParseError, match="side"):
        decode(l2(0, "update", "ETH-BTC", level("ask", "1", "1")))
    with pytest.raises(ParseError, match="event type"):
        decode(l2(1, "trade", "ETH-BTC"))
    with pytest.raises(ParseError):
        decode(b'{"channel":"l2_data","sequence_num":2,"events":[{"type":"update"}]}')
    with pytest.raises(ParseError):
        decode(b'{"channel":"l2_data","sequence_num":"x","events":[]}')
    assert decode(b"not json") is None  # not a book frame: control reports it


# -- control ----------------------------------------------------------------------


def test_control_classification() -> None:
    ctl = coinbase.control
    assert ctl(subscriptions(1, level2=["ETH-BTC"], heartbeats=["heartbeats"])).kind is ControlKind.SUBSCRIBED
    # The heartbeats ack alone, or what is left after an unsubscribe, is not our ack.
    assert ctl(subscriptions(1, heartbeats=["heartbeats"])).kind is ControlKind.IGNORED
    assert ctl(heartbeat(2)).kind is ControlKind.HEARTBEAT
    rejected = ctl(b'{"type":"error","message":"failure to subscribe"}')
    assert rejected.kind is ControlKind.REJECTED and rejected.detail == "failure to subscribe"
    assert rejected.symbol is None
    named = ctl(b'{"type":"error","message":"Failed to subscribe","reason":"ETH-XYZ is not a valid product"}')
    assert named.kind is ControlKind.REJECTED and named.symbol == "ETH-XYZ"
    assert ctl(b'{"type":"error","message":"failure to unsubscribe"}').kind is ControlKind.ERROR
    assert ctl(b'{"type":"error","message":"rate limit exceeded"}').kind is ControlKind.ERROR
    assert ctl(b"garbage").kind is ControlKind.UNREADABLE
    assert ctl(b"[1]").kind is ControlKind.IGNORED
    assert ctl(b'{"channel":"ticker","sequence_num":3,"events":[]}').kind is ControlKind.IGNORED


# -- end to end through the shared sync machinery ----------------------------------


def listener(control: Control, *symbols: str) -> DiffListener:
    assert SPEC.diff is not None
    return DiffListener(SPEC.name, SPEC.diff, dict.fromkeys(symbols or ("ETH-BTC",)), 10, control)


def test_snapshot_and_updates_build_the_book() -> None:
    control = Control()
    lst = listener(control)
    frames = [
        subscriptions(0, heartbeats=["heartbeats"]),
        l2(1, "update", "ETH-BTC", level("bid", "0.0500", "9")),  # before the snapshot: no book yet
        l2(
            2,
            "snapshot",
            "ETH-BTC",
            level("bid", "0.0712", "1.5"),
            level("bid", "0.0711", "2"),
            level("bid", "0.0710", "4"),
            level("offer", "0.0713", "1"),
            level("offer", "0.0714", "3"),
        ),
        subscriptions(3, level2=["ETH-BTC"], heartbeats=["heartbeats"]),
        l2(4, "update", "ETH-BTC", level("bid", "0.0711", "0"), level("offer", "0.0713", "0.25")),
        heartbeat(5),
        l2(6, "update", "ETH-BTC", level("bid", "0.07125", "0.5"), level("offer", "0.0715", "7")),
        l2(7, "update", "ETH-BTC", level("offer", "0.0714", "0"), level("bid", "0.0710", "4.5")),
    ]
    book_frames = [lst.on_frame(f, 0, True) for f in frames]
    assert book_frames == [False, True, True, False, True, False, True, True]
    sync = lst.syms["ETH-BTC"]
    assert sync.state is SyncState.SYNCED and control.calls == []
    assert sync.book.top(10) == (
        ((0.07125, 0.5), (0.0712, 1.5), (0.071, 4.5)),
        ((0.0713, 0.25), (0.0715, 7.0)),
    )
    assert sync.book.top(1) == (((0.07125, 0.5),), ((0.0713, 0.25),))


def test_sequence_gap_withdraws_every_book_and_resubscribes() -> None:
    control = Control()
    lst = listener(control, "ETH-BTC", "ETH-USD")
    lst.on_frame(
        l2(0, "snapshot", "ETH-BTC", level("bid", "0.07", "1"), level("offer", "0.08", "1")), 0, True
    )
    lst.on_frame(
        l2(1, "snapshot", "ETH-USD", level("bid", "1800", "1"), level("offer", "1801", "1")), 0, True
    )
    assert lst.has_book
    # Message 2 is lost; 3 is an update of ETH-USD only, yet both books were at risk.
    assert lst.on_frame(heartbeat(3), 0, True) is True
    assert sorted(control.calls) == [("resubscribe", "ETH-BTC"), ("resubscribe", "ETH-USD")]
    assert not lst.has_book
    assert all(s.state is SyncState.WAITING and len(s.book) == 0 for s in lst.syms.values())
    # Updates until the fresh snapshot belong to no book; the snapshot restores it.
    lst.on_frame(l2(4, "update", "ETH-BTC", level("bid", "0.07", "5")), 0, True)
    assert lst.syms["ETH-BTC"].state is SyncState.WAITING
    lst.on_frame(
        l2(5, "snapshot", "ETH-BTC", level("bid", "0.071", "2"), level("offer", "0.08", "1")), 0, True
    )
    assert lst.syms["ETH-BTC"].book.top(5) == (((0.071, 2.0),), ((0.08, 1.0),))


def test_gap_then_snapshot_in_the_same_message_keeps_the_snapshot() -> None:
    control = Control()
    lst = listener(control)
    lst.on_frame(l2(0, "snapshot", "ETH-BTC", level("bid", "0.07", "1")), 0, True)
    lst.on_frame(l2(9, "snapshot", "ETH-BTC", level("bid", "0.06", "1")), 0, True)
    # The reset came first (resubscribe asked), then the snapshot was loaded.
    assert control.calls == [("resubscribe", "ETH-BTC")]
    assert lst.syms["ETH-BTC"].state is SyncState.SYNCED
    assert lst.syms["ETH-BTC"].book.top(5) == (((0.06, 1.0),), ())


def test_reconnect_restarts_the_count_without_a_spurious_resync() -> None:
    # The listener (and its decoder) outlive a connection; the new one counts from 0 again.
    control = Control()
    lst = listener(control)
    lst.on_frame(l2(500, "snapshot", "ETH-BTC", level("bid", "0.07", "1")), 0, True)
    lst.withdraw()  # the connection dropped
    lst.on_frame(l2(0, "snapshot", "ETH-BTC", level("bid", "0.06", "1")), 0, True)
    assert control.calls == [] and lst.syms["ETH-BTC"].state is SyncState.SYNCED
    assert lst.syms["ETH-BTC"].book.top(5) == (((0.06, 1.0),), ())


# -- a real client against a scripted local venue ------------------------------------


class ScriptedVenue(WSListener):
    """One client session of a local venue: records what the client sends, answers by ``script``."""

    def __init__(self, script: Callable[[dict[str, Any]], list[bytes]]) -> None:
        super().__init__()
        self.script = script
        self.received: list[dict[str, Any]] = []

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type is WSMsgType.TEXT:
            msg = json.loads(frame.get_payload_as_bytes())
            self.received.append(msg)
            for out in self.script(msg):
                transport.send(WSMsgType.TEXT, out)


async def run_feed(venue: ScriptedVenue, done: Callable[[Feed], bool]) -> tuple[Feed, list[MergedBook]]:
    """Run a coinbase diff feed for ETH-BTC against ``venue`` until ``done(feed)``."""
    server = await ws_create_server(lambda _request: venue, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    published: list[MergedBook] = []
    agg = Aggregator("ethbtc", ["coinbase"], depth=10)
    agg.add_sink(published.append)
    feed = Feed(SPEC, {"ETH-BTC": agg.producers["coinbase"]}, ws_url=f"ws://127.0.0.1:{port}")
    task = asyncio.create_task(feed.run())
    try:
        async with asyncio.timeout(5):
            while not done(feed):
                await asyncio.sleep(0.01)
    finally:
        feed.stop()
        await task
        server.close()
        await server.wait_closed()
    return feed, published


async def test_feed_syncs_resyncs_after_a_gap_over_a_socket() -> None:
    seq = 0
    level2_subscribes = 0

    def next_seq() -> int:
        nonlocal seq
        seq += 1
        return seq - 1

    def script(msg: dict[str, Any]) -> list[bytes]:
        nonlocal level2_subscribes, seq
        if msg["channel"] == "heartbeats":
            return [subscriptions(next_seq(), level2=["ETH-BTC"], heartbeats=["heartbeats"])]
        if msg["type"] == "unsubscribe":
            return [subscriptions(next_seq(), heartbeats=["heartbeats"])]
        level2_subscribes += 1
        if level2_subscribes == 1:
            out = [
                subscriptions(next_seq(), level2=["ETH-BTC"]),
                l2(
                    next_seq(),
                    "snapshot",
                    "ETH-BTC",
                    level("bid", "0.0710", "1"),
                    level("offer", "0.0720", "1"),
                ),
                l2(next_seq(), "update", "ETH-BTC", level("bid", "0.0711", "2")),
            ]
            seq += 1  # one message lost
            return [*out, l2(next_seq(), "update", "ETH-BTC", level("offer", "0.0715", "9"))]
        return [
            subscriptions(next_seq(), level2=["ETH-BTC"]),
            l2(next_seq(), "snapshot", "ETH-BTC", level("bid", "0.0712", "3"), level("offer", "0.0719", "4")),
        ]

    venue = ScriptedVenue(script)
    # The resync's frames keep to the connection's message budget (4 a second):
    # the fifth frame goes out a second after the first.
    feed, published = await run_feed(venue, lambda f: f.listener.has_book and len(venue.received) == 5)
    assert feed.outcome.result() is None
    assert venue.received == [
        {"type": "subscribe", "product_ids": ["ETH-BTC"], "channel": "level2"},
        {"type": "subscribe", "channel": "heartbeats"},
        {"type": "unsubscribe", "product_ids": ["ETH-BTC"], "channel": "level2"},
        {"type": "subscribe", "product_ids": ["ETH-BTC"], "channel": "level2"},
        {"type": "subscribe", "channel": "heartbeats"},
    ]
    assert isinstance(feed.listener, DiffListener)
    stats = feed.listener.syms["ETH-BTC"].stats
    assert (stats.snapshots, stats.gaps, stats.resyncs) == (2, 1, 1)
    # The last book published before the feed stopped (stopping withdraws it).
    *_, last, stopped = published
    assert stopped.bids == stopped.asks == ()
    assert [(lv.price, lv.amount) for lv in last.bids] == [(0.0712, 3.0)]
    assert [(lv.price, lv.amount) for lv in last.asks] == [(0.0719, 4.0)]
    # The update that followed the gap was never published.
    assert all((lv.price, lv.amount) != (0.0715, 9.0) for book in published for lv in book.asks)


async def test_feed_reports_an_unknown_product() -> None:
    def script(msg: dict[str, Any]) -> list[bytes]:
        if msg["channel"] == "level2":
            return [b'{"type":"error","message":"failure to subscribe"}']
        return []

    feed, published = await run_feed(ScriptedVenue(script), lambda f: f.outcome.done())
    assert "failure to subscribe" in (feed.outcome.result() or "")
    assert published == []
