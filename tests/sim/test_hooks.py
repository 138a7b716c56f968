"""Test hooks, TLS, shutdown and the command line."""

from __future__ import annotations

import asyncio
import json
import signal
import ssl
import subprocess
import sys
from pathlib import Path

import pytest

from dragonfly.sim import Simulator
from dragonfly.sim.cli import main
from dragonfly.sim.probe import connect, http_get
from dragonfly.sim.tls import client_ssl_context, server_ssl_context


async def test_drop_clients_then_reconnect(sim: Simulator) -> None:
    probes = [await connect(sim.ws_url("binance")) for _ in range(2)]
    other = await connect(sim.ws_url("bitstamp"))
    assert sim.clients("binance") == 2
    assert await sim.drop_clients("binance") == 2
    for probe in probes:
        await asyncio.wait_for(probe.disconnected.wait(), 1.0)
        assert probe.close_code is None  # abrupt: no CLOSE frame
    assert sim.clients("binance") == 0 and sim.clients("bitstamp") == 1
    again = await connect(sim.ws_url("binance"))
    again.send({"method": "SUBSCRIBE", "params": ["ethbtc@depth5@100ms"], "id": 1})
    assert await again.recv_json() == {"result": None, "id": 1}
    assert "bids" in await again.recv_json()
    await again.close()
    await other.close()


async def test_inject_reaches_subscribed_clients_only(sim: Simulator) -> None:
    subscribed = await connect(sim.ws_url("bitstamp"))
    idle = await connect(sim.ws_url("bitstamp"))
    subscribed.send({"event": "bts:subscribe", "data": {"channel": "order_book_ethbtc"}})
    await subscribed.wait_json({"event": "bts:subscription_succeeded"})
    sim.pause("bitstamp")
    await asyncio.sleep(0.05)
    subscribed.drain()
    garbage = b'{"data": {"bids": [["x"'
    assert sim.inject("bitstamp", garbage) == 1
    assert await subscribed.recv() == garbage
    assert sim.inject("bitstamp", "not json at all") == 1
    assert await subscribed.recv() == b"not json at all"
    with pytest.raises(TimeoutError):
        await idle.recv(timeout=0.1)
    await subscribed.close()
    await idle.close()


async def test_stop_closes_clients_promptly() -> None:
    sim = Simulator(["binance", "bitstamp"], ["ethbtc"], period_s=0.02)
    await sim.start()
    probes = [await connect(sim.ws_url(v)) for v in sim.venues]
    loop = asyncio.get_running_loop()
    started = loop.time()
    await sim.stop()
    for probe in probes:
        await asyncio.wait_for(probe.disconnected.wait(), 1.0)
    assert loop.time() - started < 1.0
    with pytest.raises(OSError):
        await connect(sim.ws_url("binance"))


async def test_tls_serves_wss_and_https_verified(cert_files: tuple[Path, Path]) -> None:
    cert, key = cert_files
    sim = Simulator(["binance", "bitstamp"], ["ethbtc"], ssl_context=server_ssl_context(cert, key),
                    period_s=0.02)
    async with sim:
        assert sim.ws_url("binance").startswith("wss://127.0.0.1:")
        assert sim.rest_url("bitstamp").startswith("https://127.0.0.1:")
        trusted = client_ssl_context(cert)
        assert trusted.verify_mode == ssl.CERT_REQUIRED and trusted.check_hostname
        probe = await connect(sim.ws_url("binance") + "/ethbtc@depth5@100ms", ssl_context=trusted)
        assert len((await probe.recv_json())["bids"]) == 5
        await probe.close()
        by_name = await connect(sim.ws_url("bitstamp").replace("127.0.0.1", "localhost"),
                                ssl_context=trusted)
        by_name.send({"event": "bts:heartbeat"})
        assert (await by_name.recv_json())["event"] == "bts:heartbeat"
        await by_name.close()
        reply = await http_get(sim.rest_url("binance") + "/api/v3/ping", ssl_context=trusted)
        assert (reply.status, reply.body) == (200, b"{}")
        # A client that does not trust the certificate refuses the server.
        with pytest.raises(ssl.SSLCertVerificationError):
            await connect(sim.ws_url("binance"), ssl_context=ssl.create_default_context())


def test_constructor_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError):
        Simulator(["ftx"])
    with pytest.raises(ValueError):
        Simulator(instruments=["ETH/BTC"])
    with pytest.raises(ValueError):
        Simulator(period_s=0)


def test_cli_rejects_bad_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["--venues", "ftx"], ["--period", "0"], ["--tls-cert", "x.pem"]):
        with pytest.raises(SystemExit) as info:
            main(argv)
        assert info.value.code == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "error:" in err, err


def test_cli_runs_until_sigterm() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "dragonfly.sim", "--venues", "bitstamp", "--instruments", "ethbtc",
         "--period", "0.05"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("bitstamp") and "ws://127.0.0.1:" in line
        rest = line.split("rest ")[1].strip()

        async def fetch() -> object:
            return (await http_get(rest + "/api/v2/trading-pairs-info/")).json()

        assert json.dumps(asyncio.run(fetch())).count("ethbtc") == 1
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=5)
    finally:
        proc.kill()
    assert proc.returncode == 0
    assert "Traceback" not in err
