"""GrpcService over real sockets, read with real grpc.aio clients."""

from __future__ import annotations

import asyncio
import re
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import grpc
import grpc.aio
import pytest

from dragonfly.core.fanout import FanOut
from dragonfly.serve import orderbook_pb2, orderbook_pb2_grpc
from dragonfly.serve.encode import encode_summary
from dragonfly.serve.errors import ServeError
from dragonfly.serve.grpc_service import GrpcService

if TYPE_CHECKING:
    from conftest import MakeBook, Running, WaitUntil

ROOT = Path(__file__).resolve().parents[2]
METHOD = "/orderbook.OrderbookAggregator/BookSummary"
# A client that does not read: without BDP probing its window stays at 64 KiB,
# so the server's writes to it block after a few updates.
STALLED_OPTIONS = [("grpc.http2.bdp_probe", 0)]


def _raw_call(channel: grpc.aio.Channel) -> grpc.aio.UnaryStreamCall[bytes, bytes]:
    """Start BookSummary, receiving the messages as the bytes on the wire."""
    method = channel.unary_stream(METHOD, request_serializer=None, response_deserializer=None)
    return method(b"")


async def test_the_generated_stub_reads_published_updates(running: Running, make_book: MakeBook) -> None:
    async with grpc.aio.insecure_channel(running.target) as channel:
        call = orderbook_pb2_grpc.OrderbookAggregatorStub(channel).BookSummary(orderbook_pb2.Empty())
        await call.initial_metadata()  # sent when the stream opens, before any update
        assert running.service.subscribers == 1
        books = [make_book(n) for n in (1, 2)]
        for book in books:
            running.fanout.publish(encode_summary(book))
            summary = await call.read()
            assert isinstance(summary, orderbook_pb2.Summary)
            assert summary.sequence == book.sequence
            assert summary.instrument == "ETHBTC"
            assert [(lv.exchange, lv.price, lv.amount) for lv in summary.bids] == list(book.bids)
            assert summary.spread == book.spread
            assert summary.publish_ns == book.publish_ns


async def test_clients_receive_the_published_bytes_unchanged(running: Running, make_book: MakeBook) -> None:
    async with (
        grpc.aio.insecure_channel(running.target) as one,
        grpc.aio.insecure_channel(running.target) as two,
    ):
        calls = [_raw_call(one), _raw_call(two)]
        for call in calls:
            await call.initial_metadata()
        payloads = [encode_summary(make_book(n)) for n in range(1, 4)]
        for payload in payloads:
            running.fanout.publish(payload)
            assert [await call.read() for call in calls] == [payload, payload]


async def test_a_new_stream_starts_with_the_latest_update(running: Running, make_book: MakeBook) -> None:
    running.fanout.publish(encode_summary(make_book(1)))
    running.fanout.publish(latest := encode_summary(make_book(2)))
    async with grpc.aio.insecure_channel(running.target) as channel:
        assert await _raw_call(channel).read() == latest


async def test_a_stalled_client_does_not_slow_the_others(make_book: MakeBook, wait_until: WaitUntil) -> None:
    fanout: FanOut[bytes] = FanOut()
    # A queue of 16 absorbs the odd scheduling hiccup of a loaded test machine,
    # so the reading client must get every update; the stalled one cannot.
    service = GrpcService(fanout, "127.0.0.1", 0, queue_len=16)
    target = f"127.0.0.1:{await service.start()}"
    stalled_channel = grpc.aio.insecure_channel(target, options=STALLED_OPTIONS)
    stalled = _raw_call(stalled_channel)
    await stalled.initial_metadata()  # open, and then never read
    try:
        async with grpc.aio.insecure_channel(target) as channel:
            reader = _raw_call(channel)
            await reader.initial_metadata()
            received: list[int] = []

            async def read() -> None:
                async for payload in reader:
                    assert isinstance(payload, bytes)
                    received.append(orderbook_pb2.Summary.FromString(payload).sequence)

            task = asyncio.create_task(read())
            # 300 updates of 4 kB in 0.6 s: far beyond the stalled stream's window.
            count, period = 300, 0.002
            late = 0.0
            started = time.perf_counter()
            for sequence in range(1, count + 1):
                fanout.publish(encode_summary(make_book(sequence, depth=50)))
                due = started + sequence * period
                await asyncio.sleep(max(due - time.perf_counter(), 0))
                late = max(late, time.perf_counter() - due)
            await wait_until(lambda: len(received) == count or task.done())
            assert received == list(range(1, count + 1))  # every update, in order
            assert late < 0.1  # the loop kept its pace
            slow, fast = sorted(service.stream_stats(), key=lambda stats: stats.delivered)
            assert fast.delivered == count
            assert fast.dropped == 0
            assert slow.delivered < count // 2  # its writes blocked on flow control
            assert slow.dropped > count // 2  # and its queue conflated
            task.cancel()
    finally:
        await stalled_channel.close(None)
        await service.stop(grace=0.2)


