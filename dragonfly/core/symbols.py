"""Normalised instrument names and their venue spellings.

dragonfly names an instrument by its lower-case base and quote run together
(``ethbtc``). Venues spell it their own way (``ETHBTC``, ``ETH/XBT``,
``ETH-BTC``); a venue module builds its spelling with :func:`joined`, and a
venue's ``overrides`` cover what the rule gets wrong.
"""

from __future__ import annotations

import re

from dragonfly.core.errors import ConfigError

_INSTRUMENT = re.compile(r"^[a-z0-9]{2,32}$")


def normalise_instrument(text: str) -> str:
    """Return the normalised instrument name: ``"ETH/BTC"`` -> ``"ethbtc"``."""
    name = re.sub(r"[\s/_\-]", "", text).lower()
    if not _INSTRUMENT.match(name):
        raise ConfigError(
            f"invalid instrument {text!r}: expected letters and digits like 'ethbtc' or 'ETH/BTC'"
        )
    return name

#: Quote currencies recognised at the end of an instrument name. Deliberately
#: no "tusd"/"busd": "usdtusd" must split as usdt/usd.
QUOTES = (
    "usdt", "usdc", "usd", "eur", "gbp", "jpy", "cad", "chf", "aud", "try", "btc", "xbt", "eth", "dai", "bnb",
)  # fmt: skip
_BY_LENGTH = sorted(QUOTES, key=len, reverse=True)  # "usdt" must win over "usd"


def split_instrument(instrument: str) -> tuple[str, str] | None:
    """Split ``ethbtc`` into ``("eth", "btc")`` by its quote currency, or ``None``."""
    name = instrument.strip().lower()
    for quote in _BY_LENGTH:
        if name.endswith(quote) and len(name) > len(quote):
            return name[: -len(quote)], quote
    return None


def joined(instrument: str, sep: str, aliases: dict[str, str] | None = None) -> str:
    """Spell ``instrument`` as ``BASE<sep>QUOTE`` in upper case (``aliases``: btc -> XBT, ...).

    A name that cannot be split is returned upper-cased as it is, so the venue
    itself rejects it with its own message.
    """
    pair = split_instrument(instrument)
    if pair is None:
        return instrument.strip().upper()
    aliases = aliases or {}
    return sep.join(aliases.get(asset, asset.upper()) for asset in pair)
