"""Frame, value and sequence faults on the synthetic simulator, seen by a raw or picows client."""

from __future__ import annotations

import asyncio
import itertools
import json
from typing import Any

import pytest
from faultutil import BITSTAMP_BOOK, binance_raw, bitstamp_probe, json_frames, raw_until

from dragonfly.sim import Simulator
from dragonfly.sim.faults import wire
from dragonfly.sim.probe import Probe, connect, connect_raw


@pytest.mark.parametrize(("variant", "check"), [
    ("masked", lambda f: f.masked and f.opcode == wire.TEXT and json.loads(f.payload)),
    ("opcode", lambda f: f.opcode == 0x3),
    ("rsv", lambda f: f.rsv1 and f.opcode == wire.TEXT),
    ("ping", lambda f: f.opcode == wire.PING and len(f.payload) > 125),
    ("close", lambda f: f.opcode == wire.CLOSE and len(f.payload) == 1),
    ("cont", lambda f: f.opcode == wire.CONTINUATION and f.fin),
])
async def test_protocol_violations_are_written_raw(sim: Simulator, variant: str, check: Any) -> None:
    probe = await binance_raw(sim)
    first = await probe.frame()
    assert (first.opcode, first.fin, first.rsv1, first.masked) == (wire.TEXT, True, False, False)
    fault = sim.fault("binance", f"protocol,variant={variant}")
    frame = await raw_until(probe, lambda f: not (f.opcode == wire.TEXT and not f.masked and not f.rsv1))
    assert check(frame), frame
    assert fault.applied == 1
    probe.close()


async def test_malformed_breaks_the_json_after_the_first_20_levels(sim: Simulator) -> None:
    probe = await bitstamp_probe(sim)
    sim.fault("bitstamp", "malformed")
    frames = [await probe.recv() for _ in range(5)]
    broken: list[tuple[bytes, json.JSONDecodeError]] = []
    for frame in frames:
        try:
            json.loads(frame)
        except json.JSONDecodeError as error:
            broken.append((frame, error))
    ((bad, failure),) = broken
    start = bad.index(b'"bids": [')
    assert bad[start:failure.pos].count(b'["') == 21  # the first 20 levels read fine
    await probe.close()


async def test_truncated_binary_and_oversized_frames(sim: Simulator) -> None:
    probe = await binance_raw(sim)
    await probe.frame()
    sim.fault("binance", "truncated")
    cut = await raw_until(probe, lambda f: not f.payload.endswith(b"]]}"))
    assert cut.opcode == wire.TEXT and cut.payload.startswith(b'{"lastUpdateId":')
    with pytest.raises(ValueError):
        json.loads(cut.payload)
    sim.fault("binance", "binary")
    garbage = await raw_until(probe, lambda f: f.opcode != wire.TEXT)
    assert garbage.opcode == wire.BINARY and len(garbage.payload) > 100
    sim.fault("binance", "oversized,bytes=1048576")
    big = await raw_until(probe, lambda f: len(f.payload) > 100_000)
    assert big.opcode == wire.TEXT and len(big.payload) == 1048576
    assert set(json.loads(big.payload)) == {"lastUpdateId", "bids", "asks"}  # only the size is wrong
    probe.close()


async def test_fragments_never_finish_and_stop_at_the_byte_limit(sim: Simulator) -> None:
    probe = await binance_raw(sim)
    await probe.frame()
    fault = sim.fault("binance", "fragments,bytes=300000")
    head = await raw_until(probe, lambda f: not f.fin)
    assert head.opcode == wire.TEXT and head.payload.startswith(b'{"lastUpdateId":')
    total = len(head.payload)
    while total < 300000:
        part = await probe.frame()
        assert (part.opcode, part.fin) == (wire.CONTINUATION, False)
        total += len(part.payload)
    assert total == 300000 and fault.applied == 1
    with pytest.raises(TimeoutError):
        await probe.frame(timeout=0.2)  # nothing may follow an unfinished message
    probe.close()


async def test_endless_fragments_stop_when_the_client_leaves(sim: Simulator) -> None:
    probe = await binance_raw(sim)
    await probe.frame()
    sim.fault("binance", "fragments")
    await raw_until(probe, lambda f: not f.fin)
    for _ in range(3):
        assert (await probe.frame()).opcode == wire.CONTINUATION
    probe.close()
    for _ in range(50):
        if sim.clients("binance") == 0:
            break
        await asyncio.sleep(0.02)
    assert sim.clients("binance") == 0
    again = await connect(sim.ws_url("binance") + "/ethbtc@depth5@100ms")  # the loop is free
    assert len((await again.recv_json())["bids"]) == 5
    await again.close()


async def frozen_pair(sim: Simulator, probe: Probe, spec: str) -> tuple[Any, Any]:
    """With the market held still: (a clean depth20 frame, the frame the fault changed)."""
    sim.pause_market()
    await asyncio.sleep(0.05)
    probe.drain()
    clean = await probe.recv_json()
    sim.fault("binance", spec)
    while (changed := await probe.recv_json()) == clean:
        pass
    return clean, changed


