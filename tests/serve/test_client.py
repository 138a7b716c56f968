"""The client library and ``python -m dragonfly.client`` against a real GrpcService."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from dragonfly.client.__main__ import parse_target, parse_window
from dragonfly.client.format import format_number, format_summary, summary_to_dict, summary_to_json
from dragonfly.client.stream import (
    DEFAULT_WINDOW_BYTES,
    ServerUnreachableError,
    StreamError,
    channel_options,
    stream_summaries,
)
from dragonfly.core.fanout import FanOut
from dragonfly.core.types import MergedBook, MergedLevel
from dragonfly.serve import orderbook_pb2
from dragonfly.serve.encode import encode_summary
from dragonfly.serve.grpc_service import GrpcService
from latency.ports import free_port

if TYPE_CHECKING:
    from conftest import MakeBook, Running, WaitUntil

ROOT = Path(__file__).resolve().parents[2]


async def _client(
    *args: str, during: Callable[[], Coroutine[Any, Any, None]] | None = None
) -> tuple[int, str, str]:
    """Run the client CLI, and ``during()`` meanwhile; return status, stdout, stderr."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "dragonfly.client",
        *args,
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    side = asyncio.create_task(during()) if during is not None else None
    try:
        async with asyncio.timeout(20):
            out, err = await process.communicate()
    finally:
        if side is not None:
            side.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await side
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def _publisher(running: Running, make_book: MakeBook) -> Callable[[], Coroutine[Any, Any, None]]:
    """Return a coroutine function publishing an update every 20 ms, forever."""

    async def publish() -> None:
        sequence = 0
        while True:
            sequence += 1
            running.fanout.publish(encode_summary(make_book(sequence)))
            await asyncio.sleep(0.02)

    return publish


def _summary(book: MergedBook) -> orderbook_pb2.Summary:
    return orderbook_pb2.Summary.FromString(encode_summary(book))


async def test_cli_prints_count_updates_as_json(running: Running, make_book: MakeBook) -> None:
    code, out, err = await _client(
        "--server", running.target, "--count", "2", "--json", during=_publisher(running, make_book)
    )
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert len(lines) == 2
    first, second = (json.loads(line) for line in lines)
    assert list(first) == ["instrument", "sequence", "spread", "bids", "asks", "venues"]
    assert first["instrument"] == "ETHBTC"
    assert 0 < first["sequence"] < second["sequence"]
    book = make_book(first["sequence"])
    assert first["spread"] == book.spread
    assert first["bids"] == [{"exchange": e, "price": p, "amount": a} for e, p, a in book.bids]
    assert first["asks"] == [{"exchange": e, "price": p, "amount": a} for e, p, a in book.asks]


async def test_cli_prints_a_table(running: Running, make_book: MakeBook) -> None:
    code, out, err = await _client(
        "--server", running.target, "--count", "1", "--depth", "3", during=_publisher(running, make_book)
    )
    assert (code, err) == (0, "")
    header, titles, *rows = out.strip().splitlines()
    assert header.startswith("ETHBTC  seq ")
    assert "spread 0.001" in header
    assert titles.split() == ["venue", "bid", "price", "amount", "ask", "price", "amount", "venue"]
    assert len(rows) == 3
    assert rows[0].split()[:2] == ["bitstamp", "0.068"]
    assert rows[0].split()[-3:] == ["0.069", "2", "binance"]


async def test_cli_reports_an_unreachable_server_in_one_line() -> None:
    port = free_port()
    code, out, err = await _client("--server", f"127.0.0.1:{port}", "--timeout", "0.5")
    assert code == 1
    assert out == ""
    assert err == f"error: cannot reach dragonfly server at 127.0.0.1:{port} (connection refused)\n"


async def test_cli_exits_0_when_the_server_ends_the_stream(
    running: Running, make_book: MakeBook, wait_until: WaitUntil
) -> None:
    async def end_after_one() -> None:
        await wait_until(lambda: running.service.subscribers == 1, timeout=15)
        running.fanout.publish(encode_summary(make_book(1)))
        await wait_until(lambda: running.service.stream_stats()[0].delivered == 1)
        running.fanout.close()

    code, out, err = await _client("--server", running.target, "--json", during=end_after_one)
    assert code == 0
    assert [json.loads(line)["sequence"] for line in out.splitlines()] == [1]
    assert err == f"server at {running.target} ended the stream after 1 updates\n"


