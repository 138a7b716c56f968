"""Kraken WS v1 ``book``: documented message shapes, the checksum, and the real recording."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dragonfly.core.book import L2Book
from dragonfly.core.diff import Delta, DiffListener, Snapshot, SyncState
from dragonfly.core.errors import ParseError
from dragonfly.core.slots import SlotProducer, SlotQueue
from dragonfly.core.types import VenueBook
from dragonfly.core.venue import ControlKind
from dragonfly.recording import received_payloads, shared_recordings
from dragonfly.venues import kraken

RECORDINGS = shared_recordings()
RECORDING = (RECORDINGS or Path("/nonexistent")) / "KRAKEN.ws.50.0"
needs_recording = pytest.mark.skipif(
    not RECORDING.is_file(),
    reason="Kraken recording not found: set DRAGONFLY_RECORDINGS or put ../shared/recordings beside the repo",
)


class Control:
    """A FeedControl that records what the listener asks for."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def request_snapshot(self, symbol: str) -> None:
        self.calls.append(("request_snapshot", symbol))

    def resubscribe(self, symbol: str) -> None:
        self.calls.append(("resubscribe", symbol))


# Kraken's documented example book (docs: "Spot Websockets (v1) Book Checksum"),
# whose checksum is 974947235, and the documented update that leaves its top 10 as is.
DOC_ASKS = ["0.05005", "0.05010", "0.05015", "0.05020", "0.05025", "0.05030", "0.05035", "0.05040", "0.05045"]
DOC_ASKS.append("0.05050")
DOC_BIDS = ["0.05000", "0.04995", "0.04990", "0.04980", "0.04975", "0.04970", "0.04965", "0.04960", "0.04955"]
DOC_BIDS.append("0.04950")
DOC_CHECKSUM = 974947235
DOC_SNAPSHOT = json.dumps(
    [
        0,
        {
            "as": [[p, "0.00000500", "1582905487.684110"] for p in DOC_ASKS],
            "bs": [[p, "0.00000500", "1582905487.439814"] for p in DOC_BIDS],
        },
        "book-100",
        "BTC/USD",
    ]
).encode()
DOC_UPDATE = json.dumps(
    [
        0,
        {
            "a": [
                ["0.05120", "0.00000500", "1582905486.493008"],
                ["0.05275", "0.00000500", "1582905486.493034"],
            ]
        },
        {
            "b": [
                ["0.04765", "0.00000500", "1582905486.493008"],
                ["0.04940", "0.00000500", "1582905486.493034"],
            ],
            "c": str(DOC_CHECKSUM),
        },
        "book-100",
        "BTC/USD",
    ]
).encode()


def test_symbols() -> None:
    assert kraken.SPEC.venue_symbol("ethbtc") == "ETH/XBT"
    assert kraken.SPEC.venue_symbol("btcusd") == "XBT/USD"
    assert kraken.SPEC.venue_symbol("ethusdt") == "ETH/USDT"
    assert kraken.SPEC.venue_symbol("usdtusd") == "USDT/USD"
    assert kraken.SPEC.venue_symbol("dogeusd") == "XDG/USD"
    assert kraken.SPEC.venue_symbol("adaeur") == "ADA/EUR"
    assert kraken.SPEC.venue_symbol("foo") == "FOO"  # unsplittable: Kraken will reject it
    spec = dataclasses.replace(kraken.SPEC, overrides={"lunausd": "LUNA2/USD"})
    assert spec.venue_symbol("lunausd") == "LUNA2/USD"


def test_subscribe_frames() -> None:
    assert kraken.SPEC.diff is not None and kraken.SPEC.diff.truncate == kraken.DEPTH
    (sub,) = kraken.diff_subscribe(["ETH/XBT", "XBT/USD"])
    assert json.loads(sub) == {
        "event": "subscribe",
        "pair": ["ETH/XBT", "XBT/USD"],
        "subscription": {"name": "book", "depth": kraken.DEPTH},
    }
    (unsub,) = kraken.diff_unsubscribe(["ETH/XBT"])
    assert json.loads(unsub)["event"] == "unsubscribe" and json.loads(unsub)["pair"] == ["ETH/XBT"]
    assert kraken.SPEC.heartbeat is not None and json.loads(kraken.SPEC.heartbeat) == {"event": "ping"}
    assert kraken.SPEC.default_channel == "diff" and kraken.SPEC.snapshot is None


def test_decode_snapshot_and_update() -> None:
    decode = kraken.make_diff_decoder()
    (snap,) = decode(DOC_SNAPSHOT) or ()
    assert type(snap) is Snapshot and snap.symbol == "BTC/USD" and snap.seq is None
    assert snap.asks[0] == ("0.05005", "0.00000500") and snap.bids[-1] == ("0.04950", "0.00000500")
    (delta,) = decode(DOC_UPDATE) or ()
    assert delta == Delta(
        "BTC/USD",
        [("0.04765", "0.00000500"), ("0.04940", "0.00000500")],
        [("0.05120", "0.00000500"), ("0.05275", "0.00000500")],
        None,
        None,
        DOC_CHECKSUM,
    )


