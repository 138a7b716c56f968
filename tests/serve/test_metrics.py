"""Prometheus metrics of a real server on the simulator, scraped as Prometheus does."""

from __future__ import annotations

import asyncio
import urllib.request

import grpc
from prometheus_client.parser import text_string_to_metric_families

from dragonfly.serve import orderbook_pb2, orderbook_pb2_grpc
from dragonfly.sim import Simulator

from .test_probes import config, free_port, serving, stopped


def scrape(port: int) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
        text = answer.read().decode()
    out: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return out


async def test_metrics_read_the_counters_at_scrape_time() -> None:
    async with Simulator(["binance", "bitstamp"], ["ethbtc", "btcusdt"], period_s=0.02) as sim:
        port = free_port()
        cfg = config(sim, "--metrics-port", str(port))
        task = await serving(cfg)
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{cfg.port}") as channel:
                stub = orderbook_pb2_grpc.OrderbookAggregatorStub(channel)
                stream = stub.BookSummary(orderbook_pb2.Empty())
                await asyncio.wait_for(stream.read(), 10)
                first = await asyncio.to_thread(scrape, port)
                await asyncio.sleep(0.3)
                second = await asyncio.to_thread(scrape, port)
                stream.cancel()
            for venue in ("binance", "bitstamp"):
                key = (("connection", "0"), ("venue", venue))
                assert first["dragonfly_venue_frames_total"][key] > 0
                frames = "dragonfly_venue_frames_total"
                assert second[frames][key] > first[frames][key]  # read at each scrape
                assert second["dragonfly_venue_received_bytes_total"][key] > 100 * second[frames][key] > 0
                assert second["dragonfly_venue_connected"][key] == 1
                assert second["dragonfly_venue_connects_total"][key] == 1
                for instrument in ("ethbtc", "btcusdt"):
                    book = (("instrument", instrument), ("venue", venue))
                    assert second["dragonfly_book_in_merge"][book] == 1
                    assert 0 <= second["dragonfly_book_data_age_seconds"][book] < 5
                    assert second["dragonfly_book_status"][(*book[:1], ("status", "live"), book[1])] == 1
            views = second["dragonfly_aggregator_updates_total"]
            seed = (("aggregator", "book"), ("instrument", "ethbtc"), ("kind", "book"))
            assert views[seed] > 0
            (streams,) = second["dragonfly_service_streams"].values()
            assert streams == 1
            (delivered,) = second["dragonfly_service_updates_delivered_total"].values()
            assert delivered >= 1
            assert second["dragonfly_tick_to_queue_seconds_count"][seed] > 0
            inf = (*seed[:2], ("kind", "book"), ("le", "+Inf"))
            assert second["dragonfly_tick_to_queue_seconds_bucket"][tuple(sorted(inf))] == (
                second["dragonfly_tick_to_queue_seconds_count"][seed]
            )
            # A venue withdrawn shows at the next scrape.
            sim.pause("binance")
            await sim.drop_clients("binance")
            book = (("instrument", "ethbtc"), ("venue", "binance"))
            for _ in range(50):
                third = await asyncio.to_thread(scrape, port)
                if third["dragonfly_book_in_merge"][book] == 0:
                    break
                await asyncio.sleep(0.1)
            assert third["dragonfly_book_in_merge"][book] == 0
            assert third["dragonfly_book_status"].get((*book[:1], ("status", "live"), book[1])) is None
            binance = (("connection", "0"), ("venue", "binance"))
            assert third["dragonfly_venue_disconnects_total"][binance] >= 1
        finally:
            await stopped(task)
        # Nothing listens on the metrics port once the server stopped.
        try:
            await asyncio.to_thread(scrape, port)
        except OSError:
            pass
        else:
            raise AssertionError("the metrics port still answers after the server stopped")
