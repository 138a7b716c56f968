"""The FIX gateway in a real server on the simulator: equal to gRPC v1, the CLI, the topology file."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import grpc.aio
import pytest

from dragonfly.core.errors import ConfigError
from dragonfly.fix.codec import FixMessage
from dragonfly.serve import dragonfly_v1_pb2 as pb
from dragonfly.serve import dragonfly_v1_pb2_grpc as pb_grpc
from dragonfly.serve.config import ServeConfig, parse_config
from dragonfly.serve.server import run_server
from latency.ports import free_port

from .fixclient import FixClient

ROOT = Path(__file__).resolve().parents[2]
ENTRY = frozenset({269, 270, 271, 276, 282, 290})

Book = tuple[tuple[tuple[str, float, float], ...], tuple[tuple[str, float, float], ...]]


@contextlib.asynccontextmanager
async def serving(cfg: ServeConfig) -> AsyncIterator[ServeConfig]:
    ready = asyncio.Event()
    server = asyncio.create_task(run_server(cfg, ready))
    try:
        await asyncio.wait_for(ready.wait(), 60)
        yield cfg
    finally:
        if not server.done():
            os.kill(os.getpid(), signal.SIGTERM)  # run_server's own handler stops it
        assert await asyncio.wait_for(server, 30) == 0


def fix_book(msg: FixMessage) -> Book:
    entries = msg.group(268, 269, ENTRY)
    side = {
        t: tuple((e[282].decode(), float(e[270]), float(e[271])) for e in entries if e[269] == t)
        for t in (b"0", b"1")
    }
    return side[b"0"], side[b"1"]


def grpc_book(update: pb.Update) -> Book:
    return (
        tuple((lv.venue, lv.price, lv.amount) for lv in update.book.bids),
        tuple((lv.venue, lv.price, lv.amount) for lv in update.book.asks),
    )


def md_request(req_id: str, depth: int, symbol: str = "ETH/BTC") -> list[tuple[int, object]]:
    return [
        (262, req_id),
        (263, 1),
        (264, depth),
        (265, 0),
        (267, 2),
        (269, 0),
        (269, 1),
        (146, 1),
        (55, symbol),
    ]


@pytest.mark.parametrize("depth", [0, 5])
async def test_a_fix_client_receives_what_a_grpc_v1_client_receives(depth: int) -> None:
    fix_port = free_port()
    cfg = parse_config(
        [
            "ethbtc",
            "--sim",
            "--sim-period",
            "0.02",
            "--port",
            str(free_port()),
            "--fix-port",
            str(fix_port),
            "--queue",
            "1000",
            "--max-lag-ms",
            "60000",
            "--venues",
            "binance,bitstamp,kraken",
        ]
    )
    async with serving(cfg):
        client = await FixClient.connect(fix_port)
        await client.logon(30)
        fix_books: dict[int, Book] = {}
        grpc_books: dict[int, Book] = {}

        async def read_grpc() -> None:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{cfg.port}") as channel:
                stream = pb_grpc.MarketDataStub(channel).Subscribe(
                    pb.SubscribeRequest(instruments=["ethbtc"], kind=pb.KIND_BOOK, depth=depth)
                )
                async for update in stream:
                    grpc_books[update.sequence] = grpc_book(update)
                    if len(grpc_books) >= 60:
                        return

        reader = asyncio.create_task(read_grpc())
        await client.send("V", md_request("eq", depth))  # type: ignore[arg-type]
        async with asyncio.timeout(30):
            while len(fix_books) < 60 or not reader.done():
                msg = await client.expect("W")
                seq = msg.get_int(20001)
                assert seq is not None and seq not in fix_books
                fix_books[seq] = fix_book(msg)
        await reader
        await client.close()
    common = sorted(set(fix_books) & set(grpc_books))
    assert len(common) >= 40, (sorted(fix_books)[:5], sorted(grpc_books)[:5])
    # Once both are caught up (from the first sequence both have), the same sequence of books.
    first, last = common[0], common[-1]
    assert [s for s in sorted(fix_books) if first <= s <= last] == [
        s for s in sorted(grpc_books) if first <= s <= last
    ]
    for seq in common:
        assert fix_books[seq] == grpc_books[seq], seq
        bids, asks = fix_books[seq]
        assert len(bids) == (depth or cfg.depth) and len(asks) == (depth or cfg.depth)


async def test_the_command_line_serves_fix_in_a_subprocess() -> None:
    fix_port = free_port()
    metrics_port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dragonfly.serve",
            "ethbtc",
            "--sim",
            "--sim-period",
            "0.05",
            "--port",
            str(free_port()),
            "--fix-port",
            str(fix_port),
            "--fix-comp-id",
            "GW",
            "--metrics-port",
            str(metrics_port),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        client = None
        async with asyncio.timeout(60):
            while client is None:
                try:
                    client = await FixClient.connect(fix_port, target="GW")
                except OSError:
                    assert proc.poll() is None, proc.communicate()
                    await asyncio.sleep(0.2)
        reply = await client.logon(30)
        assert reply.get(49) == b"GW"
        await client.send("V", md_request("cli", 1, "ethbtc"))  # type: ignore[arg-type]
        async with asyncio.timeout(20):  # the first W may be the view before any venue is live: empty
            while not (entries := (await client.expect("W")).group(268, 269, ENTRY)):
                pass
        conditions = {e.get(276) for e in entries}
        assert conditions == {b"D", b"C"}  # MarketDepth 1: the BBO view, best and each venue's
        url = f"http://127.0.0.1:{metrics_port}/metrics"
        text = await asyncio.to_thread(lambda: urllib.request.urlopen(url, timeout=10).read().decode())
        service = f'service="fix 127.0.0.1:{fix_port}"'
        assert f"dragonfly_fix_sessions{{{service}}} 1.0" in text
        sent = [
            line
            for line in text.splitlines()
            if line.startswith(f"dragonfly_fix_messages_sent_total{{{service}")
        ]
        assert sent and float(sent[0].split()[-1]) >= 1
        await client.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "FIX 127.0.0.1:" in err


def test_fix_flags_need_the_port_and_are_checked() -> None:
    with pytest.raises(ConfigError, match="--fix-comp-id applies to the --fix-port gateway"):
        parse_config(["ethbtc", "--fix-comp-id", "X"])
    with pytest.raises(ConfigError, match="--fix-heartbeat-min and --fix-heartbeat-max must satisfy"):
        parse_config(
            ["ethbtc", "--fix-port", "9878", "--fix-heartbeat-min", "50", "--fix-heartbeat-max", "10"]
        )
    with pytest.raises(ConfigError, match="--fix-comp-id: expected 1 to 64 printable"):
        parse_config(["ethbtc", "--fix-port", "9878", "--fix-comp-id", "has space"])
    cfg = parse_config(
        ["ethbtc", "--fix-port", "9878", "--fix-accept-comp-id", "A", "--fix-accept-comp-id", "B"]
    )
    (fix,) = cfg.fix_services
    assert (fix.port, fix.comp_id, fix.accept_comp_ids) == (9878, "DRAGONFLY", ("A", "B"))
    assert [a.kind for a in cfg.aggregator_specs()] == ["book", "bbo"]
    assert not parse_config(["ethbtc"]).fix_services
    env = parse_config(["ethbtc"], environ={"DRAGONFLY_FIX_PORT": "9900"})
    assert env.fix_services[0].port == 9900


def test_the_cli_refuses_a_bad_fix_flag_with_one_line() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "dragonfly.serve", "ethbtc", "--fix-username", "u"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert (
        proc.stderr.strip()
        .splitlines()[-1]
        .endswith("--fix-username applies to the --fix-port gateway: give --fix-port too")
    )


TOPOLOGY = """
instruments = ["ethbtc", "btcusdt"]
[venues.binance]
[venues.bitstamp]
[aggregators.book]
kind = "book"
depth = 5
[aggregators.top]
kind = "bbo"
instruments = ["ethbtc"]
[services.grpc]
kind = "grpc"
inputs = ["book"]
[services.desk]
kind = "fix"
host = "127.0.0.1"
port = {port}
inputs = ["top"]
comp_id = "GW"
accept_comp_ids = ["DESK"]
heartbeat_min = 5
heartbeat_max = 60
username = "desk"
password_file = "pw.txt"
max_sessions = 4
snapshot_rate = 7
"""


async def test_a_fix_service_in_the_topology_file(tmp_path: Path) -> None:
    fix_port = free_port()
    (tmp_path / "pw.txt").write_text("s3cret\n")
    path = tmp_path / "t.toml"
    path.write_text(TOPOLOGY.format(port=fix_port))
    cfg = parse_config(["--config", str(path), "--sim", "--sim-period", "0.05", "--port", str(free_port())])
    (fix,) = cfg.fix_services
    assert (fix.name, fix.comp_id, fix.accept_comp_ids, fix.heartbeat_min, fix.heartbeat_max) == (
        "desk",
        "GW",
        ("DESK",),
        5,
        60,
    )
    assert (fix.username, fix.password, fix.inputs, fix.max_sessions, fix.snapshot_rate) == (
        "desk", "s3cret", ("top",), 4, 7
    )
    assert cfg.inputs == ("book",) and not cfg.services  # the FIX service is not a gRPC one
    async with serving(cfg):
        refused = await FixClient.connect(fix_port, sender="OTHER", target="GW")
        await refused.send("A", [(98, 0), (108, 30), (553, "desk"), (554, "s3cret")])
        assert b"not accepted" in ((await refused.expect_closed())[0].get(58) or b"")
        client = await FixClient.connect(fix_port, sender="DESK", target="GW")
        await client.logon(30, [(553, "desk"), (554, "s3cret")])
        await client.send("V", md_request("top", 1, "ethbtc"))  # type: ignore[arg-type]
        assert (await client.expect("W", timeout=20)).get(262) == b"top"
        # Its inputs are the bbo view only: the book is refused, and btcusdt has no bbo.
        await client.send("V", md_request("book", 0, "ethbtc"))  # type: ignore[arg-type]
        reject = await client.expect("Y", skip=("0", "W"))
        assert b"not served" in (reject.get(58) or b"")
        await client.send("V", md_request("btc", 1, "btcusdt"))  # type: ignore[arg-type]
        reject = await client.expect("Y", skip=("0", "W"))
        assert reject.get(262) == b"btc" and b"btcusdt" in (reject.get(58) or b"")
        await client.close()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("queue = 5", "services.desk.queue: unknown key (expected one of kind, host, port, inputs, comp_id"),
        ("heartbeat_min = 0", "services.desk.heartbeat_min: expected an integer from 1 to 3600, got 0"),
        ('accept_comp_ids = "DESK"', "services.desk.accept_comp_ids: expected a list of strings"),
        ('inputs = ["nope"]', "services.desk.inputs: expected names of [aggregators] (book), got 'nope'"),
        ('comp_id = "a b"', "services.desk.comp_id: expected 1 to 64 printable characters"),
        (
            "heartbeat_min = 90\nheartbeat_max = 30",
            "services.desk.heartbeat_min and services.desk.heartbeat_max",
        ),
        ('password_file = "missing.txt"', "services.desk.password_file: cannot read"),
    ],
)
def test_bad_fix_service_keys_name_the_key(tmp_path: Path, extra: str, message: str) -> None:
    path = tmp_path / "t.toml"
    path.write_text(
        'instruments = ["ethbtc"]\n[aggregators.book]\nkind = "book"\n[services.desk]\nkind = "fix"\n'
        + extra
        + "\n"
    )
    with pytest.raises(ConfigError) as info:
        parse_config(["--config", str(path)])
    assert message in str(info.value)
