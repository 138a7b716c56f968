"""Command line: apply a fault to a running simulator or replay server.

    python -m dragonfly.sim.fault URL SPEC        # e.g. ws://127.0.0.1:9001/ws silence,for=10
    python -m dragonfly.sim.fault URL --list      # the faults in force
    python -m dragonfly.sim.fault URL --clear     # end them all

URL is a venue's WebSocket or REST address as the simulator prints it (any
path); the fault goes to that venue (for the replay server: that recorded
connection) through ``GET /dragonfly/faults``. Prints the JSON answer; exit
status 1 with the error on one line if the fault is refused or the server
cannot be reached, 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import ssl
import sys
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import quote, urlsplit

from dragonfly.sim.cliutil import OneLineParser
from dragonfly.sim.faults.script import kinds_help
from dragonfly.sim.probe import http_get

PROG = "python -m dragonfly.sim.fault"
_SCHEMES = {"ws": "http", "wss": "https", "http": "http", "https": "https"}


def control_url(url: str, spec: str | None, *, clear: bool = False) -> str:
    """Return the control endpoint URL for a venue address; ValueError if it is not one."""
    parts = urlsplit(url)
    scheme = _SCHEMES.get(parts.scheme)
    if scheme is None or not parts.netloc:
        raise ValueError(f"not a ws://, wss://, http:// or https:// address: {url!r}")
    base = f"{scheme}://{parts.netloc}/dragonfly/faults"
    if clear:
        return base + "/clear"
    return base if spec is None else f"{base}?spec={quote(spec, safe=',=')}"


def build_parser() -> argparse.ArgumentParser:
    """Return the CLI's argument parser."""
    parser = OneLineParser(prog=PROG, description="Apply a fault to a running venue simulator.",
                           formatter_class=argparse.RawDescriptionHelpFormatter,
                           epilog=kinds_help())
    parser.add_argument("url", help="the venue's ws:// or http:// address, as the simulator prints it")
    parser.add_argument("spec", nargs="?", help="KIND[,key=value]..., e.g. close,code=1000")
    parser.add_argument("--list", action="store_true", help="print the faults in force")
    parser.add_argument("--clear", action="store_true", help="end every fault in force")
    parser.add_argument("--ca-file", type=Path, default=None, help="trust this PEM for wss/https")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds to wait (default: 5)")
    return parser


async def _call(url: str, ssl_context: ssl.SSLContext | None, timeout: float) -> int:
    try:
        reply = await http_get(url, ssl_context=ssl_context, timeout=timeout)
    except (OSError, TimeoutError, ValueError) as exc:
        print(f"{PROG}: error: {url}: {exc or type(exc).__name__}", file=sys.stderr)
        return 1
    try:
        body = reply.json()
    except ValueError:
        body = None
    if reply.status != 200 or not isinstance(body, dict):
        error = body.get("error") if isinstance(body, dict) else None
        text = error or f"HTTP {reply.status}: {reply.body[:200].decode('utf-8', 'replace')}"
        print(f"{PROG}: error: {text}", file=sys.stderr)
        return 1
    print(json.dumps(body))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if sum((args.spec is not None, args.list, args.clear)) != 1:
        parser.error("give exactly one of SPEC, --list or --clear")
    try:
        url = control_url(args.url, args.spec, clear=args.clear)
    except ValueError as exc:
        parser.error(str(exc))
    context = None
    if args.ca_file is not None:
        context = ssl.create_default_context(cafile=str(args.ca_file))
    return asyncio.run(_call(url, context, args.timeout))


if __name__ == "__main__":
    sys.exit(main())
