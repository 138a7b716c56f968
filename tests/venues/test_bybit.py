"""Bybit v5 spot adapter: documented message shapes, control frames, a book end to end."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from picows import WSFrame, WSListener, WSMsgType, WSTransport, ws_create_server

from dragonfly import accel
from dragonfly.core.aggregator import Aggregator
from dragonfly.core.diff import Delta, DiffListener, Snapshot, SyncState
from dragonfly.core.errors import ParseError
from dragonfly.core.feed import Feed
from dragonfly.core.types import MergedBook
from dragonfly.core.venue import ControlKind
from dragonfly.venues import bybit

SPEC = bybit.SPEC


class Control:
    """A FeedControl that records what the listener asks for."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def request_snapshot(self, symbol: str) -> None:
        self.calls.append(("snapshot", symbol))

    def resubscribe(self, symbol: str) -> None:
        self.calls.append(("resubscribe", symbol))


def book_msg(kind: str, u: int, b: list[list[str]], a: list[list[str]], symbol: str = "ETHBTC") -> bytes:
    """An ``orderbook.50`` message as documented."""
    msg = {
        "topic": f"orderbook.50.{symbol}",
        "type": kind,
        "ts": 1672304484978,
        "data": {"s": symbol, "b": b, "a": a, "u": u, "seq": 7961638724 + u},
        "cts": 1672304484976,
    }
    return json.dumps(msg).encode()


# Bybit's answer to a subscription of an unknown symbol.
REFUSED = (
    b'{"success":false,"ret_msg":"Invalid symbol :[orderbook.50.XYZ]",'
    b'"conn_id":"c1","req_id":"1","op":"subscribe"}'
)


# -- naming and frames ----------------------------------------------------------


def test_symbol_and_spec() -> None:
    assert SPEC.venue_symbol("ethbtc") == "ETHBTC"
    assert bybit.topic("ETHBTC") == "orderbook.50.ETHBTC"
    diff = SPEC.diff
    assert diff is not None
    assert SPEC.channel() == "diff" and SPEC.snapshot is None
    assert diff.continuity and diff.truncate == bybit.DEPTH == 50 and diff.rest_snapshot is None
    assert SPEC.heartbeat is not None and json.loads(SPEC.heartbeat) == {"op": "ping"}
    assert SPEC.heartbeat_interval == 20.0


def test_subscribe_and_unsubscribe_frames() -> None:
    diff = SPEC.diff
    assert diff is not None
    assert [json.loads(f) for f in diff.subscribe(["ETHBTC", "BTCUSDT"])] == [
        {"op": "subscribe", "args": ["orderbook.50.ETHBTC", "orderbook.50.BTCUSDT"], "req_id": "1"}
    ]
    assert [json.loads(f) for f in diff.unsubscribe(["ETHBTC"])] == [
        {"op": "unsubscribe", "args": ["orderbook.50.ETHBTC"], "req_id": "2"}
    ]
    # Spot takes at most 10 topics per request.
    frames = [json.loads(f) for f in diff.subscribe([f"SYM{i}USDT" for i in range(23)])]
    assert [len(f["args"]) for f in frames] == [10, 10, 3]
    assert frames[2]["args"][-1] == "orderbook.50.SYM22USDT"
    assert diff.subscribe([]) == []


# -- decoding -------------------------------------------------------------------


def test_documented_snapshot_and_delta() -> None:
    decode = bybit.make_decoder()
    snap = book_msg("snapshot", 18521288, [["0.05115", "2.05"], ["0.05114", "1"]], [["0.05116", "0.5"]])
    assert decode(snap) == (
        Snapshot("ETHBTC", [(0.05115, 2.05), (0.05114, 1.0)], [(0.05116, 0.5)], 18521288),
    )
    delta = book_msg("delta", 18521289, [], [["0.05116", "0"], ["0.05117", "3.1"]])
    assert decode(delta) == (Delta("ETHBTC", [], [(0.05116, 0.0), (0.05117, 3.1)], 18521289, 18521289),)


