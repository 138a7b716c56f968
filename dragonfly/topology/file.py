"""The topology file: venues, instruments, aggregators and services in one TOML file.

The file declares named parts by role, and each consumer lists its inputs
(a service the aggregators it exposes); the whole file is checked before
anything starts, and a problem is one line naming the key, the value and
what was expected, e.g. ``topology.toml: aggregators.liq.depth: expected an
integer from 1 to 5000, got 0``. The same graph can be built in code
(:class:`~dragonfly.topology.hub.Hub` with
:class:`~dragonfly.topology.hub.AggregatorSpec`); the file is read into
exactly those objects. See ``examples/*.toml`` and the README.

Keys (every one optional except ``instruments``)::

    instruments = ["ethbtc", "btcusdt"]      # the first is the seed API's
    sim = false                              # serve from the embedded simulator
    sim_period = 0.1  log_level = "info"  start_timeout = 15  max_deviation = 10  (percent)
    ca_file = "ca.pem"
    metrics_port = 9108  metrics_host = "127.0.0.1"      # Prometheus /metrics (default: none)

    [venues.binance]                         # the venues, in file order
    channel = "snapshot" | "diff"
    endpoint = "wss://..."   rest_endpoint = "https://..."   stale_after = 3.0

    [venues.upstream]                        # a FIX 4.4 venue, named as you like (docs/fix.md)
    kind = "fix"
    endpoint = "fix://127.0.0.1:9878"        # fixs:// for TLS
    sender_comp_id = "DRAGONFLY-FEED"  target_comp_id = "DRAGONFLY"  heartbeat = 5
    username = ".."  password_file = ".."  market_depth = 0  stale_after = 10
    symbols = { ethbtc = "ETH/BTC" }         # Symbol (55) where it is not the instrument name

    [aggregators.NAME]
    kind = "book" | "bbo" | "liquidity"
    instruments = [...]  venues = [...]      # default: all
    depth = 10                               # book: levels a side; liquidity: levels read per venue
    bands_bps = [10, 25, 50, 100]  quantities = [1, 10]      # liquidity
    min_interval_ms = 50                     # at most a view per 50 ms (default: 0; liquidity 50)

    [services.NAME]
    kind = "grpc"
    host = "127.0.0.1"  port = 50051
    inputs = ["NAME", ...]                   # the aggregators it exposes (default: all)
    queue = 64  max_lag_ms = 1  tls_cert = ".."  tls_key = ".."  token_file = ".."
    max_streams = 1024  max_streams_per_connection = 100
    write_timeout = 10  handshake_timeout = 10  idle_timeout = 600

    [services.NAME]                          # a FIX 4.4 market-data gateway (docs/fix.md)
    kind = "fix"
    host = "127.0.0.1"  port = 9878
    inputs = ["NAME", ...]                   # the aggregators it exposes (default: all)
    comp_id = "DRAGONFLY"  accept_comp_ids = ["DESK1"]   # default: any client CompID
    heartbeat_min = 1  heartbeat_max = 300   # the HeartBtInt a client may ask for, seconds
    username = ".."  password_file = ".."    # required in Logon when given
    max_sessions = 256  max_subscriptions = 100  snapshot_rate = 20
"""

from __future__ import annotations

import itertools
import math
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from dragonfly.core.errors import ConfigError
from dragonfly.core.liquidity import DEFAULT_BANDS_BPS
from dragonfly.core.symbols import normalise_instrument
from dragonfly.core.types import MAX_DEPTH
from dragonfly.core.views import KINDS
from dragonfly.fix.venue import DEFAULT_HEARTBEAT, DEFAULT_SENDER, DEFAULT_TARGET, FixVenue, parse_endpoint
from dragonfly.topology.hub import AggregatorSpec

T = TypeVar("T")

#: Service kinds a file may name.
SERVICE_KINDS = ("grpc", "fix")