async def test_a_client_that_goes_away_is_unsubscribed(running: Running, wait_until: WaitUntil) -> None:
    channel = grpc.aio.insecure_channel(running.target)
    call = _raw_call(channel)
    await call.initial_metadata()
    kept = grpc.aio.insecure_channel(running.target)
    await _raw_call(kept).initial_metadata()
    assert running.service.subscribers == 2
    assert len(running.fanout) == 2
    await channel.close(None)  # the connection goes: the RPC is cancelled
    await wait_until(lambda: running.service.subscribers == 1 and len(running.fanout) == 1)
    await kept.close(None)
    await wait_until(lambda: running.service.subscribers == 0 and len(running.fanout) == 0)


async def test_a_cancelled_stream_is_unsubscribed(running: Running, wait_until: WaitUntil) -> None:
    async with grpc.aio.insecure_channel(running.target) as channel:
        call = _raw_call(channel)
        await call.initial_metadata()
        call.cancel()
        await wait_until(lambda: running.service.subscribers == 0 and len(running.fanout) == 0)


async def test_stop_ends_streams_with_ok(make_book: MakeBook) -> None:
    fanout: FanOut[bytes] = FanOut()
    service = GrpcService(fanout, "127.0.0.1", 0)
    port = await service.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        call = _raw_call(channel)
        fanout.publish(payload := encode_summary(make_book(1)))
        assert await call.read() == payload
        await service.stop()
        assert not isinstance(await call.read(), bytes)  # grpc.aio.EOF: the stream ended
        assert await call.code() == grpc.StatusCode.OK
    assert service.subscribers == 0
    assert len(fanout) == 0
    await service.stop()  # idempotent


async def test_closing_the_fanout_ends_streams_with_ok(
    running: Running, make_book: MakeBook, wait_until: WaitUntil
) -> None:
    async with grpc.aio.insecure_channel(running.target) as channel:
        call = _raw_call(channel)
        await call.initial_metadata()
        running.fanout.publish(payload := encode_summary(make_book(1)))
        running.fanout.close()
        assert [message async for message in call] == [payload]
        assert await call.code() == grpc.StatusCode.OK
        await wait_until(lambda: running.service.subscribers == 0)


async def test_send_ns_is_stamped_on_request(make_book: MakeBook) -> None:
    fanout: FanOut[bytes] = FanOut()
    service = GrpcService(fanout, "127.0.0.1", 0, stamp_send_ns=True)
    port = await service.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            call = orderbook_pb2_grpc.OrderbookAggregatorStub(channel).BookSummary(orderbook_pb2.Empty())
            await call.initial_metadata()
            book = make_book(1)
            fanout.publish(encode_summary(book))
            summary = await call.read()
            assert isinstance(summary, orderbook_pb2.Summary)
            assert book.publish_ns <= summary.send_ns <= time.time_ns()
            assert summary.sequence == 1
    finally:
        await service.stop()


async def test_a_port_in_use_is_a_serve_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        service = GrpcService(FanOut(), "127.0.0.1", port)
        message = f"cannot listen on 127.0.0.1:{port}: address already in use"
        with pytest.raises(ServeError, match=f"^{re.escape(message)}$"):
            await service.start()


async def test_two_services_cannot_share_a_port(running: Running) -> None:
    # grpc would allow it with SO_REUSEPORT, splitting the clients between them.
    with pytest.raises(ServeError, match="address already in use"):
        await GrpcService(FanOut(), "127.0.0.1", running.port).start()


def test_serves_under_uvloop() -> None:
    script = """
import asyncio, uvloop, grpc.aio
from dragonfly.core.fanout import FanOut
from dragonfly.serve.grpc_service import GrpcService

async def main():
    assert isinstance(asyncio.get_running_loop(), uvloop.Loop)
    fanout = FanOut()
    service = GrpcService(fanout, "127.0.0.1", 0)
    port = await service.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        call = channel.unary_stream("/orderbook.OrderbookAggregator/BookSummary")(b"")
        for n in range(3):
            fanout.publish(b"\\x28" + bytes([n + 1]))
            assert await call.read() == b"\\x28" + bytes([n + 1])
        await service.stop()
        assert await call.code() == grpc.StatusCode.OK
    print("ok")

uvloop.run(main())
"""
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=30, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