@pytest.mark.parametrize("level", [["0", "1"], ["0.05", "-1"], ["0.05", "nan"], ["x", "1"], ["1", "1e999"]])
def test_a_level_that_is_no_usable_number_is_a_parse_error(level: list[str]) -> None:
    """The channel is numeric: msgspec converts and checks every number while decoding."""
    decode = bybit.make_decoder()
    with pytest.raises(ParseError, match="bad orderbook message"):
        decode(book_msg("delta", 2, [level], []))


def test_op_responses_are_not_book_frames() -> None:
    decode = bybit.make_decoder()
    assert (
        decode(b'{"success":true,"ret_msg":"subscribe","conn_id":"c1","req_id":"1","op":"subscribe"}') is None
    )
    assert decode(b'{"success":true,"ret_msg":"pong","conn_id":"c1","op":"ping"}') is None
    assert decode(REFUSED) is None
    trade = (
        b'{"topic":"publicTrade.ETHBTC","type":"snapshot","ts":1,"data":[{"T":1,"s":"ETHBTC","p":"0.05"}]}'
    )
    assert decode(trade) is None  # another topic on the connection: not a book frame


def test_malformed_book_frames_raise() -> None:
    decode = bybit.make_decoder()
    with pytest.raises(ParseError):
        decode(
            b'{"topic":"orderbook.50.ETHBTC","type":"delta","data":{"s":"ETHBTC","b":[["1"]],"a":[],"u":1}}'
        )
    with pytest.raises(ParseError):
        decode(b'{"topic":"orderbook.50.ETHBTC","type":"delta","data":{"s":"ETHBTC","b":[],"a":[]}}')
    with pytest.raises(ParseError, match="type"):
        decode(book_msg("partial", 3, [], []))


# -- control ----------------------------------------------------------------------


def test_control_classification() -> None:
    ctl = bybit.control
    ok = ctl(b'{"success":true,"ret_msg":"subscribe","conn_id":"c1","req_id":"1","op":"subscribe"}')
    assert ok.kind is ControlKind.SUBSCRIBED
    failed = ctl(REFUSED)
    assert (
        failed.kind is ControlKind.REJECTED and failed.symbol == "XYZ" and "Invalid symbol" in failed.detail
    )
    vague = ctl(b'{"success":false,"ret_msg":"args invalid","op":"subscribe"}')
    assert vague.kind is ControlKind.REJECTED and vague.symbol is None
    # Answers to our own pings: they prove the connection, not the books.
    assert ctl(b'{"success":true,"ret_msg":"pong","conn_id":"c1","op":"ping"}').kind is ControlKind.PONG
    assert (
        ctl(b'{"req_id":"x","op":"pong","args":["1675418560633"],"conn_id":"c1"}').kind is ControlKind.PONG
    )
    assert ctl(b'{"success":true,"ret_msg":"","op":"unsubscribe","req_id":"2"}').kind is ControlKind.IGNORED
    # A failed unsubscribe (during a resync) is an error, not a rejection of the instrument.
    assert ctl(b'{"success":false,"ret_msg":"not subscribed","op":"unsubscribe"}').kind is ControlKind.ERROR
    assert ctl(b"garbage").kind is ControlKind.UNREADABLE
    assert ctl(b"[]").kind is ControlKind.IGNORED


# -- end to end through the shared sync machinery ----------------------------------


def listener(control: Control) -> DiffListener:
    assert SPEC.diff is not None
    return DiffListener(SPEC.name, SPEC.diff, {"ETHBTC": None}, 10, control)


SNAPSHOT = book_msg(
    "snapshot",
    100,
    [["0.05115", "2"], ["0.05114", "1"], ["0.05113", "4"]],
    [["0.05116", "0.5"], ["0.05117", "3"], ["0.05118", "6"]],
)


