"""Health checking and reflection on a real server over the simulator, as operators' tools see them."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from google.protobuf.descriptor_pool import DescriptorPool
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

from dragonfly.serve.config import ServeConfig, parse_config
from dragonfly.serve.server import run_server
from dragonfly.sim import Simulator
from latency.ports import free_port

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator(["binance", "bitstamp"], ["ethbtc", "btcusdt"], period_s=0.02) as simulator:
        yield simulator


async def serving(cfg: ServeConfig) -> asyncio.Task[int]:
    ready = asyncio.Event()
    task = asyncio.create_task(run_server(cfg, ready))
    await asyncio.wait_for(ready.wait(), 60)
    return task


async def stopped(task: asyncio.Task[int]) -> None:
    if not task.done():
        os.kill(os.getpid(), signal.SIGTERM)  # run_server's own handler stops it
    assert await asyncio.wait_for(task, 30) == 0


def config(sim: Simulator, *extra: str) -> ServeConfig:
    return parse_config(
        [
            "ethbtc",
            "btcusdt",
            "--port",
            str(free_port()),
            *(f"--endpoint={v}={sim.ws_url(v)}" for v in sim.venues),
            *(f"--rest-endpoint={v}={sim.rest_url(v)}" for v in sim.venues),
            *extra,
        ],
        environ={},
    )


async def status(stub: health_pb2_grpc.HealthStub, service: str) -> int:
    answer = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
    return int(answer.status)


async def eventually(stub: health_pb2_grpc.HealthStub, service: str, want: int, timeout: float = 10) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while (got := await status(stub, service)) != want:
        assert asyncio.get_running_loop().time() < deadline, f"{service!r} stayed {got}, want {want}"
        await asyncio.sleep(0.1)


async def test_health_follows_whether_books_flow(sim: Simulator) -> None:
    cfg = config(sim)
    task = await serving(cfg)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{cfg.port}") as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            for service in (
                "",
                "orderbook.OrderbookAggregator",
                "dragonfly.v1.MarketData",
                "ethbtc",
                "btcusdt",
            ):
                await eventually(stub, service, SERVING)
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await status(stub, "solusdt")
            assert err.value.code() is grpc.StatusCode.NOT_FOUND
            # Every venue gone: no instrument has a book in the merge.
            for venue in sim.venues:
                sim.pause(venue)
                await sim.drop_clients(venue)
            for service in ("", "orderbook.OrderbookAggregator", "ethbtc", "btcusdt"):
                await eventually(stub, service, NOT_SERVING)
            for venue in sim.venues:
                sim.resume(venue)
            await eventually(stub, "orderbook.OrderbookAggregator", SERVING, timeout=20)
    finally:
        await stopped(task)


async def test_probes_need_no_token_and_reflection_describes_both_apis(
    sim: Simulator, tmp_path: Path
) -> None:
    token = tmp_path / "token"
    token.write_text("a-long-enough-bearer-token-for-this-test\n")
    cfg = config(sim, "--token-file", str(token))
    task = await serving(cfg)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{cfg.port}") as channel:
            await eventually(health_pb2_grpc.HealthStub(channel), "", SERVING)

        def reflect() -> tuple[set[str], list[str]]:
            with grpc.insecure_channel(f"127.0.0.1:{cfg.port}") as sync_channel:
                database = ProtoReflectionDescriptorDatabase(sync_channel)
                pool = DescriptorPool(database)
                method = pool.FindServiceByName("dragonfly.v1.MarketData").FindMethodByName("Subscribe")
                fields = [f.name for f in method.input_type.fields]
                return set(database.get_services()), fields

        services, fields = await asyncio.to_thread(reflect)
        assert {
            "orderbook.OrderbookAggregator",
            "dragonfly.v1.MarketData",
            "grpc.health.v1.Health",
        } <= services
        assert fields == ["instruments", "kind", "depth", "venues"]
    finally:
        await stopped(task)
