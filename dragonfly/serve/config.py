"""Command-line configuration of the server: parsing and validation only."""

from __future__ import annotations

import argparse
import ssl
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from dragonfly.core.engine import normalise_instrument
from dragonfly.core.errors import ConfigError
from dragonfly.venues import VENUES, get_venue

DEFAULT_VENUES = ("binance", "bitstamp")
DEFAULT_QUEUE = 64
DEFAULT_MAX_LAG_MS = 1.0


@dataclass
class ServeConfig:
    """Everything ``python -m dragonfly.serve`` was asked to do."""

    instrument: str
    venues: list[str]
    host: str = "0.0.0.0"
    port: int = 50051
    depth: int = 10
    sim: bool = False
    endpoints: dict[str, str] = field(default_factory=dict)
    rest_endpoints: dict[str, str] = field(default_factory=dict)
    channels: dict[str, str] = field(default_factory=dict)
    ca_file: str | None = None
    sim_period: float | None = None
    log_level: str = "info"
    start_timeout: float = 15.0
    #: Per-subscriber queue: at most ``queue`` updates, none older than ``max_lag_ms``
    #: once a newer one is queued (see :class:`~dragonfly.core.fanout.Subscription`).
    queue: int = DEFAULT_QUEUE
    max_lag_ms: float = DEFAULT_MAX_LAG_MS

    def ssl_context(self) -> ssl.SSLContext | None:
        """A client TLS context trusting ``ca_file`` in addition to nothing else, if given."""
        if self.ca_file is None:
            return None
        try:
            return ssl.create_default_context(cafile=self.ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"cannot use --ca-file {self.ca_file!r}: {exc}") from None


def build_parser() -> argparse.ArgumentParser:
    """The server's argument parser."""
    p = argparse.ArgumentParser(
        prog="python -m dragonfly.serve",
        description=(
            "Stream the merged top-N order book of INSTRUMENT across venues over gRPC "
            "(service orderbook.OrderbookAggregator/BookSummary)."
        ),
    )
    p.add_argument("instrument", help="instrument, e.g. ethbtc (also ETH/BTC, eth-btc)")
    p.add_argument("--host", default="0.0.0.0", help="gRPC listen address (default 0.0.0.0)")
    p.add_argument("--port", type=int, default=50051, help="gRPC listen port (default 50051)")
    p.add_argument(
        "--venues",
        default=",".join(DEFAULT_VENUES),
        help=f"comma-separated venues (default {','.join(DEFAULT_VENUES)}; "
        f"known: {','.join(sorted(VENUES))})",
    )
    p.add_argument("--depth", type=int, default=10, help="levels per side in the merged book (default 10)")
    p.add_argument(
        "--sim",
        action="store_true",
        help="run against the embedded venue simulator on loopback instead of the live venues",
    )
    p.add_argument(
        "--sim-period",
        type=float,
        default=None,
        metavar="S",
        help="with --sim: publish period of every simulated venue in seconds",
    )
    p.add_argument(
        "--endpoint",
        action="append",
        default=[],
        metavar="VENUE=URL",
        help="WebSocket endpoint of a venue (ws:// or wss://); repeatable; with --sim the "
        "simulator serves only the venues not overridden",
    )
    p.add_argument(
        "--rest-endpoint",
        action="append",
        default=[],
        metavar="VENUE=URL",
        help="REST base URL of a venue (default: the live one, or the host of --endpoint)",
    )
    p.add_argument(
        "--channel",
        action="append",
        default=[],
        metavar="[VENUE=]KIND",
        help="book channel: 'snapshot' (the venue's top-N snapshots, read lazily) or 'diff' (an exact "
        "book from incremental updates); for every venue, or VENUE=KIND for one; repeatable "
        "(default: each venue's own default)",
    )
    p.add_argument("--ca-file", default=None, help="trust this CA/certificate for wss:// and https://")
    p.add_argument(
        "--start-timeout",
        type=float,
        default=15.0,
        metavar="S",
        help="seconds to wait for the venues to accept the subscription (default 15)",
    )
    p.add_argument(
        "--queue",
        type=int,
        default=DEFAULT_QUEUE,
        metavar="N",
        help=f"updates queued per subscriber at most (default {DEFAULT_QUEUE}); 1: only ever the newest",
    )
    p.add_argument(
        "--max-lag-ms",
        type=float,
        default=DEFAULT_MAX_LAG_MS,
        metavar="MS",
        help="a subscriber gets every update while it reads within MS of it; one further behind "
        f"skips ahead to updates at most MS old (default {DEFAULT_MAX_LAG_MS:g})",
    )
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    return p


