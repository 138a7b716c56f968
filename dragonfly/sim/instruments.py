"""The instruments the simulator lists and how each venue quotes them.

Prices and amounts are kept as integers: a price is a count of ticks and an
amount a count of lots, and each venue prints them with a fixed number of
decimals. Integer units make every printed value exact and every parsed
value identical to what the market holds.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

#: Venues the simulator can serve, in a fixed order.
VENUES: tuple[str, ...] = ("binance", "bitstamp", "kraken", "okx", "coinbase", "bybit")

#: Venues served when none are named (the Simulator's and the CLI's default).
DEFAULT_VENUES: tuple[str, ...] = ("binance", "bitstamp")

#: Instruments listed when none are given.
DEFAULT_INSTRUMENTS: tuple[str, ...] = ("ethbtc", "btcusdt", "ethusdt")

# Quote currencies recognised when splitting an unknown name, longest first.
_QUOTES: tuple[str, ...] = ("usdt", "usdc", "fdusd", "usd", "eur", "gbp", "btc", "eth")
_NAME = re.compile(r"^[a-z0-9]{4,20}$")


def pow10(exponent: int) -> int:
    """Return ``10**exponent`` as an int (``exponent >= 0``)."""
    return int(10**exponent)


@dataclass(frozen=True)
class VenueStyle:
    """How a venue prints and spaces its book, relative to price."""

    bias_bps: float  # static offset of this venue's mid from the market mid
    noise_bps: float  # stdev of the venue's wandering offset around its bias
    spread_bps: float  # typical touch spread
    gap_bps: float  # typical distance between adjacent levels


STYLES: dict[str, VenueStyle] = {
    "binance": VenueStyle(bias_bps=0.0, noise_bps=0.25, spread_bps=0.2, gap_bps=0.3),
    "bitstamp": VenueStyle(bias_bps=0.4, noise_bps=0.25, spread_bps=1.5, gap_bps=0.8),
    "kraken": VenueStyle(bias_bps=-0.3, noise_bps=0.3, spread_bps=1.0, gap_bps=0.6),
    "okx": VenueStyle(bias_bps=0.1, noise_bps=0.25, spread_bps=0.3, gap_bps=0.4),
    "coinbase": VenueStyle(bias_bps=-0.2, noise_bps=0.3, spread_bps=0.8, gap_bps=0.5),
    "bybit": VenueStyle(bias_bps=0.2, noise_bps=0.25, spread_bps=0.4, gap_bps=0.4),
}


@dataclass(frozen=True)
class SymbolStyle:
    """How a venue spells an instrument: ``BASE<sep>QUOTE``, upper case, some assets renamed."""

    sep: str
    aliases: tuple[tuple[str, str], ...] = ()
    lower: bool = False

    def spell(self, base: str, quote: str) -> str:
        """Return the venue's symbol of ``base``/``quote`` (upper-case assets given)."""
        names = dict(self.aliases)
        text = f"{names.get(base, base)}{self.sep}{names.get(quote, quote)}"
        return text.lower() if self.lower else text


#: Each venue's symbol spelling, as its WebSocket book channel names an instrument
#: (the client's ``VenueSpec.symbol``): Binance ``ETHBTC`` (``ethbtc`` in stream
#: names), Bitstamp ``ethbtc``, Kraken v1 ``ETH/XBT``, OKX and Coinbase ``ETH-BTC``,
#: Bybit ``ETHBTC``.
SYMBOLS: dict[str, SymbolStyle] = {
    "binance": SymbolStyle(""),
    "bitstamp": SymbolStyle("", lower=True),
    "kraken": SymbolStyle("/", (("BTC", "XBT"), ("DOGE", "XDG"))),
    "okx": SymbolStyle("-"),
    "coinbase": SymbolStyle("-"),
    "bybit": SymbolStyle(""),
}


@dataclass(frozen=True)
class VenueSpec:
    """One venue's quoting of one instrument, in integer units.

    ``tick_units`` is the tick in units of ``10**-price_decimals`` and
    ``lot_units`` the amount step in units of ``10**-amount_decimals``.
    """

    price_decimals: int
    tick_units: int
    amount_decimals: int
    lot_units: int
    spread_ticks: int
    gap_ticks: int
    #: Print values without trailing zeros (OKX: ``"30261"``, ``"0.059"``), else with
    #: every decimal (``"0.05000000"``).
    trim: bool = False

    @property
    def tick(self) -> float:
        """Return the tick size as a float."""
        return self.tick_units / pow10(self.price_decimals)

    @property
    def lot(self) -> float:
        """Return the amount step as a float."""
        return self.lot_units / pow10(self.amount_decimals)


@dataclass(frozen=True)
class Instrument:
    """A listed instrument: its canonical name, assets, base mid and venue specs."""

    name: str  # lowercase, e.g. "ethbtc"
    base: str  # e.g. "ETH"
    quote: str  # e.g. "BTC"
    mid: float  # where the random walk starts
    size: float  # typical level amount in base units
    specs: dict[str, VenueSpec]


