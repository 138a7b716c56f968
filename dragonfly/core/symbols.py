"""Normalised instrument names and their venue spellings.

dragonfly names an instrument by its lower-case base and quote run together
(``ethbtc``). Venues spell it their own way (``ETHBTC``, ``ETH/XBT``,
``ETH-BTC``); a venue module builds its spelling with :func:`joined`, and a
venue's ``overrides`` cover what the rule gets wrong.
"""

from __future__ import annotations

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