def test_decode_republished_level_and_one_sided_update() -> None:
    frame = b'[42,{"b":[["5541.30000","0.00000000","1534614335.345903","r"]],"c":"123"},"book-10","XBT/USD"]'
    (delta,) = kraken.make_diff_decoder()(frame) or ()
    # The level arrays go to the book as decoded: it reads their first two strings.
    level = ["5541.30000", "0.00000000", "1534614335.345903", "r"]
    assert delta == Delta("XBT/USD", [level], (), None, None, 123)
    short = b'[42,{"b":[["5541.30000"]],"c":"123"},"book-10","XBT/USD"]'
    with pytest.raises(ParseError, match="a level is not"):
        kraken.make_diff_decoder()(short)


@pytest.mark.parametrize(
    "frame",
    [
        b'{"event":"heartbeat"}',
        b'{"connectionID":1,"event":"systemStatus","status":"online","version":"1.8.3"}',
        b'{"channelID":1,"channelName":"book-10","event":"subscriptionStatus","pair":"ETH/XBT","status":"subscribed"}',
        b'[0,[["5541.2","0.1","1534614057.3","s","l",""]],"trade","XBT/USD"]',
        b"[1,2]",
    ],
)
def test_non_book_frames_are_none(frame: bytes) -> None:
    assert kraken.make_diff_decoder()(frame) is None


@pytest.mark.parametrize(
    "frame",
    [
        b'[1,{"a":[["0.1"]],"c":"1"},"book-10","ETH/XBT"]',
        b'[1,{"a":[[0.1,"1","2"]]},"book-10","ETH/XBT"]',
        b'[1,{"a":"0.1","c":"1"},"book-10","ETH/XBT"]',
        b'[1,{"a":[],"c":"abc"},"book-10","ETH/XBT"]',
        b'[1,{"as":[["1","2","3"]]},"book-10",7]',
        b'[1,"x",{"b":[]},"book-10","ETH/XBT"]',
        b'[1,{"a":[["1","2","3"]]},"book-10"',
    ],
)
def test_malformed_book_frames_raise(frame: bytes) -> None:
    with pytest.raises(ParseError):
        kraken.make_diff_decoder()(frame)


def test_control() -> None:
    ok = b'{"channelID":1,"channelName":"book-10","event":"subscriptionStatus","pair":"ETH/XBT","status":"subscribed","subscription":{"depth":10,"name":"book"}}'  # noqa: E501
    assert kraken.control(ok) == (ControlKind.SUBSCRIBED, "", "ETH/XBT")
    bad = b'{"errorMessage":"Currency pair not supported ETH/XYZ","event":"subscriptionStatus","pair":"ETH/XYZ","status":"error","subscription":{"depth":10,"name":"book"}}'  # noqa: E501
    assert kraken.control(bad) == (ControlKind.REJECTED, "Currency pair not supported ETH/XYZ", "ETH/XYZ")
    status = '{"errorMessage":"%s","event":"subscriptionStatus","pair":"ETH/XBT","status":"error"}'
    again = kraken.control((status % "Already subscribed").encode())
    assert again[::2] == (ControlKind.ERROR, "ETH/XBT")  # a resync race, not a refusal
    assert kraken.control((status % "Subscription Not Found").encode()).kind is ControlKind.ERROR
    assert kraken.control(b'{"event":"heartbeat"}').kind is ControlKind.HEARTBEAT  # proves the books
    assert kraken.control(b'{"event":"pong","reqid":1}').kind is ControlKind.PONG  # proves the connection
    online = b'{"connectionID":1,"event":"systemStatus","status":"online","version":"1.8.3"}'
    assert kraken.control(online).kind is ControlKind.IGNORED
    maintenance = b'{"connectionID":1,"event":"systemStatus","status":"maintenance","version":"1.8.3"}'
    assert kraken.control(maintenance)[:2] == (ControlKind.ERROR, "system maintenance")
    assert kraken.control(b'{"errorMessage":"Malformed request","event":"error"}').kind is ControlKind.ERROR
    assert kraken.control(b"[1,2]").kind is ControlKind.IGNORED
    assert kraken.control(b"{nope").kind is ControlKind.UNREADABLE


def test_checksum_documented_example() -> None:
    book = L2Book()
    book.load([(p, "0.00000500") for p in DOC_BIDS], [(p, "0.00000500") for p in DOC_ASKS], None)
    assert kraken.checksum(book) == DOC_CHECKSUM
    book.set_ask("0.05005", "0.00000600")
    assert kraken.checksum(book) != DOC_CHECKSUM


