"""The locked-down GrpcService over real sockets, with real grpc.aio clients.

TLS, the bearer token, the stream caps (and hammering them), the write
timeout, keepalive against a peer that vanished, quiet logs when clients go
away, and the loopback default with its warning.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import struct
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import grpc.aio
import pytest

from dragonfly.client.stream import (
    DEFAULT_WINDOW_BYTES,
    ResourceExhaustedError,
    ServerUnreachableError,
    TlsError,
    UnauthenticatedError,
    channel_options,
    stream_summaries,
)
from dragonfly.core.fanout import FanOut, Subscription
from dragonfly.serve.config import parse_config
from dragonfly.serve.errors import ServeError
from dragonfly.serve.grpc_service import (
    DEFAULT_HOST,
    GrpcService,
    Limits,
    TlsKeyPair,
    is_loopback,
    load_tls_key_pair,
)
from dragonfly.sim.tls import make_self_signed

METHOD = "/orderbook.OrderbookAggregator/BookSummary"
TOKEN = "s3cret-Token_1"
# A client that does not read: without BDP probing its window stays at 64 KiB.
STALLED_OPTIONS = (("grpc.http2.bdp_probe", 0),)


class CountingFanOut(FanOut[bytes]):
    """A FanOut that counts subscriptions ever made."""

    def __init__(self) -> None:
        super().__init__()
        self.subscribed = 0

    def subscribe(self, maxlen: int | None = None, max_lag_ns: int | None = None) -> Subscription[bytes]:
        self.subscribed += 1
        return super().subscribe(maxlen, max_lag_ns)


@dataclass
class Served:
    fanout: CountingFanOut
    service: GrpcService
    target: str


@contextlib.asynccontextmanager
async def serving(host: str = "127.0.0.1", **kwargs: Any) -> AsyncIterator[Served]:
    """Run a GrpcService on a free port of ``host``; stop it afterwards."""
    fanout = CountingFanOut()
    service = GrpcService(fanout, host, 0, **kwargs)
    port = await service.start()
    try:
        yield Served(fanout, service, f"127.0.0.1:{port}")
    finally:
        await service.stop(grace=0.2)


def raw_call(
    channel: grpc.aio.Channel, token: str | None = None, header: str | None = None
) -> grpc.aio.UnaryStreamCall[bytes, bytes]:
    """Start BookSummary with the messages as bytes; send ``Bearer token`` (or ``header``) if given."""
    if header is None and token is not None:
        header = f"Bearer {token}"
    metadata = None if header is None else (("authorization", header),)
    method = channel.unary_stream(METHOD, request_serializer=None, response_deserializer=None)
    return method(b"", metadata=metadata)


async def ended(call: grpc.aio.UnaryStreamCall[bytes, bytes]) -> tuple[grpc.StatusCode, str]:
    """Wait for ``call`` to end without reading it; return its status and details."""
    async with asyncio.timeout(5):
        return await call.code(), await call.details() or ""


async def wait_until(condition: Any, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Path]]:
    """Two unrelated self-signed key pairs for loopback: ``main`` and ``other``."""
    base = tmp_path_factory.mktemp("lockdown-certs")
    return {
        "main": make_self_signed(base / "main"),
        "other": make_self_signed(base / "other", common_name="other"),
    }


@pytest.fixture
def tls_pair(certs: dict[str, tuple[Path, Path]]) -> TlsKeyPair:
    cert, key = certs["main"]
    return load_tls_key_pair(str(cert), str(key))


def secure_channel(ca: Path, *options: tuple[str, Any]) -> Any:
    """Return a factory of TLS channels to a target that trust only ``ca``."""
    credentials = grpc.ssl_channel_credentials(ca.read_bytes())
    return lambda target: grpc.aio.secure_channel(target, credentials, options=options)


# --- TLS ------------------------------------------------------------------------------------


async def test_tls_serves_clients_that_trust_the_certificate(
    certs: dict[str, tuple[Path, Path]], tls_pair: TlsKeyPair
) -> None:
    async with serving(tls=tls_pair) as served:
        async with secure_channel(certs["main"][0])(served.target) as channel:
            call = raw_call(channel)
            await call.initial_metadata()
            served.fanout.publish(b"\x28\x07")
            assert await call.read() == b"\x28\x07"
        summaries = stream_summaries(served.target, ca_file=str(certs["main"][0]), timeout=2)
        async with contextlib.aclosing(summaries) as stream:
            assert (await anext(stream)).sequence == 7


async def test_tls_refuses_plaintext_and_clients_that_do_not_trust_it(
    certs: dict[str, tuple[Path, Path]], tls_pair: TlsKeyPair
) -> None:
    async with serving(tls=tls_pair) as served:
        async with grpc.aio.insecure_channel(served.target) as channel:
            code, _ = await ended(raw_call(channel))
            assert code == grpc.StatusCode.UNAVAILABLE
        assert served.fanout.subscribed == 0
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(TlsError) as untrusted:
            await anext(stream_summaries(served.target, ca_file=str(certs["other"][0]), timeout=5))
        assert loop.time() - started < 2  # not retried until the timeout: it would fail again
        assert str(untrusted.value) == (
            f"TLS handshake with {served.target} failed: certificate verify failed: self signed certificate"
        )
        with pytest.raises(TlsError, match="does not name the host"):
            await anext(
                stream_summaries(
                    served.target, ca_file=str(certs["main"][0]), server_name="example.com", timeout=5
                )
            )
        with pytest.raises(ServerUnreachableError, match=r"socket closed; does the server require TLS\?"):
            await anext(stream_summaries(served.target, timeout=0.3))


async def test_a_tls_client_of_a_plaintext_server_is_told_so(certs: dict[str, tuple[Path, Path]]) -> None:
    async with serving() as served:
        with pytest.raises(
            TlsError, match=r"failed: the server does not speak TLS \(wrong version number\)$"
        ):
            await anext(stream_summaries(served.target, ca_file=str(certs["main"][0]), timeout=5))


async def test_set_tls_presents_a_new_certificate_to_new_connections(
    certs: dict[str, tuple[Path, Path]], tls_pair: TlsKeyPair
) -> None:
    other = load_tls_key_pair(*(str(path) for path in certs["other"]))
    async with serving(tls=tls_pair) as served:
        old_channel = secure_channel(certs["main"][0])(served.target)
        kept = raw_call(old_channel)
        await kept.initial_metadata()
        assert served.service.set_tls(tls_pair) is False  # the same pair: nothing to do
        assert served.service.set_tls(other) is True
        assert served.service.tls == other
        with pytest.raises(TlsError):
            await anext(stream_summaries(served.target, ca_file=str(certs["main"][0]), timeout=2))
        async with secure_channel(certs["other"][0])(served.target) as channel:
            call = raw_call(channel)
            await call.initial_metadata()
            served.fanout.publish(b"\x28\x01")
            assert await call.read() == b"\x28\x01"
            assert await kept.read() == b"\x28\x01"  # the open connection kept its certificate
        await old_channel.close(None)


async def test_set_tls_needs_a_tls_service(tls_pair: TlsKeyPair) -> None:
    with pytest.raises(RuntimeError, match="plaintext"):
        GrpcService(FanOut()).set_tls(tls_pair)


def _problem(cert: str, key: str) -> str:
    with pytest.raises(ServeError) as raised:
        load_tls_key_pair(cert, key)
    return str(raised.value)


def test_tls_key_pair_problems_are_one_line(certs: dict[str, tuple[Path, Path]], tmp_path: Path) -> None:
    cert, key = (str(path) for path in certs["main"])
    other_key = str(certs["other"][1])
    assert _problem(cert, other_key) == (
        f"cannot use TLS certificate {cert} with key {other_key}: the key does not match the certificate"
    )
    missing = str(tmp_path / "nothing.pem")
    assert _problem(cert, missing) == f"cannot read {missing}: No such file or directory"
    text = tmp_path / "text.pem"
    text.write_text("hello\n")
    assert _problem(str(text), key) == f"{text} holds no PEM certificate"
    assert _problem(cert, str(text)) == f"{text} holds no PEM private key"
    pair = load_tls_key_pair(cert, key)
    assert len(pair.fingerprint) == 64


# --- the bearer token -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "details"),
    [
        (None, "this server requires a bearer token: send 'authorization: Bearer <token>' metadata"),
        ("Bearer wrong", "invalid bearer token"),
        (f"Bearer {TOKEN}x", "invalid bearer token"),
        (f"Basic {TOKEN}", "invalid bearer token"),
        (TOKEN, "invalid bearer token"),
    ],
)
async def test_a_call_without_the_right_token_is_refused_before_subscribing(
    header: str | None, details: str
) -> None:
    async with serving(token=TOKEN) as served, grpc.aio.insecure_channel(served.target) as channel:
        assert await ended(raw_call(channel, header=header)) == (grpc.StatusCode.UNAUTHENTICATED, details)
        assert served.fanout.subscribed == 0
        assert served.service.subscribers == 0


@pytest.mark.parametrize("scheme", ["Bearer", "bearer"])
async def test_the_right_token_streams(scheme: str) -> None:
    async with serving(token=TOKEN) as served, grpc.aio.insecure_channel(served.target) as channel:
        call = raw_call(channel, header=f"{scheme} {TOKEN}")
        await call.initial_metadata()
        served.fanout.publish(b"\x28\x01")
        assert await call.read() == b"\x28\x01"


async def test_stream_summaries_sends_the_token_and_reports_a_refusal_in_one_line() -> None:
    async with serving(token=TOKEN) as served:
        served.fanout.publish(b"\x28\x05")
        async with contextlib.aclosing(stream_summaries(served.target, token=TOKEN, timeout=2)) as stream:
            assert (await anext(stream)).sequence == 5
        with pytest.raises(UnauthenticatedError) as refused:
            await anext(stream_summaries(served.target, token="nope", timeout=2))
        assert str(refused.value) == (
            f"server at {served.target} refused the stream: unauthenticated: invalid bearer token"
        )
        with pytest.raises(UnauthenticatedError, match="requires a bearer token"):
            await anext(stream_summaries(served.target, timeout=2))


async def test_set_token_applies_to_new_calls_only() -> None:
    async with serving(token=TOKEN) as served, grpc.aio.insecure_channel(served.target) as channel:
        open_call = raw_call(channel, TOKEN)
        await open_call.initial_metadata()
        assert served.service.set_token(TOKEN) is False
        assert served.service.set_token("n3w") is True
        assert (await ended(raw_call(channel, TOKEN)))[0] == grpc.StatusCode.UNAUTHENTICATED
        fresh = raw_call(channel, "n3w")
        await fresh.initial_metadata()
        served.fanout.publish(b"\x28\x02")
        assert [await open_call.read(), await fresh.read()] == [b"\x28\x02", b"\x28\x02"]
        with pytest.raises(ServeError, match="empty"):
            served.service.set_token("  ")


# --- stream caps ----------------------------------------------------------------------------


async def test_streams_beyond_the_per_connection_cap_are_refused() -> None:
    limits = Limits(max_streams_per_connection=3)
    async with (
        serving(limits=limits) as served,
        grpc.aio.insecure_channel(served.target) as one,
        grpc.aio.insecure_channel(served.target, options=(("grpc.use_local_subchannel_pool", 1),)) as two,
    ):
        calls = [raw_call(one) for _ in range(5)]
        await wait_until(lambda: sum(call.done() for call in calls) == 2 and served.service.subscribers == 3)
        refused = [await ended(call) for call in calls if call.done()]
        message = "this connection already has 3 streams open, the server's limit per connection"
        assert refused == [(grpc.StatusCode.RESOURCE_EXHAUSTED, message)] * 2
        assert served.fanout.subscribed == 3
        others = [raw_call(two) for _ in range(3)]  # another connection has its own 3
        for call in others:
            await call.initial_metadata()
        assert served.service.subscribers == 6
        next(call for call in calls if not call.done()).cancel()
        await wait_until(lambda: served.service.subscribers == 5)
        again = raw_call(one)  # a place is free again on the first connection
        await again.initial_metadata()
        served.fanout.publish(b"\x28\x03")
        assert await again.read() == b"\x28\x03"


async def test_streams_beyond_the_total_cap_are_refused() -> None:
    async with serving(limits=Limits(max_streams=2)) as served:
        channels = [
            grpc.aio.insecure_channel(served.target, options=(("grpc.use_local_subchannel_pool", 1),))
            for _ in range(3)
        ]
        try:
            first, second = raw_call(channels[0]), raw_call(channels[1])
            await first.initial_metadata()
            await second.initial_metadata()
            message = "the server is at its limit of 2 streams; try again later"
            assert await ended(raw_call(channels[2])) == (grpc.StatusCode.RESOURCE_EXHAUSTED, message)
            with pytest.raises(ResourceExhaustedError) as refused:
                await anext(stream_summaries(served.target, timeout=2))
            assert str(refused.value) == (
                f"server at {served.target} refused the stream: resource_exhausted: {message}"
            )
            first.cancel()
            await wait_until(lambda: served.service.subscribers == 1)
            third = raw_call(channels[2])
            await third.initial_metadata()
            assert served.service.subscribers == 2
        finally:
            for channel in channels:
                await channel.close(None)


# Fills its connection's cap (CAP streams, kept open), then opens streams on
# the same connection as fast as grpc lets it for DURATION seconds, and
# prints how they ended as JSON.
HAMMER = """
import asyncio, collections, json, sys, time
import grpc.aio