def test_snapshot_and_deltas_build_the_book() -> None:
    control = Control()
    lst = listener(control)
    frames = [
        b'{"success":true,"ret_msg":"subscribe","conn_id":"c1","req_id":"1","op":"subscribe"}',
        book_msg("delta", 99, [["0.05000", "9"]], []),  # before the snapshot: no book yet
        SNAPSHOT,
        book_msg("delta", 101, [["0.05114", "0"]], [["0.05116", "0.75"]]),
        book_msg("delta", 102, [["0.051155", "1.2"]], [["0.05117", "0"], ["0.05119", "8"]]),
        b'{"success":true,"ret_msg":"pong","conn_id":"c1","op":"ping"}',
        book_msg("delta", 103, [["0.05113", "3.5"]], []),
        book_msg("delta", 103, [["0.05113", "99"]], []),  # replayed: stale, dropped
    ]
    assert [lst.on_frame(f, 0, True) for f in frames] == [False, True, True, True, True, False, True, True]
    sync = lst.syms["ETHBTC"]
    assert sync.state is SyncState.SYNCED and control.calls == []
    assert sync.book.top(10) == (
        ((0.051155, 1.2), (0.05115, 2.0), (0.05113, 3.5)),
        ((0.05116, 0.75), (0.05118, 6.0), (0.05119, 8.0)),
    )
    assert sync.book.seq == 103


def test_gap_withdraws_and_resubscribes() -> None:
    control = Control()
    lst = listener(control)
    lst.on_frame(SNAPSHOT, 0, True)
    lst.on_frame(book_msg("delta", 101, [["0.05115", "3"]], []), 0, True)
    assert lst.has_book
    lst.on_frame(book_msg("delta", 103, [["0.05115", "4"]], []), 0, True)  # 102 lost
    assert control.calls == [("resubscribe", "ETHBTC")]
    sync = lst.syms["ETHBTC"]
    assert not lst.has_book and sync.state is SyncState.WAITING and len(sync.book) == 0
    assert sync.stats.gaps == 1
    lst.on_frame(book_msg("delta", 104, [["0.05115", "5"]], []), 0, True)  # no book: ignored
    assert sync.state is SyncState.WAITING
    lst.on_frame(book_msg("snapshot", 200, [["0.0512", "1"]], [["0.0513", "1"]]), 0, True)
    assert sync.state is SyncState.SYNCED and sync.book.top(5) == (((0.0512, 1.0),), ((0.0513, 1.0),))


def test_restart_snapshot_with_u_1_replaces_the_book() -> None:
    control = Control()
    lst = listener(control)
    lst.on_frame(SNAPSHOT, 0, True)
    lst.on_frame(book_msg("delta", 101, [["0.05115", "3"]], []), 0, True)
    lst.on_frame(book_msg("snapshot", 1, [["0.0510", "7"]], [["0.0520", "1"]]), 0, True)
    sync = lst.syms["ETHBTC"]
    assert sync.book.top(10) == (((0.051, 7.0),), ((0.052, 1.0),)) and sync.book.seq == 1
    lst.on_frame(book_msg("delta", 2, [["0.0511", "1"]], []), 0, True)
    assert sync.book.top(10) == (((0.0511, 1.0), (0.051, 7.0)), ((0.052, 1.0),))
    assert control.calls == [] and sync.state is SyncState.SYNCED and sync.stats.snapshots == 2


