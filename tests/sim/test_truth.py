"""The truth record: every position a venue's frames carry names the book state they showed."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from dragonfly.sim import Simulator, SyntheticMarket
from dragonfly.sim.book import FloatLevel
from dragonfly.sim.probe import Probe, connect, http_get
from dragonfly.sim.truth import BookTruth, TruthRecord, TruthState

PERIOD_S = 0.02
DEPTH = 20


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    """Both venues, one instrument, the truth record on."""
    simulator = Simulator(["binance", "bitstamp"], ["ethbtc"], seed=5, period_s=PERIOD_S, truth_s=30.0)
    await simulator.start()
    yield simulator
    await simulator.stop()


def levels(side: list[list[str]]) -> list[FloatLevel]:
    """Parse decimal text levels as a client does."""
    return [(float(p), float(q)) for p, q in side]


def assert_shows(state: TruthState | None, bids: list[FloatLevel], asks: list[FloatLevel],
                 seen_ns: int) -> None:
    """The state exists, was the book before the frame arrived, and has the frame's top levels."""
    assert state is not None
    assert state.valid_from_ns <= seen_ns
    assert list(state.bids) == bids[:DEPTH] and list(state.asks) == asks[:DEPTH]
    assert len(state.bids) == DEPTH == len(state.asks)


async def subscribe_binance(probe: Probe, stream: str) -> None:
    probe.send({"method": "SUBSCRIBE", "params": [stream], "id": 1})
    assert await probe.wait_json({"id": 1}) == {"result": None, "id": 1}


async def subscribe_bitstamp(probe: Probe, channel: str) -> None:
    probe.send({"event": "bts:subscribe", "data": {"channel": channel}})
    assert (await probe.recv_json())["event"] == "bts:subscription_succeeded"


async def test_binance_depth_frames_name_their_state(sim: Simulator) -> None:
    probe = await connect(sim.ws_url("binance"))
    await subscribe_binance(probe, "ethbtc@depth20@100ms")
    ids = set()
    for _ in range(15):
        frame = await probe.recv_json()
        now = time.time_ns()
        state = sim.truth("binance", "ethbtc", frame["lastUpdateId"])
        assert_shows(state, levels(frame["bids"]), levels(frame["asks"]), now)
        assert state is not None and state.update_id == state.seq
        ids.add(frame["lastUpdateId"])
    assert len(ids) > 5  # the market moved between frames
    await probe.close()


async def test_binance_diff_events_name_the_state_they_lead_to(sim: Simulator) -> None:
    """Snapshot plus events, kept by the documented procedure, equal the state named by ``u``."""
    probe = await connect(sim.ws_url("binance"))
    await subscribe_binance(probe, "ethbtc@depth@100ms")
    first = await probe.recv_json()
    url = f"{sim.rest_url('binance')}/api/v3/depth?symbol=ETHBTC&limit=1000"
    snap: dict[str, Any] = (await http_get(url)).json()
    while snap["lastUpdateId"] < first["U"]:
        snap = (await http_get(url)).json()
    assert_shows(sim.truth("binance", "ethbtc", snap["lastUpdateId"]), levels(snap["bids"]),
                 levels(snap["asks"]), time.time_ns())
    bids = dict(levels(snap["bids"]))
    asks = dict(levels(snap["asks"]))
    update_id = snap["lastUpdateId"]
    events = [first] + [json.loads(raw) for raw in probe.drain()]
    checked = 0
    while checked < 10:
        for event in events:
            if event["u"] <= update_id:
                continue
            assert event["U"] <= update_id + 1
            for side, changes in ((bids, event["b"]), (asks, event["a"])):
                for price, amount in levels(changes):
                    if amount == 0:
                        side.pop(price, None)
                    else:
                        side[price] = amount
            update_id = event["u"]
            assert_shows(sim.truth("binance", "ethbtc", update_id), sorted(bids.items(), reverse=True),
                         sorted(asks.items()), time.time_ns())
            checked += 1
        events = [await probe.recv_json()]
    await probe.close()


async def test_bitstamp_book_and_diff_frames_name_their_state(sim: Simulator) -> None:
    probe = await connect(sim.ws_url("bitstamp"))
    await subscribe_bitstamp(probe, "order_book_ethbtc")
    await subscribe_bitstamp(probe, "diff_order_book_ethbtc")
    books = diffs = 0
    while books < 10 or diffs < 10:
        event = await probe.recv_json()
        now = time.time_ns()
        data = event["data"]
        state = sim.truth("bitstamp", "ethbtc", int(data["microtimestamp"]))
        if event["channel"] == "order_book_ethbtc":
            assert_shows(state, levels(data["bids"]), levels(data["asks"]), now)
            books += 1
        else:
            assert state is not None and state.valid_from_ns <= now
            # A diff's levels are the changed ones, at their amounts in that state.
            shown = dict(state.bids) | dict(state.asks)
            for price, amount in levels(data["bids"]) + levels(data["asks"]):
                if price in shown:
                    assert shown[price] == amount
            diffs += 1
    snap = (await http_get(f"{sim.rest_url('bitstamp')}/api/v2/order_book/ethbtc/")).json()
    assert_shows(sim.truth("bitstamp", "ethbtc", int(snap["microtimestamp"])), levels(snap["bids"]),
                 levels(snap["asks"]), time.time_ns())
    await probe.close()


