"""Top-N change detection and malformed-frame handling in the feed listener."""

from __future__ import annotations

import json
import time

import pytest

from dragonfly.core import listener
from dragonfly.core.aggregator import Aggregator
from dragonfly.core.listener import TopNListener
from dragonfly.core.types import MergedBook
from dragonfly.venues import binance


def depth_frame(bids: list[tuple[str, str]], asks: list[tuple[str, str]], update_id: int = 1) -> bytes:
    return json.dumps({"lastUpdateId": update_id, "bids": bids, "asks": asks}).encode()


pytestmark = pytest.mark.usefixtures("both_hot_paths")


def make(depth: int = 2, *, watch: bool = False) -> tuple[TopNListener, list[MergedBook]]:
    """A listener feeding an aggregator; ``watch``: the aggregator reads its health (give wall times)."""
    agg = Aggregator("ethbtc", ["binance"], depth=depth)
    out: list[MergedBook] = []
    agg.add_sink(out.append)
    lst = TopNListener(
        "binance",
        binance.make_decoder(depth),
        agg.producers["binance"],
        make_decoder=lambda: binance.make_decoder(depth),
    )
    if watch:
        agg.watch("binance", lst)
    return lst, out


def test_forwards_only_when_top_n_levels_change() -> None:
    lst, out = make(depth=2)
    frame = depth_frame([("10", "1"), ("9", "1"), ("8", "1")], [("11", "1"), ("12", "1")], 1)
    assert lst.on_frame(frame, 1, True)
    assert len(out) == 1
    # Same levels, new update id: not a change.
    lst.on_frame(
        depth_frame([("10.0", "1.00"), ("9", "1"), ("8", "1")], [("11", "1"), ("12", "1")], 2), 2, True
    )
    # Change below the top 2 only: not a change either.
    lst.on_frame(depth_frame([("10", "1"), ("9", "1"), ("7", "5")], [("11", "1"), ("12", "1")], 3), 3, True)
    assert len(out) == 1 and lst.changes == 1 and lst.books == 3
    lst.on_frame(depth_frame([("10", "2"), ("9", "1")], [("11", "1"), ("12", "1")], 4), 4, True)
    assert len(out) == 2 and out[-1].bids[0].amount == 2.0


def test_non_book_frame_is_handed_back() -> None:
    lst, out = make()
    assert lst.on_frame(b'{"result":null,"id":1}', 1, True) is False
    assert out == [] and lst.malformed == 0


BAD_FRAMES = [
    b'{"lastUpdateId":2,"bids":[["x","1"]],"asks":[]}',  # not a number
    b'{"lastUpdateId":2,"bids":[["10"]],"asks":[]}',  # short level
    b'{"lastUpdateId":2,"bids":',  # truncated
    b'{"lastUpdateId":"2","bids":[["10","1"]],"asks":[["11","1"]]}',  # the id is not a number
    b'{"lastUpdateId":-2,"bids":[["10","1"]],"asks":[["11","1"]]}',  # nor a valid one
    depth_frame([("12", "1")], [("11", "1")]),  # crossed venue book
    depth_frame([("9", "1"), ("10", "1")], [("11", "1")]),  # bids out of order
    depth_frame([("10", "-1")], [("11", "1")]),  # negative amount
    depth_frame([("nan", "1")], [("11", "1")]),  # not finite
    depth_frame([("1e999", "1")], [("11", "1")]),  # not finite either
    depth_frame([("10", "1")], [("11", "1")], update_id=0),  # older than the book held
]


@pytest.mark.parametrize("bad", BAD_FRAMES)
def test_a_bad_frame_withdraws_the_book_until_a_good_one(bad: bytes) -> None:
    from dragonfly.core.health import VenueStatus

    lst, out = make(watch=True)
    now = time.time_ns()
    lst.on_frame(depth_frame([("10", "1")], [("11", "1")]), now, True)
    assert out[-1].bids and lst.status is VenueStatus.LIVE
    assert lst.on_frame(bad, now + 1, True)
    # The venue's current book is unknown now: the last good one is not published.
    assert lst.malformed == 1 and not lst.has_book and lst.status is VenueStatus.BAD_DATA
    assert out[-1].bids == () and out[-1].venues[0].in_merge is False
    assert out[-1].venues[0].status == VenueStatus.BAD_DATA
    published = len(out)
    assert lst.on_frame(bad, now + 2, True) and len(out) == published  # more of them publish nothing
    lst.on_frame(depth_frame([("10", "3")], [("11", "1")], update_id=2), now + 3, True)
    assert out[-1].bids[0].amount == 3.0 and lst.status is VenueStatus.LIVE
    assert out[-1].venues[0].in_merge and out[-1].venues[0].seq == 2