@dataclass
class VenueEntry:
    """One ``[venues.NAME]`` table."""

    name: str
    channel: str | None = None
    endpoint: str | None = None
    rest_endpoint: str | None = None
    stale_after: float | None = None
    #: A FIX venue's settings (``kind = "fix"``; its endpoint is there, not in ``endpoint``).
    fix: FixVenue | None = None
    #: A FIX venue's Logon password file (read when the server's config is built).
    password_file: str | None = None


@dataclass
class ServiceEntry:
    """One ``[services.NAME]`` table (values not given stay ``None``: the server's defaults)."""

    name: str
    kind: str = "grpc"
    inputs: tuple[str, ...] = ()
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class TopologyFile:
    """A topology file as read and checked."""

    path: str
    instruments: list[str]
    venues: list[VenueEntry]
    aggregators: list[AggregatorSpec]
    services: list[ServiceEntry]
    #: Top-level server options (``sim``, ``log_level``, ...), by their flag's name.
    options: dict[str, Any] = field(default_factory=dict)


class _Reader:
    """Typed access to a TOML table that names the full key in every error."""

    def __init__(self, path: str, where: str, table: object) -> None:
        self.path = path
        self.where = where
        if not isinstance(table, dict):
            raise self.error("", "a table", table)
        self.table: dict[str, Any] = table

    def error(self, key: str, expected: str, value: object) -> ConfigError:
        full = ".".join(p for p in (self.where, key) if p) or "(top level)"
        return ConfigError(f"{self.path}: {full}: expected {expected}, got {_show(value)}")

    def only(self, keys: tuple[str, ...]) -> None:
        for key in self.table:
            if key not in keys:
                full = ".".join(p for p in (self.where, key) if p)
                raise ConfigError(f"{self.path}: {full}: unknown key (expected one of {', '.join(keys)})")

    def get(self, key: str, check: Callable[[object], T | None], expected: str) -> T | None:
        if key not in self.table:
            return None
        value = self.table[key]
        checked = check(value)
        if checked is None:
            raise self.error(key, expected, value)
        return checked

    def text(self, key: str, choices: tuple[str, ...] | None = None) -> str | None:
        expected = f"one of {', '.join(repr(c) for c in choices)}" if choices else "a string"
        return self.get(key, lambda v: v if isinstance(v, str) and (not choices or v in choices) else None,
                        expected)

    def integer(self, key: str, low: int, high: int) -> int | None:
        return self.get(
            key,
            lambda v: v if isinstance(v, int) and not isinstance(v, bool) and low <= v <= high else None,
            f"an integer from {low} to {high}",
        )

    def number(self, key: str, low: float, high: float, *, open_low: bool = True) -> float | None:
        def check(v: object) -> float | None:
            if isinstance(v, bool) or not isinstance(v, int | float):
                return None
            x = float(v)
            ok = math.isfinite(x) and (low < x if open_low else low <= x) and x <= high
            return x if ok else None

        bound = f"{'>' if open_low else '>='} {low:g} and <= {high:g}"
        return self.get(key, check, f"a number {bound}")

    def flag(self, key: str) -> bool | None:
        return self.get(key, lambda v: v if isinstance(v, bool) else None, "true or false")

    def strings(self, key: str) -> list[str] | None:
        return self.get(
            key,
            lambda v: list(v) if isinstance(v, list) and all(isinstance(x, str) for x in v) else None,
            "a list of strings",
        )

    def numbers(self, key: str) -> list[float] | None:
        return self.get(
            key,
            lambda v: [float(x) for x in v]
            if isinstance(v, list) and all(isinstance(x, int | float) and not isinstance(x, bool) for x in v)
            else None,
            "a list of numbers",
        )

    def tables_of_text(self, key: str) -> dict[str, str]:
        """An inline table of strings (``symbols = { ethbtc = "ETH/BTC" }``), empty if absent."""
        value = self.table.get(key, {})
        if not isinstance(value, dict) or not all(isinstance(v, str) and v for v in value.values()):
            raise self.error(key, 'a table of strings like { ethbtc = "ETH/BTC" }', value)
        return value

    def tables(self, key: str) -> dict[str, Any]:
        value = self.table.get(key, {})
        if not isinstance(value, dict) or not all(isinstance(v, dict) for v in value.values()):
            raise self.error(key, f"tables like [{key}.NAME]", value)
        return value


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


