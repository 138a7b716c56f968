"""Command-line configuration of the server: parsing and validation only."""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from dragonfly import __version__
from dragonfly.core.aggregator import MAX_DEVIATION
from dragonfly.core.errors import ConfigError
from dragonfly.core.symbols import normalise_instrument
from dragonfly.core.types import MAX_DEPTH, check_depth
from dragonfly.core.venue import VenueSpec
from dragonfly.fix.gateway import DEFAULT_COMP_ID, DEFAULT_FIX_PORT, FixGatewayConfig
from dragonfly.fix.venue import FixVenue, fix_venue_spec, parse_fix_venue
from dragonfly.serve.errors import ServeError
from dragonfly.serve.grpc_service import (
    DEFAULT_HOST,
    Limits,
    TlsKeyPair,
    check_token,
    load_tls_key_pair,
    read_token_file,
)
from dragonfly.topology.file import TopologyFile, load_topology
from dragonfly.topology.hub import AggregatorSpec
from dragonfly.venues import VENUES, get_venue

DEFAULT_VENUES = ("binance", "bitstamp")
DEFAULT_QUEUE = 64
DEFAULT_MAX_LAG_MS = 1.0
#: The environment variable that holds the bearer token (``--token-file`` wins over it).
TOKEN_ENV = "DRAGONFLY_TOKEN"
_LIMITS = Limits()