def test_listener_verifies_documented_update() -> None:
    assert kraken.SPEC.diff is not None
    ctl = Control()
    listener = DiffListener("kraken", kraken.SPEC.diff, {"BTC/USD": None}, 10, ctl)
    assert listener.on_frame(b'{"event":"heartbeat"}', 0, True) is False
    listener.on_frame(DOC_SNAPSHOT, 0, True)
    listener.on_frame(DOC_UPDATE, 0, True)
    stats = listener.syms["BTC/USD"].stats
    assert (stats.snapshots, stats.checksums_ok, stats.checksums_bad, ctl.calls) == (1, 1, 0, [])


def _recorded_listener(ctl: Control, outputs: dict[str, SlotProducer[VenueBook] | None]) -> DiffListener:
    assert kraken.SPEC.diff is not None
    # The recording subscribed at depth 1000: keep the book as deep as it was sent.
    channel = dataclasses.replace(kraken.SPEC.diff, truncate=1000)
    return DiffListener("kraken", channel, outputs, 10, ctl)


def _pairs(path: Path) -> list[str]:
    with path.open() as lines:
        for line in lines:
            if " <- " in line and '"subscribe"' in line:
                pairs: list[str] = json.loads(line.split(": ", 1)[1])["pair"]
                return pairs
    raise AssertionError("no subscribe request in the recording")


@needs_recording
def test_recording_every_checksum_verifies() -> None:
    pairs = _pairs(RECORDING)
    ctl = Control()
    listener = _recorded_listener(ctl, dict.fromkeys(pairs))
    expected = 0
    for payload in received_payloads(RECORDING):
        msg = json.loads(payload)
        expected += isinstance(msg, list) and "c" in msg[-3]
        listener.on_frame(payload, 0, True)
    stats = [listener.syms[p].stats for p in pairs]
    ok = sum(s.checksums_ok for s in stats)
    print(f"kraken recording: {ok} checksums verified over {len(pairs)} pairs")
    assert ok == expected > 0
    assert all(s.snapshots == 1 and s.checksums_bad == 0 and s.resyncs == 0 for s in stats)
    assert listener.malformed == 0 and ctl.calls == []
    assert all(listener.syms[p].state is SyncState.SYNCED for p in pairs)


@needs_recording
def test_recording_corrupted_level_resyncs_the_symbol() -> None:
    pairs = _pairs(RECORDING)
    queue: SlotQueue[VenueBook] = SlotQueue(lambda: None)
    slots = {p: queue.producer(p) for p in pairs}
    ctl = Control()
    listener = _recorded_listener(ctl, dict(slots))
    target = "XMR/USD"
    corrupted = False
    for payload in received_payloads(RECORDING):
        msg = json.loads(payload)
        sync = listener.syms[target]
        if not corrupted and isinstance(msg, list) and msg[-1] == target and "a" in msg[1]:
            # Only a level inside the top 10 is covered by the checksum.
            price = msg[1]["a"][0][0]
            top_asks = sync.book.top_text(10)[1]
            if sync.state is SyncState.SYNCED and float(price) <= float(top_asks[-1][0]):
                assert queue.peek(slots[target].slot) is not None  # published before
                msg[1]["a"][0][1] = "999.00000000"
                listener.on_frame(json.dumps(msg).encode(), 0, True)
                corrupted = True
                assert sync.stats.checksums_bad == 1 and sync.stats.resyncs == 1
                assert listener.syms[target].state is SyncState.WAITING and len(sync.book) == 0
                assert queue.peek(slots[target].slot) is None  # withdrawn from the merge
                assert ctl.calls == [("resubscribe", target)]
                continue
        listener.on_frame(payload, 0, True)
    assert corrupted
    assert listener.syms[target].state is SyncState.WAITING  # until the venue sends a new snapshot
    others = [listener.syms[p].stats for p in pairs if p != target]
    assert all(s.checksums_bad == 0 and s.resyncs == 0 for s in others)
    assert ctl.calls == [("resubscribe", target)]


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=3), children, max_size=4)
    ),
    max_leaves=20,
)
_book_dict = st.dictionaries(st.sampled_from(["a", "b", "c", "as", "bs", "r"]), _json, max_size=3)


@settings(max_examples=400, deadline=None)
@given(
    st.one_of(
        st.binary(max_size=120),
        _json.map(lambda v: json.dumps(v).encode()),
        st.builds(
            lambda parts, name, pair: json.dumps([1, *parts, name, pair]).encode(),
            st.lists(_book_dict, min_size=1, max_size=2),
            st.sampled_from(["book-10", "book-100", "trade"]),
            _json,
        ),
    )
)
def test_fuzz_decoder_parses_or_raises_parse_error(payload: bytes) -> None:
    try:
        events = kraken.make_diff_decoder()(payload)
    except ParseError:
        events = None
    for event in events or ():
        assert isinstance(event, Snapshot | Delta)
        levels: list[Any] = [*event.bids, *event.asks]  # each the venue's array: price, amount, ...
        assert all(len(lv) >= 2 and all(type(x) is str for x in lv) for lv in levels)
    kraken.control(payload)  # never raises
