"""OKX v5 ``books``: documented message shapes, the checksum, sequence ids, and the real recording."""

from __future__ import annotations

import json
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dragonfly.core.book import L2Book
from dragonfly.core.diff import Alive, Delta, DiffListener, Event, Reset, Snapshot, SyncState
from dragonfly.core.errors import ParseError
from dragonfly.core.slots import SlotProducer, SlotQueue
from dragonfly.core.types import VenueBook
from dragonfly.core.venue import ControlKind
from dragonfly.recording import received_payloads, shared_recordings
from dragonfly.venues import okx

RECORDINGS = shared_recordings()
RECORDING = (RECORDINGS or Path("/nonexistent")) / "OKX.ws.1.0"
needs_recording = pytest.mark.skipif(
    not RECORDING.is_file(),
    reason="OKX recording not found: set DRAGONFLY_RECORDINGS or put ../shared/recordings beside the repo",
)


class Control:
    """A FeedControl that records what the listener asks for."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def request_snapshot(self, symbol: str) -> None:
        self.calls.append(("request_snapshot", symbol))

    def resubscribe(self, symbol: str) -> None:
        self.calls.append(("resubscribe", symbol))


def push(action: str, bids: list[list[str]], asks: list[list[str]], **fields: Any) -> bytes:
    """A ``books`` push as documented (OKX v5, WebSocket "Order book channel")."""
    data = {"asks": asks, "bids": bids, "ts": "1597026383085", **fields}
    return json.dumps(
        {"arg": {"channel": "books", "instId": "BTC-USDT"}, "action": action, "data": [data]}
    ).encode()


def lvl(px: str, sz: str) -> list[str]:
    return [px, sz, "0", "1"]


def book_of(bids: list[tuple[str, str]], asks: list[tuple[str, str]]) -> L2Book:
    book = L2Book()
    book.load(bids, asks, None)
    return book


# The two worked examples of OKX's checksum documentation, with their published values.
DOC_EXAMPLE_1 = ([("3366.1", "7"), ("3366", "6")], [("3366.8", "9"), ("3368", "8")], -1881014294)
DOC_EXAMPLE_2 = ([("3366.1", "7")], [("3366.8", "9"), ("3368", "8"), ("3372", "8")], 831078360)


def test_symbols_and_frames() -> None:
    assert okx.SPEC.venue_symbol("ethbtc") == "ETH-BTC"
    assert okx.SPEC.venue_symbol("btcusdt") == "BTC-USDT"
    assert okx.SPEC.venue_symbol("xbtusdc") == "BTC-USDC"
    assert okx.SPEC.venue_symbol("foo") == "FOO"
    (sub,) = okx.diff_subscribe(["ETH-BTC", "BTC-USDT"])
    assert json.loads(sub) == {
        "op": "subscribe",
        "args": [{"channel": "books", "instId": "ETH-BTC"}, {"channel": "books", "instId": "BTC-USDT"}],
    }
    (unsub,) = okx.diff_unsubscribe(["ETH-BTC"])
    assert json.loads(unsub) == {"op": "unsubscribe", "args": [{"channel": "books", "instId": "ETH-BTC"}]}
    assert okx.SPEC.heartbeat == b"ping" and okx.SPEC.heartbeat_interval == 20.0
    assert okx.SPEC.diff is not None and okx.SPEC.diff.continuity and okx.SPEC.default_channel == "diff"


def texts(events: Sequence[Event] | None) -> list[Event]:
    """The events with each level as its (price, amount) strings: the decoder passes OKX's arrays on."""
    assert events is not None
    out: list[Event] = []
    for event in events:
        if isinstance(event, Snapshot | Delta) and (event.bids or event.asks):
            bids: list[Any] = [(lv[0], lv[1]) for lv in event.bids]
            asks: list[Any] = [(lv[0], lv[1]) for lv in event.asks]
            event = event._replace(bids=bids, asks=asks)
        out.append(event)
    return out


def test_decode_snapshot_verifies_its_checksum() -> None:
    decode = okx.make_diff_decoder()
    frame = push("snapshot", [lvl("3366.1", "7")], [lvl("3366.8", "9")], checksum=-5, prevSeqId=-1, seqId=100)
    assert texts(decode(frame)) == [
        Snapshot("BTC-USDT", [("3366.1", "7")], [("3366.8", "9")], 100),
        Delta("BTC-USDT", (), (), None, None, -5),
    ]
    unchecked = push("snapshot", [lvl("1", "2")], [], checksum=0, prevSeqId=-1, seqId=7)
    assert texts(decode(unchecked)) == [Snapshot("BTC-USDT", [("1", "2")], [], 7)]