_TOP = ("instruments", "sim", "sim_period", "log_level", "start_timeout", "max_deviation", "ca_file",
        "metrics_port", "metrics_host", "log_format", "venues", "aggregators", "services")
_VENUE = ("kind", "channel", "endpoint", "rest_endpoint", "stale_after")
_FIX_VENUE = ("kind", "channel", "endpoint", "stale_after", "sender_comp_id", "target_comp_id", "heartbeat",
              "username", "password_file", "market_depth", "symbols")
_AGGREGATOR = ("kind", "instruments", "venues", "depth", "bands_bps", "quantities", "min_interval_ms")
_SERVICE = ("kind", "host", "port", "inputs", "queue", "max_lag_ms", "tls_cert", "tls_key", "token_file",
            "max_streams", "max_streams_per_connection", "write_timeout", "handshake_timeout", "idle_timeout")
_FIX_SERVICE = ("kind", "host", "port", "inputs", "comp_id", "accept_comp_ids", "heartbeat_min",
                "heartbeat_max", "username", "password_file", "max_sessions", "max_subscriptions",
                "snapshot_rate")


def load_topology(path: str | Path) -> TopologyFile:
    """Read and check the topology file at ``path``; :class:`ConfigError` names what is wrong."""
    name = str(path)
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{name}: no such topology file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{name}: cannot read it: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{name}: not valid TOML: {exc}") from None
    return parse_topology(data, name, base=Path(path).resolve().parent)


