"""Command line: replay a recordings directory until Ctrl-C or SIGTERM.

    python -m dragonfly.sim.replay DIR [--venues binance,kraken] [--pace X] [--recorded-clock]
        [--host 127.0.0.1] [--tls-cert F --tls-key F]
        [--fault VENUE[@SECONDS]:SPEC]... [--fault-script FILE]

Prints one line per recorded connection (venue, file, WebSocket and REST
URLs, symbols) once listening. Problems in the recordings are printed to
stderr as warnings and the rest is replayed. A directory that cannot be
replayed is one error line and exit status 2, and so is a bad fault. A fault
names a venue (all its connections) or a connection file (``OKX.ws.1.0``).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from dragonfly.recording import RecordingError
from dragonfly.sim.cliutil import (
    OneLineParser,
    add_tls_args,
    check_tls_args,
    load_tls,
    run,
    serve_until_signal,
)
from dragonfly.sim.faults.script import add_fault_args, read_plan, schedule
from dragonfly.sim.faults.spec import Fault
from dragonfly.sim.faults.target import check_supported
from dragonfly.sim.replay.simulator import CONNECTIONS, ReplaySimulator

PROG = "python -m dragonfly.sim.replay"


def _csv(text: str) -> list[str]:
    return [part.strip().lower() for part in text.split(",") if part.strip()]


def _pace(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number: {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """Return the CLI's argument parser."""
    parser = OneLineParser(prog=PROG, description="Serve recorded venue traffic over loopback, "
                     "in each venue's current protocol.")
    parser.add_argument("directory", type=Path, help="recordings directory (VENUE.ws.N.M files)")
    parser.add_argument("--venues", type=_csv, default=None,
                        help=f"comma-separated venues (default: all of {','.join(CONNECTIONS)})")
    parser.add_argument("--pace", type=_pace, default=None,
                        help="1 = recorded pace, k = k times faster (default: as fast as possible)")
    parser.add_argument("--recorded-clock", action="store_true",
                        help="serve the venues' own time stamps as recorded (default: Bitstamp's "
                             "microtimestamps are moved on to now, so a client reads them as live)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    add_tls_args(parser)
    add_fault_args(parser)
    return parser


def _check(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.venues is not None:
        if not args.venues:
            parser.error("--venues: at least one venue is required")
        unknown = [v for v in args.venues if v not in CONNECTIONS]
        if unknown:
            parser.error(f"--venues: unknown venue {unknown[0]!r} (choose from {', '.join(CONNECTIONS)})")
    check_tls_args(parser, args)
    chosen = args.venues if args.venues is not None else list(CONNECTIONS)

    def check(target: str, fault: Fault) -> None:
        # A connection file (OKX.ws.1.0) names its venue first; it is found after loading.
        venue = target.split(".", 1)[0].lower()
        if venue not in chosen:
            raise ValueError(f"venue {venue!r} is not replayed (replaying {', '.join(chosen)})")
        check_supported(fault, CONNECTIONS[venue].capabilities)

    args.plan = read_plan(parser, args, check)


async def _serve(args: argparse.Namespace) -> int:
    loaded, ssl_context = load_tls(PROG, args)
    if not loaded:
        return 2
    replay = ReplaySimulator(args.directory, venues=args.venues, pace=args.pace, host=args.host,
                             ssl_context=ssl_context, recorded_clock=args.recorded_clock)
    try:
        replay.load()
    except RecordingError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    for error in replay.errors:
        print(f"{PROG}: warning: {error}", file=sys.stderr)
    for planned in args.plan:
        try:
            replay.connections_of(planned.venue)
        except ValueError as exc:
            print(f"{PROG}: error: --fault {planned.venue}: {exc}", file=sys.stderr)
            return 2

    def announce() -> None:
        for conn in replay.connections:
            print(f"{conn.venue:<9} {conn.name:<18} ws {conn.ws_url}  rest {conn.rest_url}  "
                  f"frames {len(conn.frames)}  symbols {','.join(conn.symbols)}", flush=True)
        print("Ctrl-C to stop", flush=True)
        schedule(args.plan, replay.fault)

    return await serve_until_signal(PROG, replay.start, replay.stop, announce)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    _check(parser, args)
    # Recording problems are printed once by _serve; keep the logger from repeating them.
    quiet = logging.getLogger("dragonfly.sim.replay.recording")
    quiet.addHandler(logging.NullHandler())
    quiet.propagate = False
    return run(_serve(args))