@dataclass
class ExtraService:
    """A service of the topology file beyond the first: its address, inputs and own options."""

    name: str
    host: str
    port: int
    inputs: tuple[str, ...]
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class ServeConfig:
    """Everything ``python -m dragonfly.serve`` was asked to do (flags over the topology file).

    The top-level serving options (host, port, queue, lock-down) are the
    first service's; ``services`` holds the file's other services.
    """

    instruments: list[str]
    venues: list[str]
    host: str = DEFAULT_HOST
    port: int = 50051
    depth: int = 10
    sim: bool = False
    endpoints: dict[str, str] = field(default_factory=dict)
    rest_endpoints: dict[str, str] = field(default_factory=dict)
    channels: dict[str, str] = field(default_factory=dict)
    ca_file: str | None = None
    sim_period: float | None = None
    log_level: str = "info"
    #: ``text`` or ``json`` (dragonfly.serve.logjson).
    log_format: str = "text"
    start_timeout: float = 15.0
    #: Per-subscriber queue: at most ``queue`` updates, none older than ``max_lag_ms``
    #: once a newer one is queued (see :class:`~dragonfly.core.fanout.Subscription`).
    queue: int = DEFAULT_QUEUE
    max_lag_ms: float = DEFAULT_MAX_LAG_MS
    #: Per-venue overrides of the channels' freshness limits, seconds (dragonfly.core.health).
    stale_after: dict[str, float] = field(default_factory=dict)
    #: The cross-venue sanity bound, a fraction (0: off); see dragonfly.core.aggregator.
    max_deviation: float = MAX_DEVIATION
    #: Lock-down (docs/serving.md). ``tls`` and ``token`` are what the files
    #: (or DRAGONFLY_TOKEN) held when parsed; SIGHUP re-reads the files.
    tls_cert: str | None = None
    tls_key: str | None = None
    tls: TlsKeyPair | None = field(default=None, repr=False)
    token_file: str | None = None
    token: str | None = field(default=None, repr=False)
    #: Where ``token`` came from, for the log: "--token-file PATH" or "DRAGONFLY_TOKEN".
    token_source: str | None = None
    max_streams: int = _LIMITS.max_streams
    max_streams_per_connection: int = _LIMITS.max_streams_per_connection
    write_timeout: float = _LIMITS.write_timeout
    handshake_timeout: float = _LIMITS.handshake_timeout
    idle_timeout: float = _LIMITS.idle_timeout
    #: The aggregators to build (empty: one ``book`` of ``depth`` levels).
    aggregators: list[AggregatorSpec] = field(default_factory=list)
    #: The aggregators the first service exposes over dragonfly.v1 (empty: all).
    inputs: tuple[str, ...] = ()
    #: The topology file's other services, each a whole config (top-level options, then its own).
    services: list[ServeConfig] = field(default_factory=list)
    #: The topology file read, if any.
    config_file: str | None = None
    #: Serve Prometheus metrics on this port (``None``: no metrics), on ``metrics_host``.
    metrics_port: int | None = None
    metrics_host: str = DEFAULT_HOST
    #: The configured FIX venues by name (``--fix-venue``, ``[venues.NAME] kind = "fix"``); in ``venues`` too.
    fix_venues: dict[str, FixVenue] = field(default_factory=dict)
    #: The FIX gateways to run (``--fix-port``, ``[services.NAME] kind = "fix"``; docs/fix.md).
    fix_services: list[FixGatewayConfig] = field(default_factory=list)

    @property
    def instrument(self) -> str:
        """The first instrument: the one the seed API (BookSummary) streams."""
        return self.instruments[0]

    def aggregator_specs(self) -> list[AggregatorSpec]:
        """The aggregators to build: the file's (book depths set by ``--depth`` if given), or one book.

        Without a file, a FIX gateway also gets a ``bbo`` view (its MarketDepth 1:
        top of book); it costs nothing until a client asks for it.
        """
        if self.aggregators:
            return self.aggregators
        book = AggregatorSpec("book", "book", depth=self.depth)
        return [book, AggregatorSpec("bbo", "bbo")] if self.fix_services else [book]

    def venue_spec(self, name: str) -> VenueSpec:
        """The spec of venue ``name``: a configured FIX venue's, or the registry's."""
        fix = self.fix_venues.get(name)
        return fix_venue_spec(fix) if fix is not None else get_venue(name)

    def limits(self) -> Limits:
        """The stream caps and timeouts of the gRPC service."""
        return Limits(
            max_streams=self.max_streams,
            max_streams_per_connection=self.max_streams_per_connection,
            write_timeout=self.write_timeout,
            handshake_timeout=self.handshake_timeout,
            idle_timeout=self.idle_timeout,
        )

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
            "Serve cross-venue views of one or more instruments over gRPC: the merged top-N book of the "
            "first on orderbook.OrderbookAggregator/BookSummary, and books, BBO and liquidity of every "
            "instrument on dragonfly.v1.MarketData, with health checks, reflection and optional metrics."
        ),
    )
    p.add_argument(
        "instruments",
        nargs="*",
        metavar="INSTRUMENT",
        help="one or more instruments, e.g. ethbtc btcusdt (also ETH/BTC, eth-btc); the first is the one "
        "BookSummary streams (default: the --config file's)",
    )
    p.add_argument(
        "--config",
        default=None,
        metavar="TOML",
        help="a topology file (venues, instruments, aggregators, services; see examples/); "
        "flags override what it says",
    )
    p.add_argument(
        "--host",
        default=DEFAULT_HOST,
        help=f"gRPC listen address (default {DEFAULT_HOST}; 0.0.0.0 or :: for every interface)",
    )
    p.add_argument("--port", type=int, default=50051, help="gRPC listen port (default 50051)")
    p.add_argument(
        "--venues",
        default=None,
        help=f"comma-separated venues (default {','.join(DEFAULT_VENUES)}, or only the --fix-venue ones "
        f"when some are given; known: {','.join(sorted(VENUES))}, and the --fix-venue names)",
    )
    p.add_argument(
        "--depth",
        type=int,
        default=None,
        help=f"levels per side in the merged book, 1 to {MAX_DEPTH} (default 10; with --config: "
        "sets every book aggregator's depth)",
    )
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
    p.add_argument(
        "--fix-venue",
        action="append",
        default=[],
        metavar="NAME=fix://HOST:PORT",
        help="a venue that speaks FIX 4.4 market data (another dragonfly's --fix-port, say), named NAME in "
        "the merge; fixs:// for TLS; options after '?': sender=, target= (default DRAGONFLY), heartbeat= "
        "(s, default 5), username=, password_file=, depth= (MarketDepth, default 0: the full book); "
        "repeatable; see docs/fix.md",
    )
    p.add_argument("--ca-file", default=None, help="trust this CA/certificate for wss://, https:// and fixs://")
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
    p.add_argument(
        "--log-format",
        default="text",
        choices=["text", "json"],
        help="log lines as text, or one JSON object a line for log shippers (default text)",
    )
    p.add_argument(
        "--metrics-port",
        type=int,
        default=None,
        metavar="N",
        help="serve Prometheus metrics on http://METRICS-HOST:N/metrics (default: none)",
    )
    p.add_argument(
        "--metrics-host",
        default=DEFAULT_HOST,
        help=f"address of the metrics port (default {DEFAULT_HOST})",
    )
    trust = p.add_argument_group("freshness and sanity (see the README: 'Trust')")
    trust.add_argument(
        "--stale-after",
        action="append",
        default=[],
        metavar="[VENUE=]S",
        help="a venue's book leaves the merge once nothing proved it current for S seconds; for every "
        "venue, or VENUE=S for one; repeatable (default: each channel's own, from the venue's docs)",
    )
    trust.add_argument(
        "--max-deviation",
        type=float,
        default=MAX_DEVIATION * 100,
        metavar="PCT",
        help="flag a venue whose mid is more than PCT%% from the venues' median, and leave it out when "
        f"two venues agree (default {MAX_DEVIATION * 100:g}; 0: off)",
    )
    lock = p.add_argument_group("lock-down (see docs/serving.md; SIGHUP re-reads the TLS and token files)")
    lock.add_argument("--tls-cert", default=None, metavar="PEM", help="serve TLS with this certificate chain")
    lock.add_argument("--tls-key", default=None, metavar="PEM", help="the private key of --tls-cert")
    lock.add_argument(
        "--token-file",
        default=None,
        metavar="PATH",
        help=f"require the bearer token in this file on every call (or set {TOKEN_ENV}; "
        "the file wins if both are given)",
    )
    lock.add_argument(
        "--max-streams",
        type=int,
        default=_LIMITS.max_streams,
        metavar="N",
        help=f"open streams at most, all clients together (default {_LIMITS.max_streams})",
    )
    lock.add_argument(
        "--max-streams-per-connection",
        type=int,
        default=_LIMITS.max_streams_per_connection,
        metavar="N",
        help=f"open streams at most on one client connection (default {_LIMITS.max_streams_per_connection})",
    )
    lock.add_argument(
        "--write-timeout",
        type=float,
        default=_LIMITS.write_timeout,
        metavar="S",
        help="end a stream with DEADLINE_EXCEEDED when its client has not read for S seconds "
        f"(default {_LIMITS.write_timeout:g})",
    )
    lock.add_argument(
        "--handshake-timeout",
        type=float,
        default=_LIMITS.handshake_timeout,
        metavar="S",
        help="close a connection that has not completed its TLS/HTTP/2 handshake in S seconds "
        f"(default {_LIMITS.handshake_timeout:g})",
    )
    lock.add_argument(
        "--idle-timeout",
        type=float,
        default=_LIMITS.idle_timeout,
        metavar="S",
        help=f"close a connection without any stream for S seconds (default {_LIMITS.idle_timeout:g})",
    )
    fix = p.add_argument_group("FIX 4.4 market-data gateway (see docs/fix.md)")
    fix.add_argument(
        "--fix-port",
        type=int,
        default=None,
        metavar="N",
        help=f"serve FIX 4.4 market data on this port too (the usual one is {DEFAULT_FIX_PORT}; "
        "default: no FIX)",
    )
    fix.add_argument(
        "--fix-host",
        default=DEFAULT_HOST,
        metavar="HOST",
        help=f"listen address of --fix-port (default {DEFAULT_HOST})",
    )
    fix.add_argument(
        "--fix-comp-id",
        default=DEFAULT_COMP_ID,
        metavar="ID",
        help=f"the gateway's CompID: clients' TargetCompID (56) (default {DEFAULT_COMP_ID})",
    )
    fix.add_argument(
        "--fix-accept-comp-id",
        action="append",
        default=[],
        metavar="ID",
        help="accept Logon only from this SenderCompID (49); repeatable (default: any)",
    )
    fix.add_argument(
        "--fix-heartbeat-min",
        type=int,
        default=1,
        metavar="S",
        help="the shortest HeartBtInt (108) a client may ask for, seconds (default 1)",
    )
    fix.add_argument(
        "--fix-heartbeat-max",
        type=int,
        default=300,
        metavar="S",
        help="the longest HeartBtInt (108) a client may ask for, seconds (default 300)",
    )
    fix.add_argument(
        "--fix-username", default=None, metavar="NAME", help="require this Username (553) in Logon"
    )
    fix.add_argument(
        "--fix-password-file",
        default=None,
        metavar="PATH",
        help="require the Password (554) in this file (one line) in Logon",
    )
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return p


