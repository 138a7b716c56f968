"""Venue adapters: one module per venue, each exporting a frozen ``SPEC``.

Adding a venue is its module plus one line in :data:`VENUES`.
"""

from __future__ import annotations

from dragonfly.core.errors import ConfigError
from dragonfly.core.venue import VenueSpec
from dragonfly.venues import binance, bitstamp, bybit, coinbase, kraken, okx

VENUES: dict[str, VenueSpec] = {
    spec.name: spec
    for spec in (binance.SPEC, bitstamp.SPEC, kraken.SPEC, okx.SPEC, coinbase.SPEC, bybit.SPEC)
}


def get_venue(name: str) -> VenueSpec:
    """Return the spec of venue ``name`` or raise :class:`ConfigError` naming the known ones."""
    try:
        return VENUES[name.strip().lower()]
    except KeyError:
        known = ", ".join(sorted(VENUES))
        raise ConfigError(f"unknown venue {name!r} (known: {known})") from None
