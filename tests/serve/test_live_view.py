"""``dragonfly-client --live`` in a real terminal (tmux): what a person sees on the screen."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator

import pytest

from .test_probes import free_port

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")


def tmux(*args: str) -> str:
    return subprocess.run(["tmux", *args], capture_output=True, text=True, timeout=10, check=True).stdout


def screen_until(session: str, wanted: str, timeout: float = 20.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        text = tmux("capture-pane", "-p", "-t", session)
        if wanted in text or time.monotonic() > deadline:
            return text
        time.sleep(0.2)


@pytest.fixture
def server() -> Iterator[tuple[subprocess.Popen[str], int]]:
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dragonfly.serve",
            "ethbtc",
            "--sim",
            "--port",
            str(port),
            "--sim-period",
            "0.05",
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    for line in proc.stderr:
        if "serving ethbtc merged top" in line:
            break
    yield proc, port
    if proc.poll() is None:
        proc.terminate()
        proc.wait(timeout=30)


def test_the_live_view_redraws_the_book_and_says_when_the_server_goes(
    server: tuple[subprocess.Popen[str], int],
) -> None:
    proc, port = server
    session = f"dragonfly-{uuid.uuid4().hex[:8]}"
    command = f"{sys.executable} -m dragonfly.client --server 127.0.0.1:{port} --live --depth 5; sleep 30"
    tmux("new-session", "-d", "-s", session, "-x", "120", "-y", "40", command)
    try:
        screen = screen_until(session, "updates/s")
        assert "ethbtc" in screen and "spread" in screen and "mid" in screen, screen
        for venue in ("binance", "bitstamp"):
            assert venue in screen, screen
        assert "live" in screen and "data age" in screen, screen
        # Redrawn in place: one header on the screen, and the sequence moves on.
        assert screen.count("updates/s") == 1, screen
        first = next(line for line in screen.splitlines() if "updates/s" in line)
        time.sleep(1.0)
        later = tmux("capture-pane", "-p", "-t", session)
        assert next(line for line in later.splitlines() if "updates/s" in line) != first
        proc.terminate()
        proc.wait(timeout=30)
        gone = screen_until(session, "ended the stream")
        assert "ended the stream" in gone or "error:" in gone, gone
        assert "ethbtc" in gone  # the last screen stays above the line
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True, timeout=10)
