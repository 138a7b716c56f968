"""Command line: run the simulator until Ctrl-C or SIGTERM.

    python -m dragonfly.sim [--venues binance,bitstamp,kraken,okx,coinbase,bybit] [--instruments ethbtc]
        [--host 127.0.0.1] [--port-base N] [--period S] [--seed N]
        [--tls-cert F --tls-key F] [--fault VENUE[@SECONDS]:SPEC]... [--fault-script FILE]

With ``--port-base N`` the venues' WebSocket ports are N, N+1, ... in the
order given and their REST ports follow; otherwise free ports are picked. The
URLs are printed once listening. Faults (``docs/faults.md``) are checked
before anything starts and applied SECONDS after it.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from dragonfly import __version__
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
from dragonfly.sim.instruments import DEFAULT_INSTRUMENTS, DEFAULT_VENUES, VENUES, make_instrument
from dragonfly.sim.simulator import SERVERS, Simulator

PROG = "python -m dragonfly.sim"


def _csv(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive: {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """Return the CLI's argument parser."""
    parser = OneLineParser(prog=PROG, description="Run loopback venue simulators.")
    parser.add_argument("--venues", type=_csv, default=list(DEFAULT_VENUES),
                        help=f"comma-separated venues of {','.join(VENUES)} "
                        f"(default: {','.join(DEFAULT_VENUES)})")
    parser.add_argument("--instruments", type=_csv, default=list(DEFAULT_INSTRUMENTS),
                        help=f"comma-separated instruments (default: {','.join(DEFAULT_INSTRUMENTS)})")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    parser.add_argument("--port-base", type=int, default=None,
                        help="first port; venues bind consecutive WebSocket ports, then REST "
                        "ports (default: free ports)")
    parser.add_argument("--period", type=_positive, default=None,
                        help="publish cadence in seconds for every venue (default: each venue's own)")
    parser.add_argument("--ping-interval", type=_positive, default=None,
                        help="server PING interval in seconds for venues that PING")
    parser.add_argument("--pong-timeout", type=_positive, default=None,
                        help="drop a client silent to PINGs this long (seconds)")
    parser.add_argument("--seed", type=int, default=0, help="market seed (default: 0)")
    add_tls_args(parser)
    add_fault_args(parser)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return parser


def _check(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Validate what argparse cannot; report the first problem on one line."""
    if not args.venues:
        parser.error("--venues: at least one venue is required")
    unknown = [v for v in args.venues if v not in VENUES]
    if unknown:
        parser.error(f"--venues: unknown venue {unknown[0]!r} (choose from {', '.join(VENUES)})")
    if not args.instruments:
        parser.error("--instruments: at least one instrument is required")
    for name in args.instruments:
        try:
            make_instrument(name)
        except ValueError as exc:
            parser.error(f"--instruments: {exc}")
    if args.port_base is not None and not 1 <= args.port_base <= 65535 - 2 * len(args.venues) + 1:
        parser.error(f"--port-base: {args.port_base} is out of range")
    check_tls_args(parser, args)
    for path in (args.tls_cert, args.tls_key):
        if path is not None and not path.is_file():
            parser.error(f"no such file: {path}")

    def check(venue: str, fault: Fault) -> None:
        if venue not in args.venues:
            raise ValueError(f"venue {venue!r} is not served (serving {', '.join(args.venues)})")
        check_supported(fault, SERVERS[venue].capabilities)

    args.plan = read_plan(parser, args, check)


async def _serve(args: argparse.Namespace) -> int:
    loaded, ssl_context = load_tls(PROG, args)
    if not loaded:
        return 1
    ports = rest_ports = None
    if args.port_base is not None:
        venues = list(dict.fromkeys(args.venues))
        ports = {venue: args.port_base + i for i, venue in enumerate(venues)}
        rest_ports = {venue: args.port_base + len(venues) + i for i, venue in enumerate(venues)}
    sim = Simulator(args.venues, args.instruments, args.host, args.seed, ssl_context, args.period,
                    ports=ports, rest_ports=rest_ports, ping_interval_s=args.ping_interval,
                    pong_timeout_s=args.pong_timeout)

    def announce() -> None:
        for venue in sim.venues:
            print(f"{venue:<9} ws {sim.ws_url(venue)}  rest {sim.rest_url(venue)}", flush=True)
        print("faults: GET <rest>/dragonfly/faults?spec=KIND,... or "
              "python -m dragonfly.sim.fault URL SPEC", flush=True)
        print(f"instruments: {', '.join(sim.market.instruments)}; Ctrl-C to stop", flush=True)
        schedule(args.plan, sim.fault)

    return await serve_until_signal(PROG, sim.start, sim.stop, announce)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    _check(parser, args)
    return run(_serve(args))