def test_decode_updates() -> None:
    decode = okx.make_diff_decoder()
    update = push("update", [lvl("3366", "0")], [lvl("3368", "8")], checksum=12, prevSeqId=100, seqId=123)
    assert texts(decode(update)) == [Delta("BTC-USDT", [("3366", "0")], [("3368", "8")], 101, 123, 12)]
    no_checksum = push("update", [], [lvl("1", "1")], checksum=0, prevSeqId=123, seqId=124)
    assert texts(decode(no_checksum)) == [Delta("BTC-USDT", [], [("1", "1")], 124, 124, None)]
    keep_alive = push("update", [], [], checksum=5, prevSeqId=124, seqId=124)
    assert decode(keep_alive) == [Alive("BTC-USDT", 124)]  # nothing changed: the book at 124 is current
    reset = push("update", [lvl("1", "1")], [], checksum=5, prevSeqId=124, seqId=3)
    (event,) = decode(reset) or ()
    assert type(event) is Reset and event.symbol == "BTC-USDT"
    # Captured before OKX added sequence ids (the 2022 recording): checksum only.
    old = push("update", [lvl("1", "1")], [], checksum=9)
    assert texts(decode(old)) == [Delta("BTC-USDT", [("1", "1")], [], None, None, 9)]


@pytest.mark.parametrize(
    "frame",
    [
        b"pong",
        b'{"event":"subscribe","arg":{"channel":"books","instId":"BTC-USDT"},"connId":"a4d3ae55"}',
        b'{"event":"error","code":"60018","msg":"Wrong URL or channel:books,instId:ETH-XYZ doesn\'t exist"}',
        b'{"arg":{"channel":"tickers","instId":"BTC-USDT"},"data":[{"instId":"BTC-USDT","last":"1"}]}',
        b'{"arg":{"channel":"books5","instId":"BTC-USDT"},"data":[{"asks":[],"bids":[]}]}',
    ],
)
def test_non_book_frames_are_none(frame: bytes) -> None:
    assert okx.make_diff_decoder()(frame) is None


@pytest.mark.parametrize(
    "frame",
    [
        b'{"arg":{"channel":"books","instId":"X"},"action":"update","data":[{"asks":[["1"]],"bids":[]}]}',
        b'{"arg":{"channel":"books","instId":"X"},"action":"update","data":[{"asks":[[1,2]],"bids":[]}]}',
        b'{"arg":{"channel":"books","instId":"X"},"action":"update","data":[{"bids":[]}]}',
        b'{"arg":{"channel":"books","instId":"X"},"action":"merge","data":[{"asks":[],"bids":[]}]}',
        b'{"arg":{"channel":"books"},"action":"update","data":[]}',
        b'{"arg":{"channel":"books","instId":"X"},"action":"update","data":[{"asks":[],"bids":[]',
    ],
)
def test_malformed_book_frames_raise(frame: bytes) -> None:
    with pytest.raises(ParseError):
        okx.make_diff_decoder()(frame)


def test_control() -> None:
    assert okx.control(b"pong").kind is ControlKind.PONG  # the answer to our ping: not book proof
    ack = b'{"event":"subscribe","arg":{"channel":"books","instId":"ETH-BTC"},"connId":"a4d3ae55"}'
    assert okx.control(ack) == (ControlKind.SUBSCRIBED, "", "ETH-BTC")
    missing = (
        b'{"event":"error","code":"60018","msg":"Wrong URL or channel:books,instId:ETH-XYZ doesn\'t exist. '
        b'Please use the correct URL, channel and parameters referring to API document.","connId":"a4d3ae55"}'
    )
    kind, detail, symbol = okx.control(missing)
    assert (kind, symbol) == (ControlKind.REJECTED, "ETH-XYZ") and "60018" in detail
    unnamed = b'{"event":"error","code":"60018","msg":"channel doesn\'t exist","connId":"a"}'
    assert okx.control(unnamed)[::2] == (ControlKind.REJECTED, None)
    other = b'{"event":"error","code":"60012","msg":"Invalid request","connId":"a"}'
    assert okx.control(other).kind is ControlKind.ERROR
    notice = (
        b'{"event":"notice","code":"64008","msg":"The connection will soon be closed for a service upgrade."}'
    )
    assert okx.control(notice).kind is ControlKind.RECONNECT
    assert okx.control(b'{"event":"unsubscribe","arg":{"channel":"books","instId":"ETH-BTC"}}').kind is (
        ControlKind.IGNORED
    )
    assert okx.control(b"{nope").kind is ControlKind.UNREADABLE