@pytest.mark.parametrize(("spec", "where", "value"), [
    ("nan", ("bids", 0, 0), "NaN"),
    ("nan,field=amount,side=ask", ("asks", 0, 1), "NaN"),
    ("wrong-types", ("bids", 0, 0), "number"),
    ("wrong-types,as=null,field=amount", ("bids", 0, 1), None),
    ("wrong-types,as=object", ("bids", 0, 0), "object"),
    ("negative", ("bids", 0, 1), "negative"),
    ("zero,side=ask", ("asks", 0, 1), "0.00000000"),
    ("huge", ("bids", 0, 0), "1e308"),
])
async def test_value_faults_change_one_value_and_nothing_else(
        sim: Simulator, spec: str, where: tuple[str, int, int], value: Any) -> None:
    probe = await connect(sim.ws_url("binance") + "/ethbtc@depth20@100ms")
    clean, changed = await frozen_pair(sim, probe, spec)
    side, index, field = where
    old, new = clean[side][index][field], changed[side][index][field]
    if value == "number":
        assert new == float(old)
    elif value == "object":
        assert isinstance(new, dict)
    elif value == "negative":
        assert new == "-" + old
    else:
        assert new == value
    changed[side][index][field] = old
    assert changed == clean  # the rest is intact
    await probe.close()


async def test_absurd_scales_every_price_and_crossed_crosses_the_snapshot(sim: Simulator) -> None:
    probe = await connect(sim.ws_url("binance") + "/ethbtc@depth20@100ms")
    clean, changed = await frozen_pair(sim, probe, "absurd,factor=1000")
    for side in ("bids", "asks"):
        scaled = [float(p) * 1000 for p, _ in clean[side]]
        assert [float(p) for p, _ in changed[side]] == pytest.approx(scaled)
        assert [a for _, a in changed[side]] == [a for _, a in clean[side]]
        assert all(len(p.split(".")[1]) == 8 for p, _ in changed[side])  # the venue's decimals
    assert float(changed["bids"][0][0]) < float(changed["asks"][0][0])  # ordered, uncrossed
    sim.fault("binance", "crossed")
    while (crossed := await probe.recv_json()) == clean:
        pass
    assert float(crossed["bids"][0][0]) > float(crossed["asks"][0][0])
    assert crossed["bids"][1:] == clean["bids"][1:] and crossed["asks"] == clean["asks"]
    await probe.close()


async def test_crossed_diff_inserts_a_bid_above_the_highest_ask_it_leaves(sim: Simulator) -> None:
    probe = await connect(sim.ws_url("binance") + "/ethbtc@depth@100ms")
    await probe.recv_json()
    fault = sim.fault("binance", "crossed")
    await fault.wait_applied()
    for _ in range(20):
        event = await probe.recv_json()
        live_asks = [float(p) for p, a in event["a"] if float(a) > 0]
        if event["b"] and live_asks and float(event["b"][0][0]) > max(live_asks):
            break
    else:
        pytest.fail("no crossing bid seen")
    await probe.close()


async def test_skip_makes_the_update_ids_jump_once(sim: Simulator) -> None:
    probe = await connect(sim.ws_url("binance") + "/ethbtc@depth@100ms")
    events = await json_frames(probe, 2)
    sim.fault("binance", "skip,count=2,symbol=ETHBTC")
    events += await json_frames(probe, 6)
    gaps = [b["U"] - a["u"] for a, b in itertools.pairwise(events)]
    assert sorted(gaps)[-1] > 1 and gaps.count(1) == len(gaps) - 1  # one jump (two events lost)
    await probe.close()


async def test_repeat_sends_frames_twice(sim: Simulator) -> None:
    probe = await connect(sim.ws_url("binance") + "/ethbtc@depth@100ms")
    await probe.recv_json()
    sim.fault("binance", "repeat,count=2")
    frames = [await probe.recv() for _ in range(6)]
    pairs = [a == b for a, b in itertools.pairwise(frames)]
    assert pairs.count(True) == 2
    await probe.close()


async def test_frame_faults_spare_acks_and_replies(sim: Simulator) -> None:
    probe = await connect_raw(sim.ws_url("bitstamp"))
    fault = sim.fault("bitstamp", "binary,for=1")
    probe.send_text(BITSTAMP_BOOK)
    ack = await probe.frame()
    assert ack.opcode == wire.TEXT and b"bts:subscription_succeeded" in ack.payload
    assert (await probe.frame()).opcode == wire.BINARY
    probe.send_text({"event": "bts:heartbeat"})
    reply = await raw_until(probe, lambda f: f.opcode == wire.TEXT)
    assert b"bts:heartbeat" in reply.payload and fault.applied >= 1
    probe.close()
