"""Fault specs, the fault API, and the connection faults on the synthetic simulator.

Every fault is observed on the wire: a picows probe or a raw socket, against a
real simulator on loopback.
"""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from faultutil import BITSTAMP_BOOK, binance_raw, bitstamp_probe, quiet, raw_until
from picows import WSCloseCode, WSHandshakeError

from dragonfly.sim import Simulator
from dragonfly.sim.faults import KINDS, Fault, parse_fault, wire
from dragonfly.sim.probe import connect, connect_raw

# -- specs ------------------------------------------------------------------------------


def test_specs_parse_with_their_parameters_and_defaults() -> None:
    assert parse_fault("close,code=1000") == Fault("close", {"code": 1000})
    bye = parse_fault("close, code=1000 ,reason=see%2C%20you")
    assert (bye.get("code"), bye.get("reason")) == (1000, "see, you")
    assert parse_fault("close,code=none").get("code") is None
    assert parse_fault("close").get("code") == 1000 and parse_fault("close").get("reason") is None
    silence = parse_fault("silence,for=30")
    assert (silence.for_s, silence.count) == (30.0, None)
    assert parse_fault("silence").count is None  # lasts until cancelled
    assert parse_fault("nan,count=5").count == 5
    assert parse_fault("nan").count == 1 and parse_fault("nan").get("field") == "price"
    error = parse_fault("rest-error,status=429,retry_after=2")
    assert (error.get("status"), error.get("retry_after")) == (429, 2)
    for spec in ("close,code=1000,reason=see%2C%20you", "delay,ms=12.5,for=3", "absurd,factor=0.001",
                 "stall,phase=upgrade,count=2", "oversized,bytes=1048576"):
        fault = parse_fault(spec)
        assert parse_fault(fault.spec) == fault and hash(parse_fault(fault.spec)) == hash(fault)