def parse_topology(
    data: Mapping[str, Any], path: str = "<topology>", base: Path | None = None
) -> TopologyFile:
    """Check a parsed topology document (see the module doc for the keys).

    File names in it (``ca_file``, ``tls_cert``, ``tls_key``, ``token_file``)
    are relative to ``base`` (the file's folder), like any config file's.
    """
    top = _Reader(path, "", dict(data))
    top.only(_TOP)
    raw_instruments = top.strings("instruments")
    if not raw_instruments:
        raise top.error("instruments", "a non-empty list of instruments like [\"ethbtc\"]",
                        top.table.get("instruments"))
    instruments = []
    for text in raw_instruments:
        try:
            instruments.append(normalise_instrument(text))
        except ConfigError:
            raise top.error("instruments", "instruments like 'ethbtc' or 'ETH/BTC'", text) from None
    if len(set(instruments)) != len(instruments):
        raise top.error("instruments", "each instrument once", raw_instruments)
    options: dict[str, Any] = {}
    for key, value in (
        ("sim", top.flag("sim")),
        ("sim_period", top.number("sim_period", 0, 3600)),
        ("log_level", top.text("log_level", ("debug", "info", "warning", "error"))),
        ("start_timeout", top.number("start_timeout", 0, 3600)),
        ("max_deviation", top.number("max_deviation", 0, 9999, open_low=False)),
        ("ca_file", _file(top.text("ca_file"), base)),
        ("metrics_port", top.integer("metrics_port", 0, 65535)),
        ("metrics_host", top.text("metrics_host")),
        ("log_format", top.text("log_format", ("text", "json"))),
    ):
        if value is not None:
            options[key] = value
    from dragonfly.venues import VENUES

    venues = []
    for venue, table in top.tables("venues").items():
        r = _Reader(path, f"venues.{venue}", table)
        if r.text("kind", ("fix",)) == "fix":
            venues.append(_fix_venue(r, venue, base))
            continue
        if venue not in VENUES:
            raise ConfigError(
                f"{path}: venues.{venue}: unknown venue (known: {', '.join(sorted(VENUES))}; "
                "or kind = \"fix\" for a FIX venue)"
            )
        r.only(_VENUE)
        endpoint = r.text("endpoint")
        if endpoint is not None and not endpoint.startswith(("ws://", "wss://")):
            raise r.error("endpoint", "a ws:// or wss:// URL", endpoint)
        rest = r.text("rest_endpoint")
        if rest is not None and not rest.startswith(("http://", "https://")):
            raise r.error("rest_endpoint", "an http:// or https:// URL", rest)
        venues.append(
            VenueEntry(venue, r.text("channel", ("snapshot", "diff")), endpoint, rest,
                       r.number("stale_after", 0, 86400))
        )
    aggregators = []
    for agg, table in top.tables("aggregators").items():
        r = _Reader(path, f"aggregators.{agg}", table)
        r.only(_AGGREGATOR)
        kind = r.text("kind", KINDS)
        if kind is None:
            raise r.error("kind", f"one of {', '.join(repr(k) for k in KINDS)}", None)
        aggregators.append(
            AggregatorSpec(
                agg,
                kind,
                tuple(_instrument_list(r, "instruments", instruments)),
                tuple(_venue_list(r, venues)),
                r.integer("depth", 1, MAX_DEPTH) or (100 if kind == "liquidity" else 10),
                tuple(_positive_increasing(r, "bands_bps") or DEFAULT_BANDS_BPS),
                tuple(_positive(r, "quantities") or ()),
                r.number("min_interval_ms", 0, 60_000, open_low=False),
            )
        )
    services = []
    agg_names = [a.name for a in aggregators]
    for svc, table in top.tables("services").items():
        r = _Reader(path, f"services.{svc}", table)
        kind = r.text("kind", SERVICE_KINDS) or "grpc"
        r.only(_FIX_SERVICE if kind == "fix" else _SERVICE)
        inputs = r.strings("inputs") or []
        for item in inputs:
            if item not in agg_names:
                raise r.error("inputs", f"names of [aggregators] ({', '.join(agg_names) or 'none declared'})",
                              item)
        service_options: dict[str, Any] = {}
        if kind == "fix":
            services.append(ServiceEntry(svc, kind, tuple(inputs), _fix_service(r, base)))
            continue
        for key, value in (
            ("host", r.text("host")),
            ("port", r.integer("port", 0, 65535)),
            ("queue", r.integer("queue", 1, 1_000_000)),
            ("max_lag_ms", r.number("max_lag_ms", 0, 3_600_000, open_low=False)),
            ("tls_cert", _file(r.text("tls_cert"), base)),
            ("tls_key", _file(r.text("tls_key"), base)),
            ("token_file", _file(r.text("token_file"), base)),
            ("max_streams", r.integer("max_streams", 1, 1_000_000)),
            ("max_streams_per_connection", r.integer("max_streams_per_connection", 1, 1_000_000)),
            ("write_timeout", r.number("write_timeout", 0, 86400)),
            ("handshake_timeout", r.number("handshake_timeout", 0, 86400)),
            ("idle_timeout", r.number("idle_timeout", 0, 86400 * 30)),
        ):
            if value is not None:
                service_options[key] = value
        services.append(ServiceEntry(svc, kind, tuple(inputs), service_options))
    return TopologyFile(path, instruments, venues, aggregators, services, options)