_FIX_FLAGS = ("fix_comp_id", "fix_accept_comp_id", "fix_heartbeat_min", "fix_heartbeat_max", "fix_username",
              "fix_password_file")
_COMP_ID_RE = re.compile(r"^[\x21-\x7e]{1,64}$")


def _fix_gateway(
    where: str, name: str, host: str, port: int, comp_id: str, accept: list[str], heartbeat: tuple[int, int],
    username: str | None, password_file: str | None, inputs: tuple[str, ...] = (), **limits: int,
) -> FixGatewayConfig:
    """One FIX gateway's config, checked; ``where`` (``--fix-`` or ``FILE: services.NAME.``) names the key."""

    def key(name: str) -> str:
        return where + (name.replace("_", "-") if where.startswith("--") else name)

    if not 0 <= port <= 65535:
        raise ConfigError(f"{key('port')} must be 0..65535, got {port}")
    accept_key = "accept_comp_id" if where.startswith("--") else "accept_comp_ids"
    for what, value in [("comp_id", comp_id), *((accept_key, a) for a in accept)]:
        if not _COMP_ID_RE.match(value):
            raise ConfigError(f"{key(what)}: expected 1 to 64 printable characters, no spaces, got {value!r}")
    low, high = heartbeat
    if not 1 <= low <= high <= 3600:
        raise ConfigError(
            f"{key('heartbeat_min')} and {key('heartbeat_max').rpartition(': ')[2]} must satisfy "
            "1 <= min <= max <= 3600, "
            f"got {low} and {high}"
        )
    if username is not None and not _COMP_ID_RE.match(username):
        raise ConfigError(f"{key('username')}: expected 1 to 64 printable characters, no spaces")
    password = _read_secret(password_file, key("password_file")) if password_file is not None else None
    return FixGatewayConfig(
        name=name, host=host, port=port, comp_id=comp_id, accept_comp_ids=tuple(accept), heartbeat_min=low,
        heartbeat_max=high, username=username, password=password, inputs=inputs, **limits,
    )


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