async def test_states_follow_on_in_time_and_stale_snapshots_are_kept(sim: Simulator) -> None:
    assert sim.truth_record is not None
    await asyncio.sleep(1.3)  # the market moves on past the 1 s old book
    sim.fault("binance", "rest-stale,age=1")
    stale = (await http_get(f"{sim.rest_url('binance')}/api/v3/depth?symbol=ETHBTC")).json()
    state = sim.truth("binance", "ethbtc", stale["lastUpdateId"])
    assert_shows(state, levels(stale["bids"]), levels(stale["asks"]), time.time_ns())
    assert state is not None and state.valid_until_ns is not None  # replaced since
    book = sim.truth_record.book("binance", "ethbtc")
    states = list(book)
    assert len(states) > 10
    for older, newer in itertools.pairwise(states):
        assert older.valid_until_ns == newer.valid_from_ns
        assert older.seq < newer.seq and newer.index == older.index + 1
    assert states[-1].valid_until_ns is None and book.current is states[-1]
    assert sim.truth("binance", "ethbtc", states[-1].seq + 10**9) is None  # never shown
    assert sim.connections("binance") == 0


async def test_off_unless_asked_and_connections_are_counted() -> None:
    async with Simulator(["bitstamp"], ["ethbtc"], period_s=PERIOD_S) as sim:
        assert sim.truth_record is None
        with pytest.raises(RuntimeError, match="truth_s"):
            sim.truth("bitstamp", "ethbtc", 1)
        with pytest.raises(ValueError, match="not served"):
            sim.truth("binance", "ethbtc", 1)
        for _ in range(2):
            probe = await connect(sim.ws_url("bitstamp"))
            await probe.close()
        assert sim.connections("bitstamp") == 2


def test_record_is_bounded_and_top_until_skips_deep_changes() -> None:
    clock = [0]
    market = SyntheticMarket(["ethbtc"], ["binance", "bitstamp"], seed=1, clock_ns=lambda: clock[0])
    seqs = {"binance": lambda b: b.update_id, "bitstamp": lambda b: b.micros}
    record = TruthRecord(seqs, keep_s=1.0, depth=5, clock_ns=lambda: clock[0])
    record.attach(market)
    everything = TruthRecord(seqs, keep_s=100.0, depth=5, clock_ns=lambda: clock[0])
    everything.attach(market)
    for step in range(1, 301):
        clock[0] = step * 100_000_000  # 0.1 s a step
        market.step()
        current = record.book("bitstamp", "ethbtc").current
        assert current is not None and current.seq == market.book("bitstamp", "ethbtc").micros
    book = record.book("binance", "ethbtc")
    # 1 s kept at 10 steps a second (plus the current state and the one just replaced).
    assert 5 <= len(book) <= 12
    assert book.recorded > 250 and len(record) <= 24
    states = list(book)
    assert states[0].valid_until_ns is not None and states[0].valid_until_ns >= clock[0] - 1_000_000_000
    assert record.state("binance", "ethbtc", 1) is None  # the seeded state, long replaced
    assert everything.state("binance", "ethbtc", 1) is not None
    full = everything.book("binance", "ethbtc")
    states = list(full)
    skipped = 0
    for position, state in enumerate(states):
        changed = [s for s in states[position + 1:] if s.top(1) != state.top(1)]
        until = full.top_until(state, 1)
        assert until == (changed[0].valid_from_ns if changed else None)
        if until is not None and state.valid_until_ns != until:
            skipped += 1  # a later step changed only deeper levels: the top stayed true
    assert skipped > 10


def test_book_truth_shares_level_tuples() -> None:
    market = SyntheticMarket(["ethbtc"], ["binance"], seed=2)
    truth = BookTruth(20)
    book = market.book("binance", "ethbtc")
    assert truth.observe(book, book.update_id, 1)
    assert not truth.observe(book, book.update_id, 2)  # unchanged: nothing recorded
    first = truth.current
    market.step()
    assert truth.observe(book, book.update_id, 3)
    second = truth.current
    assert first is not None and second is not None and first.valid_until_ns == 3
    shared = {id(level) for level in first.bids + first.asks}
    assert any(id(level) in shared for level in second.bids + second.asks)
