"""Topology files: every example starts, flags override the file, bad files get one clear line."""

from __future__ import annotations

import asyncio
import dataclasses
import subprocess
import sys
from pathlib import Path

import grpc
import pytest

from dragonfly.core.errors import ConfigError
from dragonfly.serve import dragonfly_v1_pb2, dragonfly_v1_pb2_grpc, orderbook_pb2, orderbook_pb2_grpc
from dragonfly.serve.config import parse_config
from dragonfly.serve.server import run_server
from dragonfly.topology.file import load_topology, parse_topology
from latency.ports import free_port

from ..fix.fixclient import FixClient

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
FILES = sorted(EXAMPLES.glob("*.toml"))


def test_there_are_examples() -> None:
    assert {p.name for p in FILES} >= {"two_aggregators.toml", "desk.toml"}
    assert "fix" in {svc.kind for svc in load_topology(EXAMPLES / "desk.toml").services}


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
async def test_each_example_starts_and_serves_offline(path: Path) -> None:
    cfg = parse_config(["--config", str(path), "--sim", "--sim-period", "0.05", "--port", str(free_port())])
    cfg.services = [dataclasses.replace(s, port=free_port()) for s in cfg.services]
    cfg.fix_services = [dataclasses.replace(s, port=free_port()) for s in cfg.fix_services]
    ready = asyncio.Event()
    server = asyncio.create_task(run_server(cfg, ready))
    try:
        await asyncio.wait_for(ready.wait(), 60)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{cfg.port}") as channel:
            stub = orderbook_pb2_grpc.OrderbookAggregatorStub(channel)
            stream = stub.BookSummary(orderbook_pb2.Empty())
            summary = await asyncio.wait_for(stream.read(), 10)
            assert summary.bids and summary.asks
            stream.cancel()
            # dragonfly.v1 on the same port: the instruments, and one update of each exposed view.
            market = dragonfly_v1_pb2_grpc.MarketDataStub(channel)
            listing = await market.ListInstruments(dragonfly_v1_pb2.ListInstrumentsRequest(), timeout=10)
            assert [i.instrument for i in listing.instruments] == cfg.instruments
            for info in listing.instruments:
                assert {v.venue for v in info.venues} == set(cfg.venues)
            kinds = set(listing.instruments[0].kinds)
            for kind in kinds:
                updates = market.Subscribe(
                    dragonfly_v1_pb2.SubscribeRequest(instruments=cfg.instruments, kind=kind)
                )
                update = await asyncio.wait_for(updates.read(), 10)
                assert update.instrument in cfg.instruments and update.kind == kind
                updates.cancel()
        for fix in cfg.fix_services:
            await _serves_its_views_over_fix(fix.port, fix.inputs, cfg.instrument)
    finally:
        import os
        import signal

        if not server.done():
            os.kill(os.getpid(), signal.SIGTERM)  # run_server's own handler stops it
        assert await asyncio.wait_for(server, 30) == 0


async def _serves_its_views_over_fix(port: int, inputs: tuple[str, ...], symbol: str) -> None:
    """A FIX client with no configuration logs on, gets a W of each exposed view, and a Y for the others."""
    asks = {"book": [(264, 0)], "bbo": [(264, 1)], "liquidity": [(264, 0), (20000, "liquidity")]}
    client = await FixClient.connect(port)
    try:
        await client.logon(30)
        for kind, how in asks.items():
            await client.send("V", [(262, kind), (263, 1), *how, (265, 0), (267, 2), (269, 0), (269, 1),
                                    (146, 1), (55, symbol)])
            want = b"W" if not inputs or kind in inputs else b"Y"
            async with asyncio.timeout(10):
                while True:  # past the W of the views asked for before, and this one's while it is empty
                    answer = await client.expect(want.decode(), skip=("0", "W"))
                    if answer.get(262) == kind.encode() and (want == b"Y" or answer.get(268) != b"0"):
                        break
        await client.send("5")
        await client.expect("5", skip=("0", "W"))
    finally:
        await client.close()