async def main(target, cap, duration):
    counts = collections.Counter()
    async with grpc.aio.insecure_channel(target) as channel:
        method = channel.unary_stream("/orderbook.OrderbookAggregator/BookSummary")
        kept = [method(b"") for _ in range(cap)]
        for call in kept:
            await call.initial_metadata()
        end = time.monotonic() + duration
        while time.monotonic() < end:
            calls = [method(b"") for _ in range(500)]
            for code in await asyncio.gather(*(call.code() for call in calls)):
                counts[code.name] += 1
            if len(counts) and sum(counts.values()) == 500:
                print("hammering", flush=True)
        for call in kept:
            call.cancel()
    print(json.dumps(counts), flush=True)

asyncio.run(main(sys.argv[1], int(sys.argv[2]), float(sys.argv[3])))
"""


async def test_hammering_the_caps_does_not_delay_other_subscribers() -> None:
    limits = Limits(max_streams_per_connection=4)
    async with (
        serving(limits=limits, queue_len=64) as served,
        grpc.aio.insecure_channel(served.target) as channel,
    ):
        reader = raw_call(channel)
        await reader.initial_metadata()
        hammer = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            HAMMER,
            served.target,
            str(limits.max_streams_per_connection),
            "3.5",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        assert hammer.stdout is not None
        try:
            async with asyncio.timeout(20):
                assert await hammer.stdout.readline() == b"hammering\n"
            # 600 updates in 3 s, each stamped with when it was published.
            count, period = 600, 0.005
            delays: list[float] = []

            async def read() -> None:
                while len(delays) < count:
                    payload = await reader.read()
                    assert isinstance(payload, bytes)
                    sequence, sent = struct.unpack("<qd", payload)
                    assert sequence == len(delays) + 1  # every update, in order
                    delays.append(time.perf_counter() - sent)

            reading = asyncio.create_task(read())
            started = time.perf_counter()
            for sequence in range(1, count + 1):
                served.fanout.publish(struct.pack("<qd", sequence, time.perf_counter()))
                await asyncio.sleep(max(started + sequence * period - time.perf_counter(), 0))
            async with asyncio.timeout(5):
                await reading
            async with asyncio.timeout(20):
                out, _ = await hammer.communicate()
        finally:
            if hammer.returncode is None:
                hammer.kill()
                await hammer.wait()
    codes = json.loads(out.decode().strip().splitlines()[-1])
    delays.sort()
    p50, p99, worst = delays[len(delays) // 2], delays[int(len(delays) * 0.99)], delays[-1]
    print(
        f"\ncap hammering: {codes}; other subscriber: {len(delays)} updates, "
        f"delay p50 {p50 * 1e3:.2f} ms, p99 {p99 * 1e3:.2f} ms, max {worst * 1e3:.2f} ms"
    )
    assert codes.get("RESOURCE_EXHAUSTED", 0) >= 1000  # it really hammered, and was refused
    assert p99 < 0.02
    assert worst < 0.1


def test_limits_are_enforced_by_grpc_too() -> None:
    options = dict(Limits(max_streams_per_connection=8).server_options())
    # Beyond its cap a connection gets a few quick refusals in flight, no more.
    assert options["grpc.max_concurrent_streams"] == 16
    assert options["grpc.server_handshake_timeout_ms"] == 5000
    assert options["grpc.http2.ping_timeout_ms"] == options["grpc.keepalive_timeout_ms"] == 10_000
    assert options["grpc.so_reuseport"] == 0
    with pytest.raises(ValueError, match="max_streams must be >= 1"):
        Limits(max_streams=0)
    with pytest.raises(ValueError, match="write_timeout must be > 0"):
        Limits(write_timeout=float("nan"))


# --- the write timeout ----------------------------------------------------------------------


async def test_a_client_that_stops_reading_is_ended_after_the_write_timeout() -> None:
    async with (
        serving(limits=Limits(write_timeout=0.5)) as served,
        grpc.aio.insecure_channel(served.target, options=STALLED_OPTIONS) as channel,
    ):
        stalled = raw_call(channel)
        await stalled.initial_metadata()
        loop = asyncio.get_running_loop()
        started = loop.time()
        while len(served.fanout) and loop.time() - started < 5:  # 4 kB every 10 ms
            served.fanout.publish(b"\x28" + bytes(4000))
            await asyncio.sleep(0.01)
        released = loop.time() - started
        # ~0.15 s to fill the 64 KiB window, then the timeout, then at most a tick.
        assert 0.5 <= released < 1.2
        # The status waits behind the updates the client has not read.
        assert served.service.subscribers == 1
        messages = 0
        with pytest.raises(grpc.aio.AioRpcError) as ended_with:
            async for _ in stalled:
                messages += 1
        assert ended_with.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert ended_with.value.details() == "client not reading for 0.5 s"
        assert messages > 10
        await wait_until(lambda: served.service.subscribers == 0)


async def test_a_slow_reader_is_not_ended() -> None:
    # dragonfly.client's window: the server writes a few updates ahead of each read.
    options = channel_options(DEFAULT_WINDOW_BYTES)
    async with (
        serving(limits=Limits(write_timeout=0.3)) as served,
        grpc.aio.insecure_channel(served.target, options=options) as channel,
    ):
        slow = raw_call(channel)
        await slow.initial_metadata()

        async def publish() -> None:
            while True:  # 600 bytes every 2 ms: far faster than it reads
                served.fanout.publish(b"\x28" + bytes(600))
                await asyncio.sleep(0.002)

        publishing = asyncio.create_task(publish())
        try:
            for _ in range(60):  # one read every 20 ms for 1.2 s: four timeouts
                assert isinstance(await slow.read(), bytes)
                await asyncio.sleep(0.02)
        finally:
            publishing.cancel()
        assert not slow.done()
        assert served.service.subscribers == 1


# --- clients that go away -------------------------------------------------------------------

# Opens N streams that never read, says so, and waits to be killed.
STALLED = """
import asyncio, sys, grpc.aio
async def main(target, n):
    channel = grpc.aio.insecure_channel(target, options=[("grpc.http2.bdp_probe", 0)])
    calls = [channel.unary_stream("/orderbook.OrderbookAggregator/BookSummary")(b"") for _ in range(n)]
    for call in calls:
        await call.initial_metadata()
    print("open", flush=True)
    await asyncio.sleep(60)