def test_book_is_cut_to_the_subscribed_depth() -> None:
    lst = listener(Control())
    bids = [[f"{100 - i}", "1"] for i in range(50)]
    asks = [[f"{101 + i}", "1"] for i in range(50)]
    lst.on_frame(book_msg("snapshot", 10, bids, asks), 0, True)
    # A better level pushes the 50th out: Bybit stops updating it.
    lst.on_frame(book_msg("delta", 11, [["100.5", "2"]], [["100.75", "2"]]), 0, True)
    book = lst.syms["ETHBTC"].book
    assert len(book.bids) == len(book.asks) == 50
    assert book.top(1) == (((100.5, 2.0),), ((100.75, 2.0),))
    assert -book.bids.keys()[-1] == 52.0 and book.asks.keys()[-1] == 149.0


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
    """Run a bybit diff feed for ETHBTC against ``venue`` until ``done(feed)``."""
    server = await ws_create_server(lambda _request: venue, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    published: list[MergedBook] = []
    agg = Aggregator("ethbtc", ["bybit"], depth=10)
    agg.add_sink(published.append)
    feed = Feed(SPEC, {"ETHBTC": agg.producers["bybit"]}, ws_url=f"ws://127.0.0.1:{port}")
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


def ack(op: str, req_id: str) -> bytes:
    return json.dumps({"success": True, "ret_msg": "", "conn_id": "c1", "req_id": req_id, "op": op}).encode()


async def test_feed_syncs_and_resyncs_after_a_gap_over_a_socket() -> None:
    subscribes = 0

    def script(msg: dict[str, Any]) -> list[bytes]:
        nonlocal subscribes
        if msg["op"] == "unsubscribe":
            return [ack("unsubscribe", msg["req_id"])]
        subscribes += 1
        if subscribes == 1:
            return [
                ack("subscribe", msg["req_id"]),
                SNAPSHOT,
                book_msg("delta", 101, [["0.05115", "3"]], []),
                book_msg("delta", 103, [], [["0.05116", "9"]]),  # 102 lost
            ]
        # The fresh snapshot after resubscribing; u restarts at 1 as after a service restart.
        return [
            ack("subscribe", msg["req_id"]),
            book_msg("snapshot", 1, [["0.0511", "1"]], [["0.0512", "2"]]),
            book_msg("delta", 2, [["0.05111", "5"]], []),
        ]

    def synced_twice(feed: Feed) -> bool:
        assert isinstance(feed.listener, DiffListener)
        return feed.listener.syms["ETHBTC"].book.seq == 2

    venue = ScriptedVenue(script)
    feed, published = await run_feed(venue, synced_twice)
    assert feed.outcome.result() is None
    assert venue.received == [
        {"op": "subscribe", "args": ["orderbook.50.ETHBTC"], "req_id": "1"},
        {"op": "unsubscribe", "args": ["orderbook.50.ETHBTC"], "req_id": "2"},
        {"op": "subscribe", "args": ["orderbook.50.ETHBTC"], "req_id": "1"},
    ]
    assert isinstance(feed.listener, DiffListener)
    stats = feed.listener.syms["ETHBTC"].stats
    assert (stats.snapshots, stats.gaps, stats.resyncs) == (2, 1, 1)
    # The last book published before the feed stopped (stopping withdraws it).
    *_, last, stopped = published
    assert stopped.bids == stopped.asks == ()
    assert [(lv.price, lv.amount) for lv in last.bids] == [(0.05111, 5.0), (0.0511, 1.0)]
    assert [(lv.price, lv.amount) for lv in last.asks] == [(0.0512, 2.0)]
    # The delta after the gap was never published.
    assert all((lv.price, lv.amount) != (0.05116, 9.0) for book in published for lv in book.asks)


async def test_feed_reports_an_unknown_symbol() -> None:
    feed, published = await run_feed(ScriptedVenue(lambda msg: [REFUSED]), lambda f: f.outcome.done())
    assert "Invalid symbol" in (feed.outcome.result() or "")
    assert published == []


# -- the C reader of deltas -------------------------------------------------------

_plain = st.builds(
    lambda whole, frac: f"{whole}.{frac}" if frac else str(whole),
    st.integers(0, 10**9),
    st.one_of(st.just(""), st.from_regex(r"[0-9]{1,12}", fullmatch=True)),
)
_number = st.one_of(
    _plain,
    st.sampled_from(
        ["0", "0.0", "00.1", "1.", ".5", "-1", "1e3", "1E-2", "nan", "inf", " 1", "1_0", "0x1", ""]
    ),
    st.sampled_from(["0." + "0" * 21 + "1", "0." + "0" * 22 + "1", "1" * 15 + ".5", "9" * 16]),
    st.from_regex(r"[0-9.eE+-]{1,25}", fullmatch=True),
)
_levels = st.lists(st.tuples(_number, _number), max_size=8)


def compact_side(levels: list[tuple[str, str]]) -> str:
    return "[" + ",".join(f'["{p}","{q}"]' for p, q in levels) + "]"


def compact_delta(
    symbol: str, b: list[tuple[str, str]], a: list[tuple[str, str]], u: int, extra: bool
) -> bytes:
    """A delta as Bybit writes it (no whitespace), optionally without ts, seq and cts."""
    head = f'{{"topic":"orderbook.50.{symbol}","type":"delta",' + ('"ts":1672304484978,' if extra else "")
    data = f'"data":{{"s":"{symbol}","b":{compact_side(b)},"a":{compact_side(a)},"u":{u}'
    data += ',"seq":7961638724' if extra else ""
    return (head + data + "}" + (',"cts":1672304484976' if extra else "") + "}").encode()


def decoded(decode: Callable[[bytes], Any], payload: bytes) -> object:
    try:
        return decode(payload)
    except ParseError:
        return ParseError


def both_decoders(monkeypatch: pytest.MonkeyPatch) -> tuple[Callable[[bytes], Any], Callable[[bytes], Any]]:
    """Bybit's decoder with the C reader of deltas, and without it (msgspec alone: the twin)."""
    if accel.speedups is None:
        pytest.skip("C speedups not built (no C compiler at install) or DRAGONFLY_PURE_PYTHON set")
    with_c = bybit.make_decoder()
    monkeypatch.setattr(accel, "speedups", None)
    return with_c, bybit.make_decoder()


def test_the_c_reader_reads_the_documented_delta() -> None:
    if accel.speedups is None:
        pytest.skip("C speedups not built (no C compiler at install) or DRAGONFLY_PURE_PYTHON set")
    frame = compact_delta("ETHBTC", [("0.05115", "2.05")], [("0.05116", "0"), ("0.05117", "3.1")], 9, True)
    assert accel.speedups.read_bybit_delta(frame) == (
        "ETHBTC",
        [(0.05115, 2.05)],
        [(0.05116, 0.0), (0.05117, 3.1)],
        9,
        9,
        None,
    )
    # Not its shape (spaces, a snapshot, an escape, a price of zero): left to msgspec.
    for other in (
        book_msg("delta", 9, [], []),
        frame.replace(b'"delta"', b'"snapshot"'),
        frame.replace(b"ETHBTC", b"ETH\\u0042TC"),
        frame.replace(b"0.05115", b"0.00000"),
        frame + b" ",
    ):
        assert accel.speedups.read_bybit_delta(other) is None


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(["ETHBTC", "BTCUSDT", "X", ""]),
    _levels,
    _levels,
    st.integers(0, 2**64),
    st.booleans(),
    st.integers(0, 400),
    st.binary(max_size=3),
)
def test_the_c_reader_reads_what_msgspec_reads(
    symbol: str,
    b: list[tuple[str, str]],
    a: list[tuple[str, str]],
    u: int,
    extra: bool,
    cut: int,
    junk: bytes,
) -> None:
    """Every delta decodes to the same events (or the same error) with and without the C reader."""
    with pytest.MonkeyPatch.context() as mp:
        with_c, twin = both_decoders(mp)
        frame = compact_delta(symbol, b, a, u, extra)
        for payload in (frame, frame[:cut] + junk + frame[cut:], frame[:cut]):
            assert decoded(with_c, payload) == decoded(twin, payload)


def test_the_c_reader_reads_the_recorded_deltas_as_msgspec(monkeypatch: pytest.MonkeyPatch) -> None:
    from latency.peers import MissingRecordingError, load_venue, recordings_dir

    try:
        frames = load_venue("bybit", recordings_dir())
    except MissingRecordingError as exc:
        pytest.skip(str(exc))
    with_c, twin = both_decoders(monkeypatch)
    assert accel.ACTIVE
    from dragonfly import _speedups

    read = sum(_speedups.read_bybit_delta(p) is not None for p in frames.updates)
    assert read == len(frames.updates)  # every recorded delta takes the C path
    for payload in [*frames.snapshots, *frames.updates]:
        assert with_c(payload) == twin(payload)