@pytest.mark.parametrize(("spec", "message"), [
    ("", "empty fault spec"),
    ("explode", "unknown fault kind 'explode': expected one of drop, close, refuse"),
    ("close,cod=1", "close: unknown parameter 'cod' (expected code, reason, for)"),
    ("close,code=abc", "close: code must be 0-65535 or none, got 'abc'"),
    ("nan,count=0", "nan: count must be a whole number >= 1, got '0'"),
    ("nan,count=2,for=1", "nan: give count= or for=, not both"),
    ("silence,for", "silence: parameter 'for' needs a value (for=...)"),
    ("silence,for=-1", "silence: for must be seconds >= 0"),
    ("nan,count=1,count=2", "nan: parameter 'count' given twice"),
    ("protocol,variant=bogus", "protocol: variant must be masked, opcode, rsv, ping, close or cont"),
    ("drop,count=2", "drop: unknown parameter 'count' (expected for)"),
])
def test_bad_specs_are_one_clear_line(spec: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_fault(spec)
    assert str(info.value).startswith(message) and "\n" not in str(info.value)


def test_kinds_describe_every_fault_in_one_line() -> None:
    assert set(KINDS) == {
        "drop", "close", "refuse", "stall", "silence", "pause", "flap", "delay", "protocol",
        "malformed", "truncated", "binary", "oversized", "fragments", "wrong-types", "nan",
        "negative", "zero", "huge", "absurd", "crossed", "skip", "repeat", "checksum", "notice",
        "rest-slow", "rest-error", "rest-stale", "rest-future", "rest-headers"}
    assert all(summary and "\n" not in summary for summary in KINDS.values())


async def test_faults_a_venue_cannot_show_are_refused(sim: Simulator) -> None:
    with pytest.raises(ValueError, match="bitstamp diff events carry no sequence numbers"):
        sim.fault("bitstamp", "skip")
    with pytest.raises(ValueError, match="binance sends no checksum"):
        sim.fault("binance", "checksum")
    with pytest.raises(ValueError, match="not served"):
        sim.fault("kraken", "drop")
    with pytest.raises(ValueError, match="unknown fault kind"):
        sim.fault("binance", "explode")
    assert sim.faults("binance") == sim.faults("bitstamp") == []


# -- the fault API ------------------------------------------------------------------------


async def test_active_fault_counts_ends_and_cancels(sim: Simulator) -> None:
    probe = await bitstamp_probe(sim)
    fault = sim.fault("bitstamp", "nan,count=2")
    assert fault.fault == parse_fault("nan,count=2") and fault.active
    assert await fault.wait_applied(2) == 2
    assert not fault.active and sim.faults("bitstamp") == []  # the count is used up
    window = sim.fault("bitstamp", "repeat,for=0.2")
    await asyncio.sleep(0.3)
    assert window.applied >= 2 and not window.active  # the window closed by itself
    held = sim.fault("bitstamp", "silence")
    assert sim.faults("bitstamp") == [held]
    held.cancel()
    assert not held.active and sim.faults("bitstamp") == []
    sim.fault("bitstamp", "silence")
    sim.fault("bitstamp", "delay,ms=5")
    assert sim.clear_faults("bitstamp") == 2 and sim.faults("bitstamp") == []
    with pytest.raises(TimeoutError, match="hit 0 of 1"):
        await sim.fault("binance", "nan").wait_applied(timeout=0.1)  # nobody subscribed
    await probe.close()


# -- connection faults -----------------------------------------------------------------


async def test_drop_aborts_every_client_without_a_close_frame(sim: Simulator) -> None:
    probes = [await bitstamp_probe(sim) for _ in range(2)]
    fault = sim.fault("bitstamp", "drop")
    assert fault.applied == 2 and not fault.active
    for probe in probes:
        await asyncio.wait_for(probe.disconnected.wait(), 5.0)
        assert probe.close_code is None
    window = sim.fault("bitstamp", "drop,for=1")
    late = await connect(sim.ws_url("bitstamp"))
    await asyncio.wait_for(late.disconnected.wait(), 5.0)  # dropped as it connected
    assert late.close_code is None and window.applied == 1
    window.cancel()


@pytest.mark.parametrize(("spec", "payload"), [
    ("close,code=1000", b"\x03\xe8"),  # Binance's routine 24 h close: a code, no reason
    ("close,code=4001,reason=bye", b"\x0f\xa1bye"),
    ("close,code=none", b""),
])
async def test_close_sends_exactly_that_close_frame(sim: Simulator, spec: str, payload: bytes) -> None:
    probe = await binance_raw(sim)
    await probe.frame()  # streaming
    fault = sim.fault("binance", spec)
    frame = await raw_until(probe, lambda f: f.opcode == wire.CLOSE)
    assert frame.payload == payload and fault.applied == 1
    assert await probe.eof()


async def test_refuse_answers_upgrades_with_503(sim: Simulator) -> None:
    fault = sim.fault("binance", "refuse,for=0.3")
    for _ in range(2):
        with pytest.raises(WSHandshakeError) as info:
            await connect(sim.ws_url("binance"))
        assert info.value.response is not None and info.value.response.status == 503
    assert fault.applied == 2
    await asyncio.sleep(0.35)
    (await connect(sim.ws_url("binance"))).transport.disconnect()  # type: ignore[union-attr]
    sim.fault("binance", "refuse,status=429")  # once, with another status
    with pytest.raises(WSHandshakeError) as info:
        await connect(sim.ws_url("binance"))
    assert info.value.response is not None and info.value.response.status == 429
    await (await connect(sim.ws_url("binance"))).close()


async def test_stall_upgrades_then_never_reads_nor_writes(sim: Simulator) -> None:
    sim.fault("bitstamp", "stall")  # the next connection only
    stalled = await connect_raw(sim.ws_url("bitstamp"))
    stalled.send_text(BITSTAMP_BOOK)
    stalled.writer.write(wire.frame(wire.PING, b"hello?", mask=b"abcd"))
    with pytest.raises(TimeoutError):
        await stalled.frame(timeout=0.3)  # no ack, no data, no pong
    healthy = await bitstamp_probe(sim)  # the next one is served
    assert "bids" in (await healthy.recv_json())["data"]
    stalled.close()
    await healthy.close()


async def test_stall_at_the_upgrade_never_answers_it(sim: Simulator) -> None:
    fault = sim.fault("binance", "stall,phase=upgrade")
    probe = await connect_raw(sim.ws_url("binance"), upgrade=False)
    with pytest.raises(TimeoutError):
        await probe.response_head(timeout=0.3)
    assert fault.applied == 1
    probe.close()


async def test_silence_sends_nothing_keeps_the_socket_then_resumes(sim: Simulator) -> None:
    probe = await connect_raw(sim.ws_url("bitstamp"))
    probe.send_text(BITSTAMP_BOOK)
    await raw_until(probe, lambda f: b'"event": "data"' in f.payload)
    fault = sim.fault("bitstamp", "silence,for=0.4")
    await asyncio.sleep(0.05)
    while True:  # frames already in flight
        try:
            await probe.frame(timeout=0.05)
        except TimeoutError:
            break
    probe.send_text({"event": "bts:heartbeat"})
    probe.writer.write(wire.frame(wire.PING, b"anyone", mask=b"abcd"))
    with pytest.raises(TimeoutError):
        await probe.frame(timeout=0.2)  # no data, no reply, no pong
    assert fault.applied >= 2
    frame = await raw_until(probe, lambda f: b'"event": "data"' in f.payload, timeout=5.0)
    assert frame.opcode == wire.TEXT  # the same socket, data again
    probe.close()


async def test_pause_stops_data_and_still_answers_requests_and_pings(sim: Simulator) -> None:
    probe = await bitstamp_probe(sim)
    sim.fault("bitstamp", "pause,for=0.5")
    await quiet(probe, 0.05)
    probe.send({"event": "bts:heartbeat"})
    assert (await probe.recv_json())["event"] == "bts:heartbeat"
    assert probe.transport is not None
    rtt = await probe.transport.measure_roundtrip_time(1)
    assert rtt and rtt[0] < 0.2  # PINGs answered
    assert await quiet(probe, 0.2) == []  # no data
    assert "bids" in (await probe.recv_json(timeout=5.0))["data"]
    await probe.close()


async def test_flap_closes_new_connections_after_they_subscribe(sim: Simulator) -> None:
    before = await bitstamp_probe(sim)
    fault = sim.fault("bitstamp", "flap,after=0.1,for=2")
    started = time.monotonic()
    probe = await bitstamp_probe(sim)  # subscribed and acked
    await asyncio.wait_for(probe.disconnected.wait(), 5.0)
    assert probe.close_code == WSCloseCode.GOING_AWAY and time.monotonic() - started >= 0.1
    assert fault.applied == 1 and not before.disconnected.is_set()
    fault.cancel()
    await before.close()


async def test_delay_holds_every_frame_in_order(sim: Simulator) -> None:
    probe = await bitstamp_probe(sim)
    await probe.recv_json()
    sim.fault("bitstamp", "delay,ms=150,for=2")
    await quiet(probe, 0.05)
    sent = time.monotonic()
    probe.send({"event": "bts:heartbeat"})
    reply = await probe.wait_json({"event": "bts:heartbeat"}, timeout=5.0)
    assert reply["event"] == "bts:heartbeat" and time.monotonic() - sent >= 0.14  # timer granularity
    stamps = [int(json.loads(f)["data"]["microtimestamp"]) for f in await quiet(probe, 0.3)
              if b'"event": "data"' in f]
    assert len(stamps) >= 3 and stamps == sorted(stamps)
    await probe.close()


async def test_notice_then_close_after_the_grace(sim: Simulator) -> None:
    bitstamp = await bitstamp_probe(sim)
    binance = await connect(sim.ws_url("binance"))
    assert sim.fault("bitstamp", "notice,grace=0.2").applied == 1
    assert await bitstamp.wait_json({"event": "bts:request_reconnect"}) == {
        "event": "bts:request_reconnect", "channel": "", "data": ""}
    notice = sim.fault("binance", "notice,grace=0.1")
    shutdown = await binance.recv_json()
    assert set(shutdown) == {"e", "E"} and shutdown["e"] == "serverShutdown"
    assert abs(shutdown["E"] - time.time() * 1000) < 5000
    for probe in (bitstamp, binance):
        await asyncio.wait_for(probe.disconnected.wait(), 5.0)
        assert probe.close_code == WSCloseCode.SERVICE_RESTART
    assert not notice.active