asyncio.run(main(sys.argv[1], int(sys.argv[2])))
"""


async def test_clients_that_vanish_leave_no_error_in_the_log(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    async with serving(limits=Limits(write_timeout=0.3)) as served:

        async def publish() -> None:
            while True:  # 4 kB every 2 ms: every stream that does not read is stuck in a write
                served.fanout.publish(b"\x28" + bytes(4000))
                await asyncio.sleep(0.002)

        publishing = asyncio.create_task(publish())
        try:
            # A process with stalled streams is killed.
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-c", STALLED, served.target, "3", stdout=asyncio.subprocess.PIPE
            )
            assert process.stdout is not None
            async with asyncio.timeout(20):
                assert await process.stdout.readline() == b"open\n"
            await asyncio.sleep(0.2)
            process.kill()
            await process.wait()
            await wait_until(lambda: served.service.subscribers == 0)
            for how in ("close", "cancel", "timed out, then close"):
                channel = grpc.aio.insecure_channel(served.target, options=STALLED_OPTIONS)
                calls = [raw_call(channel) for _ in range(3)]
                for call in calls:
                    await call.initial_metadata()
                await asyncio.sleep(0.8 if how.startswith("timed out") else 0.2)
                if how == "cancel":
                    for call in calls:
                        call.cancel()
                    await wait_until(lambda: served.service.subscribers == 0)
                await channel.close(None)
                await wait_until(lambda: served.service.subscribers == 0)
        finally:
            publishing.cancel()
    loud = [record for record in caplog.records if record.levelno >= logging.WARNING or record.exc_info]
    assert loud == []
    assert "Traceback" not in caplog.text
    assert "client not reading for 0.3s" in caplog.text  # the timed-out streams did time out


class FreezingProxy:
    """Forward TCP both ways until frozen; then swallow everything: a peer that vanished.

    Bytes still arrive and are acknowledged by TCP (as a dead host's NAT or
    load balancer would), but no HTTP/2 frame, so no ping ack, gets through.
    """

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.frozen = False
        self.upstream_closed = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return int(self._server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        self._server.close()
        for task in self._tasks:
            task.cancel()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)

        async def pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter, upstream: bool) -> None:
            while data := await source.read(65536):
                if not self.frozen:
                    sink.write(data)
            if upstream:
                self.upstream_closed.set()

        for args in ((reader, up_writer, False), (up_reader, writer, True)):
            task = asyncio.create_task(pump(*args))
            self._tasks.add(task)


async def test_a_peer_that_vanished_is_released_by_keepalive(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    limits = Limits(keepalive_time=0.3, keepalive_timeout=0.3)
    async with serving(limits=limits) as served:
        proxy = FreezingProxy(int(served.target.rpartition(":")[2]))
        port = await proxy.start()
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                call = raw_call(channel)
                await call.initial_metadata()
                served.fanout.publish(b"\x28\x01")
                assert await call.read() == b"\x28\x01"
                await asyncio.sleep(1.0)  # a quiet stream: pings answered, nothing else
                assert served.service.subscribers == 1
                proxy.frozen = True
                loop = asyncio.get_running_loop()
                frozen_at = loop.time()
                await wait_until(lambda: served.service.subscribers == 0, timeout=3)
                async with asyncio.timeout(3):
                    await proxy.upstream_closed.wait()  # the server closed its socket
                assert loop.time() - frozen_at < 2
                call.cancel()
        finally:
            await proxy.close()
    assert [record for record in caplog.records if record.levelno >= logging.WARNING] == []


# --- bind address ---------------------------------------------------------------------------


def test_the_default_bind_is_loopback() -> None:
    assert DEFAULT_HOST == "127.0.0.1"
    assert parse_config(["ethbtc"], environ={}).host == "127.0.0.1"


async def test_the_service_listens_on_loopback_by_default(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    service = GrpcService(FanOut(), port=0)
    port = await service.start()
    try:
        assert f"on 127.0.0.1:{port} (plaintext, no token;" in caplog.text
        assert not [record for record in caplog.records if record.levelno >= logging.WARNING]
    finally:
        await service.stop()


@pytest.mark.parametrize(
    ("tls", "token", "missing"),
    [
        (False, False, "without TLS and without a token: anyone who can reach it can subscribe (see"),
        (True, False, "without a token: anyone who can reach it can subscribe (see"),
        (False, True, "without TLS: anyone who can reach it can subscribe, and read the token on the wire"),
        (True, True, None),
    ],
)
async def test_serving_beyond_loopback_without_tls_or_token_warns_once(
    caplog: pytest.LogCaptureFixture, tls_pair: TlsKeyPair, tls: bool, token: bool, missing: str | None
) -> None:
    caplog.set_level(logging.INFO)
    kwargs = {"tls": tls_pair if tls else None, "token": TOKEN if token else None}
    async with serving("0.0.0.0", **kwargs):
        pass
    warnings = [record.getMessage() for record in caplog.records if record.levelno >= logging.WARNING]
    if missing is None:
        assert warnings == []
    else:
        assert len(warnings) == 1
        assert warnings[0].startswith("0.0.0.0:") and "is not a loopback address" in warnings[0]
        assert missing in warnings[0]


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.0.2", True),
        ("localhost", True),
        ("::1", True),
        ("[::1]", True),
        ("0.0.0.0", False),
        ("::", False),
        ("", False),
        ("192.0.2.1", False),
        ("no-such-host.invalid", False),
    ],
)
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback
