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

#: The simulator's publish period: fast, so the tests see many updates in a second.
SIM_PERIOD = "0.05"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """One gateway per test module on the simulator (ethbtc and btcusdt); each test is its own session."""
    fix_port, grpc_port = free_port(), free_port()
    log = tmp_path_factory.mktemp("gateway") / "serve.log"
    cmd = [
        sys.executable, "-m", "dragonfly.serve", "ethbtc", "btcusdt", "--sim", "--sim-period", SIM_PERIOD,
        "--host", "127.0.0.1", "--port", str(grpc_port), "--fix-port", str(fix_port),
    ]
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