def _fix_venues(topo: TopologyFile | None, flags: list[str]) -> dict[str, FixVenue]:
    """The FIX venues of the topology file, then of ``--fix-venue`` (a flag wins over the file)."""
    out: dict[str, FixVenue] = {}
    for entry in topo.venues if topo is not None else ():
        if entry.fix is not None:
            fix = entry.fix
            if entry.password_file is not None:
                where = f"{topo.path if topo else ''}: venues.{entry.name}.password_file"
                fix = dataclasses.replace(fix, password=_read_secret(entry.password_file, where))
            out[fix.name] = fix
    for value in flags:
        fix = parse_fix_venue(value, lambda path: _read_secret(path, "--fix-venue password_file"))
        if fix.name in VENUES:
            raise ConfigError(f"--fix-venue {fix.name}: a built-in venue's name; name it otherwise")
        out[fix.name] = fix
    return out


def _read_secret(path: str, where: str) -> str:
    """The one-line secret in file ``path`` (a FIX Logon password), its newline stripped."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read().strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{where}: cannot read {path!r}: {exc}") from None
    if not text or "\n" in text or "\x01" in text:
        raise ConfigError(f"{where}: {path!r} must hold one non-empty line")
    return text


def _credentials(
    args: argparse.Namespace, environ: Mapping[str, str]
) -> tuple[TlsKeyPair | None, str | None, str | None]:
    """Load the TLS key pair and the token; return them and where the token came from."""
    if (args.tls_cert is None) != (args.tls_key is None):
        raise ConfigError("--tls-cert and --tls-key go together: give both or neither")
    env_token = environ.get(TOKEN_ENV)
    try:
        tls = load_tls_key_pair(args.tls_cert, args.tls_key) if args.tls_cert is not None else None
        if args.token_file is not None:
            ignored = f" ({TOKEN_ENV} ignored)" if env_token is not None else ""
            return tls, read_token_file(args.token_file), f"--token-file {args.token_file}{ignored}"
        if env_token is not None:
            return tls, check_token(env_token, TOKEN_ENV), TOKEN_ENV
    except ServeError as exc:
        raise ConfigError(str(exc)) from None
    return tls, None, None


def parse_config(argv: list[str] | None = None, environ: Mapping[str, str] | None = None) -> ServeConfig:
    """Parse and validate ``argv``; raise :class:`ConfigError` with one clear line.

    Every option can also come from ``environ`` (default: the process
    environment) as ``DRAGONFLY_<OPTION>`` (:func:`env_name`); a flag wins over
    the environment, which wins over the topology file. The bearer token
    comes from ``--token-file``, else from DRAGONFLY_TOKEN; files are read here.
    """
    parser = build_parser()
    env = _env_defaults(parser, os.environ if environ is None else environ)
    # Precedence: flag > environment > topology file > default. The file and
    # the environment become the parser's defaults, the file's first.
    parser.set_defaults(**env)
    args = parser.parse_args(argv)
    topo = load_topology(args.config) if args.config is not None else None
    if topo is not None:
        parser.set_defaults(**_file_defaults(topo, parser))
        parser.set_defaults(**env)
        args = parser.parse_args(argv)
    if not args.instruments:
        raise ConfigError("give at least one instrument (e.g. ethbtc), or --config with a topology file")
    fix_venues = _fix_venues(topo, args.fix_venue)

    def venue_name(text: str) -> str:
        name = text.strip().lower()
        return name if name in fix_venues else get_venue(name).name

    if args.venues is None:
        venues = list(fix_venues) if fix_venues else list(DEFAULT_VENUES)
    else:
        venues = [venue_name(v) for v in args.venues.split(",") if v.strip()]
        venues += [name for name in fix_venues if name not in venues]
    if not venues:
        raise ConfigError("--venues names no venue")
    if len(set(venues)) != len(venues):
        raise ConfigError(f"--venues lists a venue twice: {args.venues}")
    endpoints = _pairs(_chosen(topo, "endpoint", venues) + args.endpoint, "--endpoint", ("ws", "wss"))
    for name, fix in fix_venues.items():
        endpoints[name] = fix.endpoint
    rest = _pairs(
        _chosen(topo, "rest_endpoint", venues) + args.rest_endpoint, "--rest-endpoint", ("http", "https")
    )
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
    for value in _chosen(topo, "channel", venues) + args.channel:
        venue, sep, kind = value.rpartition("=")
        kind = kind.strip().lower()
        if kind not in ("snapshot", "diff"):
            raise ConfigError(f"--channel expects snapshot or diff (optionally VENUE=KIND), got {value!r}")
        # A FIX venue has its snapshot channel only: a channel for every venue leaves it be.
        targets = [venue_name(venue)] if sep else [v for v in venues if v not in fix_venues]
        for name in targets:
            if name not in venues:
                raise ConfigError(f"--channel is given for {name}, which is not in --venues")
            channels[name] = kind
    if not 0 <= args.port <= 65535:
        raise ConfigError(f"--port must be 0..65535, got {args.port}")
    if args.metrics_port is not None and not 0 <= args.metrics_port <= 65535:
        raise ConfigError(f"--metrics-port must be 0..65535, got {args.metrics_port}")
    if args.sim_period is not None and args.sim_period <= 0:
        raise ConfigError("--sim-period must be positive")
    depth = 10 if args.depth is None else check_depth(args.depth, "--depth")
    if args.queue < 1:
        raise ConfigError(f"--queue must be at least 1, got {args.queue}")
    if not args.max_lag_ms >= 0:  # also refuses nan
        raise ConfigError(f"--max-lag-ms must be >= 0, got {args.max_lag_ms}")
    for option in ("max_streams", "max_streams_per_connection"):
        if getattr(args, option) < 1:
            raise ConfigError(f"--{option.replace('_', '-')} must be at least 1, got {getattr(args, option)}")
    for option in ("write_timeout", "handshake_timeout", "idle_timeout"):
        if not getattr(args, option) > 0:  # also refuses nan
            raise ConfigError(f"--{option.replace('_', '-')} must be > 0, got {getattr(args, option)}")
    tls, token, token_source = _credentials(args, os.environ if environ is None else environ)
    stale_after: dict[str, float] = {}
    for value in _chosen(topo, "stale_after", venues) + args.stale_after:
        venue, sep, seconds = value.rpartition("=")
        try:
            limit = float(seconds)
        except ValueError:
            limit = float("nan")
        if not 0 < limit < 86400:  # also refuses nan
            raise ConfigError(f"--stale-after expects seconds in (0, 86400), or VENUE=S, got {value!r}")
        for name in [venue_name(venue)] if sep else venues:
            if name not in venues:
                raise ConfigError(f"--stale-after is given for {name}, which is not in --venues")
            stale_after[name] = limit
    if not 0 <= args.max_deviation < 10000:
        raise ConfigError(f"--max-deviation must be a percentage >= 0 (0: off), got {args.max_deviation}")
    instruments = [normalise_instrument(i) for i in args.instruments]
    if len(set(instruments)) != len(instruments):
        raise ConfigError(f"an instrument is given twice: {' '.join(args.instruments)}")
    aggregators, inputs, extras = _topology_parts(topo, instruments, venues, args.depth)
    cfg = ServeConfig(
        instruments=instruments,
        venues=venues,
        host=args.host,
        port=args.port,
        depth=depth,
        aggregators=aggregators,
        inputs=inputs,
        config_file=args.config,
        metrics_port=args.metrics_port,
        metrics_host=args.metrics_host,
        fix_venues={name: fix for name, fix in fix_venues.items() if name in venues},
        sim=args.sim,
        endpoints=endpoints,
        rest_endpoints=rest,
        channels=channels,
        ca_file=args.ca_file,
        sim_period=args.sim_period,
        log_level=args.log_level,
        log_format=args.log_format,
        start_timeout=args.start_timeout,
        queue=args.queue,
        max_lag_ms=args.max_lag_ms,
        stale_after=stale_after,
        max_deviation=args.max_deviation / 100,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        tls=tls,
        token_file=args.token_file,
        token=token,
        token_source=token_source,
        max_streams=args.max_streams,
        max_streams_per_connection=args.max_streams_per_connection,
        write_timeout=args.write_timeout,
        handshake_timeout=args.handshake_timeout,
        idle_timeout=args.idle_timeout,
    )
    cfg.services = [_extra_config(cfg, extra) for extra in extras]
    cfg.fix_services = _fix_services(topo, args)
    return cfg


def _fix_services(topo: TopologyFile | None, args: argparse.Namespace) -> list[FixGatewayConfig]:
    """The file's FIX services, then ``--fix-port``'s (its --fix-* flags apply to it only)."""
    out: list[FixGatewayConfig] = []
    for svc in topo.services if topo is not None else ():
        if svc.kind != "fix":
            continue
        o = svc.options
        limits = {k: o[k] for k in ("max_sessions", "max_subscriptions", "snapshot_rate") if k in o}
        out.append(
            _fix_gateway(
                f"{topo.path if topo else ''}: services.{svc.name}.",
                svc.name,
                o.get("host", DEFAULT_HOST),
                o.get("port", DEFAULT_FIX_PORT),
                o.get("comp_id", DEFAULT_COMP_ID),
                list(o.get("accept_comp_ids", ())),
                (o.get("heartbeat_min", 1), o.get("heartbeat_max", 300)),
                o.get("username"),
                o.get("password_file"),
                svc.inputs,
                **limits,
            )
        )
    if args.fix_port is None:
        defaults = build_parser()
        given = [f for f in _FIX_FLAGS if getattr(args, f) != defaults.get_default(f)]
        if given:
            flag = "--" + given[0].replace("_", "-")
            raise ConfigError(f"{flag} applies to the --fix-port gateway: give --fix-port too")
        return out
    out.append(
        _fix_gateway(
            "--fix-",
            "fix",
            args.fix_host,
            args.fix_port,
            args.fix_comp_id,
            args.fix_accept_comp_id,
            (args.fix_heartbeat_min, args.fix_heartbeat_max),
            args.fix_username,
            args.fix_password_file,
        )
    )
    return out


def _extra_config(cfg: ServeConfig, extra: ExtraService) -> ServeConfig:
    """The config of one more service: the top-level options, then its own (credentials loaded)."""
    out = dataclasses.replace(cfg, host=extra.host, port=extra.port, inputs=extra.inputs, services=[])
    for key, value in extra.options.items():
        setattr(out, key, value)
    where = f"services.{extra.name}"
    try:
        if "tls_cert" in extra.options or "tls_key" in extra.options:
            if out.tls_cert is None or out.tls_key is None:
                raise ConfigError(f"{where}: tls_cert and tls_key go together")
            out.tls = load_tls_key_pair(out.tls_cert, out.tls_key)
        if "token_file" in extra.options and out.token_file is not None:
            out.token = read_token_file(out.token_file)
            out.token_source = f"{where}.token_file {out.token_file}"
    except ServeError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    return out


#: Every option's environment variable is this prefix and the option in capitals.
ENV_PREFIX = "DRAGONFLY_"
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off", "")


def env_name(dest: str) -> str:
    """The environment variable of option ``dest``: ``port`` -> ``DRAGONFLY_PORT``."""
    return ENV_PREFIX + dest.upper()


def _env_defaults(parser: argparse.ArgumentParser, environ: Mapping[str, str]) -> dict[str, Any]:
    """The options the environment sets, converted and checked as their flags are."""
    out: dict[str, Any] = {}
    for action in parser._actions:
        if action.dest in ("help", "version"):
            continue
        name = env_name(action.dest)
        raw = environ.get(name)
        if raw is None:
            continue
        if isinstance(action, argparse._StoreTrueAction):
            flag = raw.strip().lower()
            if flag not in _TRUE + _FALSE:
                raise ConfigError(f"{name}: expected true or false (1 or 0), got {raw!r}")
            out[action.dest] = flag in _TRUE
        elif isinstance(action, argparse._AppendAction) or action.nargs == "*":
            out[action.dest] = [_env_value(action, name, item) for item in re.split(r"[,\s]+", raw) if item]
        else:
            out[action.dest] = _env_value(action, name, raw.strip())
    return out


def _env_value(action: argparse.Action, name: str, text: str) -> Any:
    value: Any = text
    if callable(action.type):
        try:
            value = action.type(text)
        except (ValueError, argparse.ArgumentTypeError):
            kind = getattr(action.type, "__name__", "value")
            what = {"int": "an integer", "float": "a number"}.get(kind, f"a {kind}")
            raise ConfigError(f"{name}: expected {what}, got {text!r}") from None
    if action.choices is not None and value not in action.choices:
        raise ConfigError(f"{name}: expected one of {', '.join(map(str, action.choices))}, got {text!r}")
    return value


def _file_defaults(topo: TopologyFile, parser: argparse.ArgumentParser) -> dict[str, Any]:
    """The parser defaults a topology file sets (its per-venue lists are merged in parse_config)."""
    out: dict[str, Any] = {"instruments": list(topo.instruments)}
    if topo.venues:
        out["venues"] = ",".join(v.name for v in topo.venues)
    out.update(topo.options)
    grpc_services = [svc for svc in topo.services if svc.kind == "grpc"]
    if grpc_services:
        out.update(grpc_services[0].options)
    known = {action.dest for action in parser._actions}
    return {k: v for k, v in out.items() if k in known}


def _chosen(topo: TopologyFile | None, key: str, venues: list[str]) -> list[str]:
    """The file's ``VENUE=VALUE`` entries of ``key`` for the venues in use (flags come after: they win)."""
    if topo is None:
        return []
    out = []
    for entry in topo.venues:
        value = getattr(entry, key)
        if value is not None and entry.name in venues:
            out.append(f"{entry.name}={value}")
    return out


