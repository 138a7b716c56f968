"""The gateway under test: ``python -m dragonfly.serve ethbtc btcusdt --sim --fix-port N`` as a subprocess."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from latency.ports import free_port

#: The simulator's publish period: fast, so the tests see many updates in a second.
SIM_PERIOD = "0.05"


@dataclass
class Gateway:
    """A running server with its FIX acceptor; its stdout and stderr go to ``log``."""

    proc: subprocess.Popen[bytes]
    fix_port: int
    grpc_port: int
    log: Path

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def check_healthy(self) -> None:
        """Assert the server is still running and has logged no traceback."""
        text = self.log_text()
        assert self.proc.poll() is None, f"the gateway exited ({self.proc.returncode}):\n{text[-4000:]}"
        assert "Traceback" not in text, text[-4000:]


def _wait_for_port(port: int, proc: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise AssertionError(f"the FIX port {port} did not open:\n{log.read_text(errors='replace')[-4000:]}")


#: A topology with the liquidity view (the command line serves book and bbo): its gRPC port is added.
LIQUIDITY_TOPOLOGY = """
instruments = ["ethbtc"]

[venues.binance]
[venues.bitstamp]

[aggregators.book]
kind = "book"
depth = 10

[aggregators.liquidity]
kind = "liquidity"
depth = 20
bands_bps = [10, 50]
quantities = [1, 10]

[services.main]
inputs = ["book", "liquidity"]
"""


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """One gateway per test module on the simulator (ethbtc and btcusdt); each test is its own session."""
    yield from run_gateway(tmp_path_factory.mktemp("gateway"), ["ethbtc", "btcusdt"])


@pytest.fixture(scope="module")
def liquidity_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """A gateway of ethbtc's book and liquidity views, from a topology file (:data:`LIQUIDITY_TOPOLOGY`)."""
    workdir = tmp_path_factory.mktemp("liquidity")
    grpc_port = free_port()
    topology = workdir / "topology.toml"
    topology.write_text(LIQUIDITY_TOPOLOGY.replace("[services.main]", f"[services.main]\nport = {grpc_port}"))
    yield from run_gateway(workdir, ["--config", str(topology)], grpc_port)


def run_gateway(workdir: Path, args: list[str], grpc_port: int = 0) -> Iterator[Gateway]:
    """Run ``dragonfly.serve ARGS --sim --fix-port N`` until the generator is closed."""
    fix_port = free_port()
    log = workdir / "serve.log"
    cmd = [sys.executable, "-m", "dragonfly.serve", *args, "--sim", "--sim-period", SIM_PERIOD, "--host",
           "127.0.0.1", "--fix-port", str(fix_port)]
    if not grpc_port:
        grpc_port = free_port()
        cmd += ["--port", str(grpc_port)]
    with open(log, "wb") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT)
    gw = Gateway(proc, fix_port, grpc_port, log)
    try:
        _wait_for_port(fix_port, proc, log, 30.0)
        yield gw
        gw.check_healthy()
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