async def test_stream_summaries_yields_updates(running: Running, make_book: MakeBook) -> None:
    running.fanout.publish(encode_summary(make_book(1)))
    async with contextlib.aclosing(stream_summaries(running.target, timeout=2)) as summaries:
        async for summary in summaries:
            if summary.sequence == 3:
                break
            running.fanout.publish(encode_summary(make_book(summary.sequence + 1)))
    assert summary.sequence == 3
    assert list(summary.bids) == list(_summary(make_book(3)).bids)


async def test_stream_summaries_waits_for_a_server_that_starts_late(make_book: MakeBook) -> None:
    port = free_port()
    fanout: FanOut[bytes] = FanOut()
    fanout.publish(encode_summary(make_book(7)))
    service = GrpcService(fanout, "127.0.0.1", port)

    async def start_late() -> None:
        await asyncio.sleep(0.4)
        await service.start()

    starting = asyncio.create_task(start_late())
    try:
        async with contextlib.aclosing(stream_summaries(f"127.0.0.1:{port}", timeout=5)) as summaries:
            first = await anext(summaries)
        assert first.sequence == 7
    finally:
        await starting
        await service.stop()


async def test_stream_summaries_gives_up_after_the_timeout() -> None:
    port = free_port()
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(ServerUnreachableError) as raised:
        await anext(stream_summaries(f"127.0.0.1:{port}", timeout=0.3))
    assert 0.3 <= loop.time() - started < 3
    assert raised.value.reason == "connection refused"
    assert str(raised.value) == f"cannot reach dragonfly server at 127.0.0.1:{port} (connection refused)"


async def test_stream_summaries_reports_a_server_without_the_service() -> None:
    import grpc.aio

    server = grpc.aio.server()
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        with pytest.raises(StreamError, match=r"does not serve orderbook\.OrderbookAggregator/BookSummary"):
            await anext(stream_summaries(f"127.0.0.1:{port}", timeout=2))
    finally:
        await server.stop(None)


def test_json_has_null_for_nan() -> None:
    book = MergedBook("ETHBTC", math.nan, (), (MergedLevel("kraken", 0.07, math.inf),), 2**64 - 1, 0, 0)
    line = summary_to_json(_summary(book))
    assert json.loads(line) == {
        "instrument": "ETHBTC",
        "sequence": 2**64 - 1,
        "spread": None,
        "bids": [],
        "asks": [{"exchange": "kraken", "price": 0.07, "amount": None}],
        "venues": [],
    }
    assert "\n" not in line
    assert summary_to_dict(_summary(book))["spread"] is None


def test_table_aligns_decimal_points_and_fills_uneven_sides() -> None:
    bids = (MergedLevel("binance", 65000.12, 0.5), MergedLevel("bitstamp", 64999.5, 12.25))
    asks = (MergedLevel("kraken", 65001.0, 3.0),)
    text = format_summary(_summary(MergedBook("BTCUSD", 0.88, bids, asks, 9, 0, 0)))
    header, _, first, second = text.splitlines()
    assert header == "BTCUSD  seq 9  spread 0.88  (2 bids, 1 asks)"
    assert first.index("65000.12") + 5 == second.index("64999.5") + 5 == first.index(".12")
    assert first.endswith("kraken")
    assert second.rstrip().endswith("12.25")
    assert format_summary(orderbook_pb2.Summary()).splitlines()[-1] == "(empty book)"


def test_venue_states_are_shown_and_in_json() -> None:
    from dragonfly.core.types import VenueState

    states = (
        VenueState("binance", True, 1, 1_700_000_000_000_000_000, 12_000_000, 42),
        VenueState("bitstamp", True, 6, 1_700_000_000_000_000_000, 1_500_000_000, 7),
        VenueState("kraken", False, 4, 1_699_999_990_000_000_000, 6_200_000_000, 0),
        VenueState("okx", False, 2, 0, 0, 0),
    )
    bids = (MergedLevel("binance", 1.0, 1.0),)
    summary = _summary(MergedBook("X", 1.0, bids, bids, 1, 0, 0, venues=states))
    line = format_summary(summary).splitlines()[1]
    assert line == (
        "in merge: binance 12 ms, bitstamp 1.5 s (outlier); out: kraken stale 6.2 s, okx connecting"
    )
    venues = summary_to_dict(summary)["venues"]
    assert venues[0] == {"venue": "binance", "in_merge": True, "status": "live", "age_s": 0.012, "seq": 42}
    assert venues[3] == {"venue": "okx", "in_merge": False, "status": "connecting", "age_s": None, "seq": 0}
    assert [v["status"] for v in venues] == ["live", "outlier", "stale", "connecting"]