@pytest.mark.parametrize("example", [DOC_EXAMPLE_1, DOC_EXAMPLE_2])
def test_checksum_documented_examples(
    example: tuple[list[tuple[str, str]], list[tuple[str, str]], int],
) -> None:
    bids, asks, expected = example
    assert okx.checksum(book_of(bids, asks)) == expected


def test_checksum_uses_the_venue_strings_and_top_25() -> None:
    bids = [(f"{100 - i}.5000", "1") for i in range(30)]
    asks = [(f"{101 + i}.5000", "2") for i in range(30)]
    book = book_of(bids, asks)
    text = ":".join(f"{b[0]}:{b[1]}:{a[0]}:{a[1]}" for b, a in zip(bids[:25], asks[:25], strict=True))
    crc = zlib.crc32(text.encode())
    assert okx.checksum(book) == (crc - 2**32 if crc >= 2**31 else crc)
    assert okx.checksum(book_of([("100.5", "1")], [])) != okx.checksum(book_of([("100.5000", "1")], []))


def test_listener_sequence_rules() -> None:
    assert okx.SPEC.diff is not None
    ctl = Control()
    listener = DiffListener("okx", okx.SPEC.diff, {"BTC-USDT": None}, 10, ctl)
    sync = listener.syms["BTC-USDT"]
    bids, asks = [lvl("3366.1", "7"), lvl("3366", "6")], [lvl("3366.8", "9"), lvl("3368", "8")]
    listener.on_frame(push("snapshot", bids, asks, checksum=-1881014294, prevSeqId=-1, seqId=10), 0, True)
    assert (sync.state, sync.book.seq, sync.stats.checksums_ok) == (SyncState.SYNCED, 10, 1)
    listener.on_frame(push("update", [], [], checksum=0, prevSeqId=10, seqId=10), 0, True)  # keep-alive
    # The second documented example: bid 3366 removed, ask 3372 added.
    update = push(
        "update", [lvl("3366", "0")], [lvl("3372", "8")], checksum=831078360, prevSeqId=10, seqId=12
    )
    listener.on_frame(update, 0, True)
    assert (sync.book.seq, sync.stats.checksums_ok, sync.stats.stale, ctl.calls) == (12, 2, 0, [])
    gap = push("update", [lvl("3366", "1")], [], checksum=0, prevSeqId=13, seqId=14)
    listener.on_frame(gap, 0, True)
    assert (sync.state, sync.stats.gaps, ctl.calls) == (SyncState.WAITING, 1, [("resubscribe", "BTC-USDT")])
    listener.on_frame(push("snapshot", bids, asks, checksum=0, prevSeqId=-1, seqId=20), 0, True)
    listener.on_frame(push("update", [lvl("1", "1")], [], checksum=0, prevSeqId=20, seqId=2), 0, True)
    assert sync.state is SyncState.WAITING and ctl.calls[-1] == ("resubscribe", "BTC-USDT")
    assert sync.stats.resyncs == 2
    # A snapshot that does not match its own checksum is withdrawn at once.
    listener.on_frame(push("snapshot", bids, asks, checksum=1, prevSeqId=-1, seqId=30), 0, True)
    assert sync.state is SyncState.WAITING and sync.stats.checksums_bad == 1 and len(ctl.calls) == 3


def _book_ids(path: Path) -> list[str]:
    ids: list[str] = []
    for payload in received_payloads(path):
        msg = json.loads(payload) if payload.startswith(b"{") else {}
        arg = msg.get("arg", {})
        if arg.get("channel") == "books" and "data" in msg and arg["instId"] not in ids:
            ids.append(arg["instId"])
    return ids