def _pairs(values: list[str], option: str, schemes: tuple[str, ...]) -> dict[str, str]:
    out: dict[str, str] = {}
    for value in values:
        venue, sep, url = value.partition("=")
        parts = urlsplit(url.strip())
        if not sep or not venue.strip() or parts.scheme not in schemes or not parts.hostname:
            raise ConfigError(
                f"{option} expects VENUE=URL with a {' or '.join(s + '://' for s in schemes)} URL, "
                f"got {value!r}"
            )
        try:
            parts.port  # noqa: B018 (validates the port number)
        except ValueError:
            raise ConfigError(f"{option}: bad port in {url!r}") from None
        out[get_venue(venue).name] = url.strip()
    return out


def parse_config(argv: list[str] | None = None) -> ServeConfig:
    """Parse and validate ``argv``; raise :class:`ConfigError` with one clear line."""
    args = build_parser().parse_args(argv)
    venues = [get_venue(v).name for v in args.venues.split(",") if v.strip()]
    if not venues:
        raise ConfigError("--venues names no venue")
    if len(set(venues)) != len(venues):
        raise ConfigError(f"--venues lists a venue twice: {args.venues}")
    endpoints = _pairs(args.endpoint, "--endpoint", ("ws", "wss"))
    rest = _pairs(args.rest_endpoint, "--rest-endpoint", ("http", "https"))
    for name in [*endpoints, *rest]:
        if name not in venues:
            raise ConfigError(f"an endpoint is given for {name}, which is not in --venues")
    if args.sim:
        from dragonfly.sim.instruments import VENUES as SIMULATED

        missing = [v for v in venues if v not in endpoints and v not in SIMULATED]
        if missing:
            raise ConfigError(
                f"the simulator serves {', '.join(SIMULATED)}; give --endpoint for {', '.join(missing)}"
            )
    channels: dict[str, str] = {}
    for value in args.channel:
        venue, sep, kind = value.rpartition("=")
        kind = kind.strip().lower()
        if kind not in ("snapshot", "diff"):
            raise ConfigError(f"--channel expects snapshot or diff (optionally VENUE=KIND), got {value!r}")
        targets = [get_venue(venue).name] if sep else venues
        for name in targets:
            if name not in venues:
                raise ConfigError(f"--channel is given for {name}, which is not in --venues")
            channels[name] = kind
    if not 0 <= args.port <= 65535:
        raise ConfigError(f"--port must be 0..65535, got {args.port}")
    if args.sim_period is not None and args.sim_period <= 0:
        raise ConfigError("--sim-period must be positive")
    if args.queue < 1:
        raise ConfigError(f"--queue must be at least 1, got {args.queue}")
    if not args.max_lag_ms >= 0:  # also refuses nan
        raise ConfigError(f"--max-lag-ms must be >= 0, got {args.max_lag_ms}")
    return ServeConfig(
        instrument=normalise_instrument(args.instrument),
        venues=venues,
        host=args.host,
        port=args.port,
        depth=args.depth,
        sim=args.sim,
        endpoints=endpoints,
        rest_endpoints=rest,
        channels=channels,
        ca_file=args.ca_file,
        sim_period=args.sim_period,
        log_level=args.log_level,
        start_timeout=args.start_timeout,
        queue=args.queue,
        max_lag_ms=args.max_lag_ms,
    )