# name -> (base, quote, mid, size, {venue: (price_decimals, tick, amount_decimals, step)})
_Quoting = tuple[int, float, int, float]
_BUILTIN: dict[str, tuple[str, str, float, float, dict[str, _Quoting]]] = {
    "ethbtc": (
        "ETH", "BTC", 0.05, 2.0,
        {"binance": (8, 1e-5, 8, 1e-4), "bitstamp": (8, 1e-8, 8, 1e-8), "kraken": (5, 1e-5, 8, 1e-8),
         "okx": (5, 1e-5, 6, 1e-6), "coinbase": (5, 1e-5, 8, 1e-8), "bybit": (6, 1e-6, 4, 1e-4)},
    ),
    "btcusdt": (
        "BTC", "USDT", 60000.0, 0.3,
        {"binance": (8, 1e-2, 8, 1e-5), "bitstamp": (2, 1e-2, 8, 1e-8), "kraken": (1, 1e-1, 8, 1e-8),
         "okx": (1, 1e-1, 8, 1e-8), "coinbase": (2, 1e-2, 8, 1e-8), "bybit": (2, 1e-2, 6, 1e-6)},
    ),
    "ethusdt": (
        "ETH", "USDT", 3000.0, 3.0,
        {"binance": (8, 1e-2, 8, 1e-4), "bitstamp": (2, 1e-2, 8, 1e-8), "kraken": (2, 1e-2, 8, 1e-8),
         "okx": (2, 1e-2, 6, 1e-6), "coinbase": (2, 1e-2, 8, 1e-8), "bybit": (2, 1e-2, 5, 1e-5)},
    ),
}
_FALLBACK_MID: dict[str, float] = {"btc": 0.001, "eth": 0.01}
#: Venues that print prices and amounts without trailing zeros.
_TRIMMED = frozenset({"okx"})


def _units(value: float, decimals: int) -> int:
    """Return ``value`` in units of ``10**-decimals`` (at least one unit)."""
    return max(1, round(value * pow10(decimals)))


def _spec(venue: str, mid: float, quoting: _Quoting) -> VenueSpec:
    price_decimals, tick, amount_decimals, step = quoting
    style = STYLES[venue]
    tick_units = _units(tick, price_decimals)
    real_tick = tick_units / pow10(price_decimals)
    # At least one tick of spread and gap, so a side never crosses itself.
    spread = max(1, round(mid * style.spread_bps * 1e-4 / real_tick))
    gap = max(1, round(mid * style.gap_bps * 1e-4 / real_tick))
    return VenueSpec(
        price_decimals, tick_units, amount_decimals, _units(step, amount_decimals), spread, gap,
        trim=venue in _TRIMMED,
    )


def _fallback_quoting(venue: str, mid: float) -> _Quoting:
    """Quote an instrument the table does not know: ~0.1 bp ticks, 8-decimal amounts."""
    exponent = math.floor(math.log10(mid)) - 5
    if venue == "binance":
        return (8, 10.0 ** max(exponent, -8), 8, 1e-4)
    decimals = min(8, max(0, -exponent))
    return (decimals, 10.0**-decimals, 8, 1e-8)


def split_name(name: str) -> tuple[str, str] | None:
    """Split ``name`` into (base, quote) by a known quote suffix, or return None."""
    for quote in _QUOTES:
        if name.endswith(quote) and len(name) > len(quote) + 1:
            return name[: -len(quote)], quote
    return None


def make_instrument(name: str) -> Instrument:
    """Return the instrument ``name`` from the built-in table or a generic fallback.

    Raise ValueError for a name that is not lowercase alphanumerics or has no
    recognisable quote currency.
    """
    if not _NAME.match(name):
        raise ValueError(f"invalid instrument name {name!r}: expected e.g. 'ethbtc'")
    known = _BUILTIN.get(name)
    if known is not None:
        base, quote, mid, size, quoting = known
        specs = {venue: _spec(venue, mid, quoting[venue]) for venue in VENUES}
        return Instrument(name, base, quote, mid, size, specs)
    parts = split_name(name)
    if parts is None:
        raise ValueError(f"invalid instrument name {name!r}: unknown quote currency")
    base_l, quote_l = parts
    mid = _FALLBACK_MID.get(quote_l, 100.0)
    specs = {venue: _spec(venue, mid, _fallback_quoting(venue, mid)) for venue in VENUES}
    return Instrument(name, base_l.upper(), quote_l.upper(), mid, 1.0, specs)


def venue_symbol(venue: str, instrument: Instrument) -> str:
    """Return ``instrument`` as ``venue`` spells it in its book channel (see :data:`SYMBOLS`)."""
    return SYMBOLS[venue].spell(instrument.base, instrument.quote)
