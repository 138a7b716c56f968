"""Command-line plumbing shared by the simulator and the replay server.

Both parse arguments with one-line errors, optionally load a TLS certificate,
serve until Ctrl-C or SIGTERM and run on uvloop when it is installed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import ssl
import sys
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any, NoReturn

#: The signals that stop a serving CLI.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class OneLineParser(argparse.ArgumentParser):
    """An argument parser that reports a mistake on one line."""

    def error(self, message: str) -> NoReturn:
        """Print ``PROG: error: message`` and exit 2."""
        self.exit(2, f"{self.prog}: error: {message}\n")


def add_tls_args(parser: argparse.ArgumentParser) -> None:
    """Add ``--tls-cert`` and ``--tls-key``."""
    parser.add_argument("--tls-cert", type=Path, default=None, help="PEM certificate; serve wss/https")
    parser.add_argument("--tls-key", type=Path, default=None, help="PEM private key of --tls-cert")


def check_tls_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Report ``--tls-cert`` without ``--tls-key`` or the reverse."""
    if (args.tls_cert is None) != (args.tls_key is None):
        parser.error("--tls-cert and --tls-key must be given together")


def load_tls(prog: str, args: argparse.Namespace) -> tuple[bool, ssl.SSLContext | None]:
    """Return (loaded, context) of ``--tls-cert``/``--tls-key`` (None without them).

    A certificate that cannot be loaded is reported on stderr and gives (False, None).
    """
    if args.tls_cert is None:
        return True, None
    from dragonfly.sim.tls import server_ssl_context

    try:
        return True, server_ssl_context(args.tls_cert, args.tls_key)
    except (OSError, ValueError) as exc:
        print(f"{prog}: error: cannot load TLS certificate: {exc}", file=sys.stderr)
        return False, None


async def serve_until_signal(prog: str, start: Callable[[], Awaitable[None]],
                             stop: Callable[[], Awaitable[None]],
                             announce: Callable[[], None]) -> int:
    """Start, ``announce`` the URLs, wait for SIGINT or SIGTERM, stop; return the exit status."""
    try:
        await start()
    except OSError as exc:
        print(f"{prog}: error: cannot listen: {exc}", file=sys.stderr)
        return 1
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in STOP_SIGNALS:
        loop.add_signal_handler(sig, stopping.set)
    try:
        announce()
        await stopping.wait()
    finally:
        for sig in STOP_SIGNALS:
            loop.remove_signal_handler(sig)
        await stop()
    return 0


def run(main: Coroutine[Any, Any, int]) -> int:
    """Run ``main`` on uvloop if installed, else asyncio; return its exit status."""
    runner: Callable[[Coroutine[Any, Any, int]], int] = asyncio.run
    with contextlib.suppress(ImportError):
        import uvloop

        runner = uvloop.run
    try:
        return runner(main)
    except KeyboardInterrupt:  # Ctrl-C before the signal handlers were installed
        return 0