def test_numbers_keep_venue_precision() -> None:
    assert format_number(65000.12345678) == "65000.12345678"
    assert format_number(0.06828 - 0.06827, 8) == "1e-05"
    assert format_number(math.nan) == "nan"


@pytest.mark.parametrize(
    ("text", "target"),
    [
        ("127.0.0.1:50051", "127.0.0.1:50051"),
        ("localhost", "localhost:50051"),
        ("[::1]:6000", "[::1]:6000"),
        ("[::1]", "[::1]:50051"),
    ],
)
def test_parse_target(text: str, target: str) -> None:
    assert parse_target(text) == target


@pytest.mark.parametrize("text", ["", "a:b", "host:0", "host:70000", "::1:5", "a b:1"])
def test_parse_target_rejects(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        parse_target(text)


async def _reads_to_catch_up(running: Running, make_book: MakeBook, window_bytes: int | None) -> int:
    """Pause a reader while 200 updates are published; return the reads it then needs to see the last."""
    last = 200
    async with contextlib.aclosing(stream_summaries(running.target, window_bytes=window_bytes)) as summaries:
        running.fanout.publish(encode_summary(make_book(0)))
        assert (await anext(summaries)).sequence == 0
        for sequence in range(1, last + 1):  # paced: the server writes every one it can
            running.fanout.publish(encode_summary(make_book(sequence)))
            await asyncio.sleep(0.002)
        await asyncio.sleep(0.2)  # whatever the window lets through is in this process now
        reads = 0
        async with asyncio.timeout(10):
            async for summary in summaries:
                reads += 1
                if summary.sequence == last:
                    return reads
    raise AssertionError("the stream ended before the last update")


async def test_a_slow_reader_reads_recent_books_with_the_default_window(
    running: Running, make_book: MakeBook
) -> None:
    # ~620-byte updates: 2 KiB in flight, one in the server's write, one queued.
    assert await _reads_to_catch_up(running, make_book, DEFAULT_WINDOW_BYTES) <= 6


async def test_grpcs_own_window_leaves_a_slow_reader_a_backlog(running: Running, make_book: MakeBook) -> None:
    # What the default window is for: grpc's 64 KiB holds ~100 stale updates.
    assert await _reads_to_catch_up(running, make_book, None) >= 50


async def test_window_zero_lets_one_update_through_per_read(running: Running, make_book: MakeBook) -> None:
    assert await _reads_to_catch_up(running, make_book, 0) <= 3


def test_channel_options_fix_the_window() -> None:
    options = dict(channel_options(4096))
    assert options["grpc.http2.lookahead_bytes"] == 4096
    assert options["grpc.http2.bdp_probe"] == 0  # grpc's probing would widen it again
    assert "grpc.http2.lookahead_bytes" not in dict(channel_options(None))
    assert dict(channel_options())["grpc.http2.lookahead_bytes"] == DEFAULT_WINDOW_BYTES


@pytest.mark.parametrize("bad", [-1, 2**31, True, 1.5, "2048"])
def test_channel_options_refuse_a_bad_window(bad: object) -> None:
    with pytest.raises(ValueError, match="window_bytes"):
        channel_options(bad)  # type: ignore[arg-type]


async def test_stream_summaries_refuses_a_bad_window_before_connecting() -> None:
    with pytest.raises(ValueError, match="window_bytes"):
        await anext(stream_summaries(f"127.0.0.1:{free_port()}", window_bytes=-5))


@pytest.mark.parametrize(("text", "value"), [("grpc", None), ("GRPC", None), ("0", 0), ("65536", 65536)])
def test_parse_window(text: str, value: int | None) -> None:
    assert parse_window(text) == value


@pytest.mark.parametrize("text", ["", "-1", "2k", "1e3", str(2**31)])
def test_parse_window_rejects(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        parse_window(text)