def _topology_parts(
    topo: TopologyFile | None, instruments: list[str], venues: list[str], depth: int | None
) -> tuple[list[AggregatorSpec], tuple[str, ...], list[ExtraService]]:
    """The file's aggregators and services, checked against the instruments and venues in use."""
    if topo is None:
        return [], (), []
    aggregators = []
    for spec in topo.aggregators:
        missing = [i for i in spec.instruments if i not in instruments]
        if missing:
            raise ConfigError(
                f"{topo.path}: aggregators.{spec.name}.instruments: {', '.join(missing)} is not among the "
                f"instruments served ({', '.join(instruments)})"
            )
        absent = [v for v in spec.venues if v not in venues]
        if absent:
            raise ConfigError(
                f"{topo.path}: aggregators.{spec.name}.venues: {', '.join(absent)} is not among the venues "
                f"in use ({', '.join(venues)})"
            )
        if depth is not None and spec.kind == "book":
            spec = dataclasses.replace(spec, depth=check_depth(depth, "--depth"))
        aggregators.append(spec)
    grpc_services = [svc for svc in topo.services if svc.kind == "grpc"]
    inputs = grpc_services[0].inputs if grpc_services else ()
    services = [
        ExtraService(
            svc.name,
            svc.options.get("host", DEFAULT_HOST),
            svc.options.get("port", 50051),
            svc.inputs,
            {k: v for k, v in svc.options.items() if k not in ("host", "port")},
        )
        for svc in grpc_services[1:]
    ]
    return aggregators, inputs, services