def _fix_service(r: _Reader, base: Path | None) -> dict[str, Any]:
    """The options of one ``[services.NAME] kind = "fix"`` table (checked further by the server's config)."""
    options: dict[str, Any] = {}
    for key, value in (
        ("host", r.text("host")),
        ("port", r.integer("port", 0, 65535)),
        ("comp_id", r.text("comp_id")),
        ("accept_comp_ids", r.strings("accept_comp_ids")),
        ("heartbeat_min", r.integer("heartbeat_min", 1, 3600)),
        ("heartbeat_max", r.integer("heartbeat_max", 1, 3600)),
        ("username", r.text("username")),
        ("password_file", _file(r.text("password_file"), base)),
        ("max_sessions", r.integer("max_sessions", 1, 100_000)),
        ("max_subscriptions", r.integer("max_subscriptions", 1, 100_000)),
        ("snapshot_rate", r.integer("snapshot_rate", 1, 100_000)),
    ):
        if value is not None:
            options[key] = value
    return options


def _fix_venue(r: _Reader, name: str, base: Path | None) -> VenueEntry:
    """One ``[venues.NAME] kind = "fix"`` table (docs/fix.md)."""
    from dragonfly.venues import VENUES

    where = f"{r.path}: venues.{name}"
    if name in VENUES:
        raise ConfigError(f"{where}: {name} is a built-in venue; name the FIX venue otherwise")
    if not re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,31}", name):
        raise ConfigError(f"{where}: a FIX venue's name is lower-case letters, digits, '-' and '_'")
    r.only(_FIX_VENUE)
    endpoint = r.text("endpoint")
    try:
        if endpoint is None:
            raise ConfigError("missing")
        parse_endpoint(endpoint)
    except ConfigError:
        raise r.error("endpoint", "fix://host:port (or fixs://host:port)", endpoint) from None
    r.text("channel", ("snapshot",))
    symbols = r.tables_of_text("symbols")
    heartbeat = r.integer("heartbeat", 1, 3600)
    depth = r.integer("market_depth", 0, MAX_DEPTH)
    try:
        fix = FixVenue(
            name,
            endpoint,
            sender_comp_id=r.text("sender_comp_id") or DEFAULT_SENDER,
            target_comp_id=r.text("target_comp_id") or DEFAULT_TARGET,
            heartbeat=DEFAULT_HEARTBEAT if heartbeat is None else heartbeat,
            username=r.text("username"),
            market_depth=depth or 0,
            symbols={normalise_instrument(k): v for k, v in symbols.items()},
        )
    except ConfigError as exc:
        raise ConfigError(f"{where}.{exc}") from None
    return VenueEntry(name, None, None, None, r.number("stale_after", 0, 86400), fix,
                      _file(r.text("password_file"), base))


def _file(name: str | None, base: Path | None) -> str | None:
    """``name`` relative to ``base`` unless absolute (``None`` stays ``None``)."""
    if name is None or base is None:
        return name
    return str(base / Path(name).expanduser())


def _instrument_list(r: _Reader, key: str, known: list[str]) -> list[str]:
    out = []
    for text in r.strings(key) or []:
        try:
            name = normalise_instrument(text)
        except ConfigError:
            raise r.error(key, "instruments like 'ethbtc'", text) from None
        if name not in known:
            raise r.error(key, f"instruments of the top-level list ({', '.join(known)})", text)
        out.append(name)
    return out


def _venue_list(r: _Reader, venues: list[VenueEntry]) -> list[str]:
    declared = [v.name for v in venues]
    out = r.strings("venues") or []
    for venue in out:
        if declared and venue not in declared:
            raise r.error("venues", f"venues of [venues] ({', '.join(declared)})", venue)
    return out


def _positive(r: _Reader, key: str) -> list[float] | None:
    values = r.numbers(key)
    if values is not None and not all(math.isfinite(v) and v > 0 for v in values):
        raise r.error(key, "positive numbers", values)
    return values


def _positive_increasing(r: _Reader, key: str) -> list[float] | None:
    values = _positive(r, key)
    if values is not None and (
        not values or any(b <= a for a, b in itertools.pairwise(values)) or values[-1] > 10_000
    ):
        raise r.error(key, "a non-empty list of basis points, increasing, at most 10000", values)
    return values