def test_flags_override_the_file(tmp_path: Path) -> None:
    path = tmp_path / "t.toml"
    path.write_text(
        'instruments = ["ethbtc", "btcusdt"]\nlog_level = "warning"\n'
        '[venues.binance]\nchannel = "diff"\nstale_after = 7\n[venues.kraken]\n'
        '[aggregators.book]\nkind = "book"\ndepth = 5\n[aggregators.liq]\nkind = "liquidity"\n'
        '[services.grpc]\nport = 6000\nqueue = 8\ninputs = ["book"]\n'
    )
    cfg = parse_config(["--config", str(path)])
    assert cfg.instruments == ["ethbtc", "btcusdt"]
    assert cfg.venues == ["binance", "kraken"]
    assert cfg.channels == {"binance": "diff"}
    assert cfg.stale_after == {"binance": 7.0}
    assert (cfg.port, cfg.queue, cfg.log_level, cfg.inputs) == (6000, 8, "warning", ("book",))
    assert [(a.name, a.kind, a.depth) for a in cfg.aggregator_specs()] == [
        ("book", "book", 5),
        ("liq", "liquidity", 100),
    ]
    cfg = parse_config(
        [
            "solusdt",
            "--config",
            str(path),
            "--port",
            "7000",
            "--channel",
            "binance=snapshot",
            "--depth",
            "3",
            "--venues",
            "binance,bitstamp",
            "--stale-after",
            "binance=2",
            "--log-level",
            "debug",
        ]
    )
    assert cfg.instruments == ["solusdt"]
    assert cfg.venues == ["binance", "bitstamp"]  # kraken's file settings are dropped with it
    assert cfg.channels == {"binance": "snapshot"}
    assert cfg.stale_after == {"binance": 2.0}
    assert (cfg.port, cfg.queue, cfg.log_level) == (7000, 8, "debug")
    assert cfg.aggregator_specs()[0].depth == 3


def test_no_file_keeps_the_one_instrument_command_working() -> None:
    cfg = parse_config(["ethbtc"])
    assert cfg.instruments == ["ethbtc"] and cfg.instrument == "ethbtc"
    assert [(a.kind, a.depth) for a in cfg.aggregator_specs()] == [("book", 10)]
    with pytest.raises(ConfigError, match="at least one instrument"):
        parse_config([])


BAD = [
    ("instruments = []", "instruments: expected a non-empty list"),
    ('instruments = ["ethbtc"]\ncolour = 1', "colour: unknown key"),
    ('instruments = ["eth btc!"]', "instruments: expected instruments like 'ethbtc'"),
    ('instruments = ["ethbtc"]\n[venues.mtgox]', "venues.mtgox: unknown venue"),
    (
        'instruments = ["ethbtc"]\n[venues.binance]\nchannel = "full"',
        "venues.binance.channel: expected one of 'snapshot', 'diff', got 'full'",
    ),
    (
        'instruments = ["ethbtc"]\n[venues.binance]\nendpoint = "http://x"',
        "venues.binance.endpoint: expected a ws:// or wss:// URL",
    ),
    (
        'instruments = ["ethbtc"]\n[aggregators.a]\ndepth = 10',
        "aggregators.a.kind: expected one of 'book', 'bbo', 'liquidity', got None",
    ),
    (
        'instruments = ["ethbtc"]\n[aggregators.a]\nkind = "book"\ndepth = 0',
        "aggregators.a.depth: expected an integer from 1 to 5000, got 0",
    ),
    (
        'instruments = ["ethbtc"]\n[aggregators.a]\nkind = "liquidity"\nbands_bps = [50, 10]',
        "aggregators.a.bands_bps: expected a non-empty list of basis points, increasing",
    ),
    (
        'instruments = ["ethbtc"]\n[aggregators.a]\nkind = "liquidity"\nquantities = [-1]',
        "aggregators.a.quantities: expected positive numbers",
    ),
    (
        'instruments = ["ethbtc"]\n[aggregators.a]\nkind = "book"\ninstruments = ["btcusdt"]',
        "aggregators.a.instruments: expected instruments of the top-level list",
    ),
    (
        'instruments = ["ethbtc"]\n[services.s]\ninputs = ["nope"]',
        "services.s.inputs: expected names of [aggregators]",
    ),
    (
        'instruments = ["ethbtc"]\n[services.s]\nport = 70000',
        "services.s.port: expected an integer from 0 to 65535, got 70000",
    ),
    (
        'instruments = ["ethbtc"]\n[services.s]\nkind = "websocket"',
        "services.s.kind: expected one of 'grpc', 'fix', got 'websocket'",
    ),
    ("instruments = [", "not valid TOML"),
]