def _recorded_listener(ctl: Control, outputs: dict[str, SlotProducer[VenueBook] | None]) -> DiffListener:
    assert okx.SPEC.diff is not None
    return DiffListener("okx", okx.SPEC.diff, outputs, 10, ctl)


@needs_recording
def test_recording_every_checksum_verifies() -> None:
    ids = _book_ids(RECORDING)
    assert set(ids) == {"BTC-USD-220527", "UNI-USD-SWAP", "BTC-USDT"}
    ctl = Control()
    listener = _recorded_listener(ctl, dict.fromkeys(ids))
    expected = 0
    for payload in received_payloads(RECORDING):
        msg = json.loads(payload)
        if msg.get("arg", {}).get("channel") == "books" and "data" in msg:
            expected += sum(1 for d in msg["data"] if d.get("checksum"))
        listener.on_frame(payload, 0, True)
    stats = [listener.syms[i].stats for i in ids]
    ok = sum(s.checksums_ok for s in stats)
    print(f"okx recording: {ok} checksums verified over {len(ids)} books ({', '.join(ids)})")
    assert ok == expected > 0
    assert all(s.snapshots == 1 and s.checksums_bad == 0 and s.resyncs == 0 for s in stats)
    assert listener.malformed == 0 and ctl.calls == []
    assert all(listener.syms[i].state is SyncState.SYNCED for i in ids)


@needs_recording
def test_recording_corrupted_level_resyncs_the_symbol() -> None:
    ids = _book_ids(RECORDING)
    queue: SlotQueue[VenueBook] = SlotQueue(lambda: None)
    slots = {i: queue.producer(i) for i in ids}
    ctl = Control()
    listener = _recorded_listener(ctl, dict(slots))
    target = "BTC-USDT"
    corrupted = False
    for payload in received_payloads(RECORDING):
        msg = json.loads(payload)
        sync = listener.syms[target]
        data = msg.get("data") or [{}]
        if (
            not corrupted
            and msg.get("action") == "update"
            and msg["arg"]["instId"] == target
            and data[0].get("bids")
            and sync.state is SyncState.SYNCED
        ):
            # Only a level inside the top 25 is covered by the checksum.
            price = data[0]["bids"][0][0]
            if float(price) >= float(sync.book.top_text(25)[0][-1][0]):
                assert queue.peek(slots[target].slot) is not None  # published before
                data[0]["bids"][0][1] = "999"
                listener.on_frame(json.dumps(msg).encode(), 0, True)
                corrupted = True
                assert sync.stats.checksums_bad == 1 and sync.stats.resyncs == 1
                assert listener.syms[target].state is SyncState.WAITING and len(sync.book) == 0
                assert queue.peek(slots[target].slot) is None  # withdrawn from the merge
                assert ctl.calls == [("resubscribe", target)]
                continue
        listener.on_frame(payload, 0, True)
    assert corrupted
    assert listener.syms[target].state is SyncState.WAITING
    others = [listener.syms[i].stats for i in ids if i != target]
    assert all(s.checksums_bad == 0 and s.resyncs == 0 for s in others)
    assert ctl.calls == [("resubscribe", target)]


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=3), children, max_size=4)
    ),
    max_leaves=20,
)
_levels = st.lists(st.lists(st.text(max_size=4) | st.integers(), max_size=4), max_size=3)


@settings(max_examples=400, deadline=None)
@given(
    st.one_of(
        st.binary(max_size=120),
        _json.map(lambda v: json.dumps(v).encode()),
        st.builds(
            lambda action, bids, asks, extra: push(action, bids, asks, **extra),
            st.sampled_from(["snapshot", "update", "x"]),
            _levels,
            _levels,
            st.dictionaries(st.sampled_from(["checksum", "prevSeqId", "seqId"]), st.integers(-5, 5) | _json),
        ),
    )
)
def test_fuzz_decoder_parses_or_raises_parse_error(payload: bytes) -> None:
    try:
        events = okx.make_diff_decoder()(payload)
    except ParseError:
        events = None
    for event in events or ():
        assert isinstance(event, Snapshot | Delta | Reset | Alive)
        if isinstance(event, Snapshot | Delta):
            # Each level is an array of at least a price and an amount string.
            levels: list[Any] = [*event.bids, *event.asks]
            assert all(len(lv) >= 2 and all(type(x) is str for x in lv) for lv in levels)
    okx.control(payload)  # never raises