def test_broken_json_past_the_levels_read_is_refused() -> None:
    lst, out = make(depth=2)
    levels = [(f"{100 - i}", "1") for i in range(20)]
    frame = depth_frame(levels, [(f"{101 + i}", "1") for i in range(20)])
    assert lst.on_frame(frame, 1, True) and lst.malformed == 0
    at = frame.index(b'["85"')  # the 16th bid: far past the top 2
    for broken in (frame[:at] + b"[}" + frame[at + 2 :], frame[:at] + b'["85",{}],' + frame[at:], frame[:-1]):
        assert lst.on_frame(broken, 2, True)
    assert lst.malformed == 3 and out[-1].bids == ()


def test_equal_update_ids_pass_and_a_new_connection_may_start_lower() -> None:
    lst, out = make()
    lst.on_frame(depth_frame([("10", "1")], [("11", "1")], update_id=7), 1, True)
    lst.on_frame(depth_frame([("10", "2")], [("11", "1")], update_id=7), 2, True)
    assert lst.malformed == 0 and out[-1].bids[0].amount == 2.0
    lst.withdraw()  # a new connection: its decoder remembers nothing
    lst.on_frame(depth_frame([("10", "3")], [("11", "1")], update_id=1), 3, True)
    assert lst.malformed == 0 and out[-1].bids[0].amount == 3.0


def test_a_book_nothing_proves_current_is_withdrawn_and_returns() -> None:
    from dragonfly.core.health import VenueStatus

    agg = Aggregator("ethbtc", ["binance"], depth=2)
    out: list[MergedBook] = []
    agg.add_sink(out.append)
    lst = TopNListener("binance", binance.make_decoder(2), agg.producers["binance"], stale_after=1.0)
    agg.watch("binance", lst)
    frame = depth_frame([("10", "1")], [("11", "1")])
    t0 = time.time_ns()
    lst.on_frame(frame, t0, True)
    assert not lst.check_stale(t0 + 900_000_000)
    lst.on_frame(frame, t0 + 800_000_000, True)  # unchanged, but it proves the book current
    assert len(out) == 1 and lst.data_ns == t0 + 800_000_000
    assert not lst.check_stale(t0 + 1_700_000_000)
    assert lst.check_stale(t0 + 1_900_000_000)
    assert lst.status is VenueStatus.STALE and out[-1].bids == ()
    assert out[-1].venues[0].status == VenueStatus.STALE
    lst.on_frame(frame, time.time_ns(), True)
    assert lst.status is VenueStatus.LIVE and out[-1].bids[0].price == 10.0


def test_a_stale_book_then_disconnected_publishes_the_new_status() -> None:
    """Out of the merge already, the venue's status still changes what subscribers see.

    CI once saw a venue reconnect so fast that no other venue's book changed
    meanwhile: the subscriber saw it go from stale straight back to live.
    """
    from dragonfly.core.health import VenueStatus

    agg = Aggregator("ethbtc", ["binance"], depth=2)
    out: list[MergedBook] = []
    agg.add_sink(out.append)
    lst = TopNListener("binance", binance.make_decoder(2), agg.producers["binance"], stale_after=1.0)
    agg.watch("binance", lst)
    t0 = time.time_ns()
    lst.on_frame(depth_frame([("10", "1")], [("11", "1")]), t0, True)
    assert lst.check_stale(t0 + 2_000_000_000)
    assert out[-1].venues[0].status == VenueStatus.STALE
    lst.withdraw(VenueStatus.CONNECTING, "closed")
    assert out[-1].venues[0].status == VenueStatus.CONNECTING and not out[-1].venues[0].in_merge
    assert out[-1].sequence == out[-2].sequence + 1