@pytest.mark.parametrize(("text", "message"), BAD, ids=[m.split(":")[0] for _, m in BAD])
def test_bad_files_name_the_key_the_value_and_what_was_expected(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_topology(path)
    assert str(err.value).startswith(f"{path}: ")
    assert message in str(err.value)


def test_a_bad_file_is_one_line_and_exit_2_from_the_command(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('instruments = ["ethbtc"]\n[aggregators.a]\nkind = "book"\ndepth = "deep"\n')
    done = subprocess.run(
        [sys.executable, "-m", "dragonfly.serve", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"error: {path}: aggregators.a.depth: expected an integer from 1 to 5000, got 'deep'"
    ]
    missing = subprocess.run(
        [sys.executable, "-m", "dragonfly.serve", "--config", str(tmp_path / "none.toml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert missing.returncode == 2 and "no such topology file" in missing.stderr


def test_parse_topology_from_code_matches_the_file() -> None:
    topo = parse_topology({"instruments": ["ETH/BTC"], "aggregators": {"b": {"kind": "bbo"}}})
    assert topo.instruments == ["ethbtc"]
    assert [(a.name, a.kind) for a in topo.aggregators] == [("b", "bbo")]


def test_file_names_in_a_topology_are_relative_to_it(tmp_path: Path) -> None:
    (tmp_path / "conf").mkdir()
    path = tmp_path / "conf" / "t.toml"
    path.write_text(
        'instruments = ["ethbtc"]\nca_file = "ca.pem"\n'
        '[services.s]\ntoken_file = "/abs/token"\ntls_cert = "c.pem"\n'
    )
    topo = load_topology(path)
    assert topo.options["ca_file"] == str(tmp_path / "conf" / "ca.pem")
    assert topo.services[0].options["token_file"] == "/abs/token"
    assert topo.services[0].options["tls_cert"] == str(tmp_path / "conf" / "c.pem")


def test_each_service_gets_its_own_options_and_credentials(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("s3cret-token-for-the-bbo-service\n")
    path = tmp_path / "t.toml"
    path.write_text(
        'instruments = ["ethbtc"]\n[aggregators.book]\nkind = "book"\n[aggregators.bbo]\nkind = "bbo"\n'
        "[services.main]\nport = 6001\nqueue = 8\n"
        '[services.side]\nport = 6002\ninputs = ["bbo"]\nqueue = 1\ntoken_file = "token"\n'
    )
    cfg = parse_config(["--config", str(path)])
    (side,) = cfg.services
    assert (cfg.port, cfg.queue, cfg.token) == (6001, 8, None)
    assert (side.port, side.queue, side.inputs, side.token) == (
        6002,
        1,
        ("bbo",),
        "s3cret-token-for-the-bbo-service",
    )
    (tmp_path / "token").unlink()
    with pytest.raises(ConfigError, match=r"services\.side: "):
        parse_config(["--config", str(path)])


def test_the_metrics_port_comes_from_the_file_unless_a_flag_says(tmp_path: Path) -> None:
    path = tmp_path / "t.toml"
    path.write_text('instruments = ["ethbtc"]\nmetrics_port = 9108\n')
    assert parse_config(["--config", str(path)]).metrics_port == 9108
    assert parse_config(["--config", str(path), "--metrics-port", "9200"]).metrics_port == 9200
    assert parse_config(["ethbtc"]).metrics_port is None
    path.write_text('instruments = ["ethbtc"]\nmetrics_port = 99999\n')
    with pytest.raises(ConfigError, match="metrics_port: expected an integer from 0 to 65535"):
        load_topology(path)