def test_withdraw_removes_the_venue() -> None:
    lst, out = make()
    lst.on_frame(depth_frame([("10", "1")], [("11", "1")]), 1, True)
    lst.withdraw()
    assert not lst.has_book and out[-1].bids == ()


def test_check_book() -> None:
    check_book = listener.check_book  # the C twin or the Python one (both_hot_paths)
    assert check_book(((2.0, 1.0), (1.0, 1.0)), ((3.0, 1.0),)) is None
    assert check_book((), ()) is None
    assert check_book(((2.0, 1.0),), ((2.0, 1.0),)) == "venue book is crossed"
    assert check_book(((1.0, 1.0), (1.0, 1.0)), ()) is not None  # duplicate price
    assert check_book((), ((3.0, 0.0),)) is not None  # zero amount


async def test_a_flood_with_no_last_frame_still_publishes() -> None:
    """A read ending in a partial frame marks no frame last: the merge must still run."""
    import asyncio

    lst, out = make()
    for i in range(50):
        lst.on_frame(depth_frame([(str(10 + i), "1")], [("100", "1")]), i, False)
    assert out == []  # conflated: nothing yet within this loop iteration
    await asyncio.sleep(0)
    assert len(out) == 1 and out[0].bids[0].price == 59.0


def make_conflating(depth: int = 2) -> tuple[TopNListener, list[MergedBook]]:
    agg = Aggregator("ethbtc", ["binance"], depth=depth)
    out: list[MergedBook] = []
    agg.add_sink(out.append)
    lst = TopNListener("binance", binance.make_decoder(depth), agg.producers["binance"], binance.is_book)
    return lst, out


async def test_snapshot_frames_superseded_in_a_read_are_not_decoded() -> None:
    lst, out = make_conflating()
    for i in range(5):
        lst.on_frame(depth_frame([(str(10 + i), "1")], [("100", "1")]), i, False)
    lst.on_frame(depth_frame([("20", "1")], [("100", "1")]), 5, True)
    assert lst.books == 1 and lst.conflated == 5
    assert len(out) == 1 and out[0].bids[0].price == 20.0 and out[0].source_frame == 6


async def test_a_held_book_is_decoded_before_a_control_frame_ends_the_read() -> None:
    lst, out = make_conflating()
    lst.on_frame(depth_frame([("10", "1")], [("100", "1")]), 1, False)
    lst.on_frame(depth_frame([("11", "1")], [("100", "1")]), 2, False)
    assert lst.on_frame(b'{"result":null,"id":1}', 3, True) is False
    assert len(out) == 1 and out[0].bids[0].price == 11.0 and out[0].source_frame == 2


async def test_a_held_book_is_published_at_the_end_of_the_loop_iteration() -> None:
    import asyncio

    lst, out = make_conflating()
    lst.on_frame(depth_frame([("10", "1")], [("100", "1")]), 1, False)
    lst.on_frame(b'{"lastUpdateId":2,"bids":[["x","1"]],"asks":[]}', 2, False)
    await asyncio.sleep(0)
    assert lst.malformed == 1 and out == []  # the newest frame was bad: nothing published
    lst.on_frame(depth_frame([("12", "1")], [("100", "1")]), 3, False)
    await asyncio.sleep(0)
    assert len(out) == 1 and out[0].bids[0].price == 12.0


def test_is_book_predicates_never_take_control_frames() -> None:
    from dragonfly.venues import bitstamp

    for frame in (b'{"result":null,"id":1}', b'{"error":{"code":2,"msg":"x"},"id":1}'):
        assert not binance.is_book(frame)
    for frame in (
        b'{"event":"bts:subscription_succeeded","channel":"order_book_ethbtc","data":{}}',
        b'{"event":"bts:heartbeat","channel":"","data":{"status":"success"}}',
        b'{"event":"bts:request_reconnect","channel":"","data":""}',
        b'{"event":"bts:error","channel":"","data":{"code":null,"message":"Bad subscription string."}}',
    ):
        assert not bitstamp.is_book(frame)
    assert bitstamp.is_book(b'{"data":{"bids":[],"asks":[]},"channel":"order_book_ethbtc","event":"data"}')
    assert bitstamp.is_book(b'{"data": {}, "channel": "order_book_ethbtc", "event": "data"}')
