"""The CRC32 book checksums venues send, over the venue's own strings (hot path).

Two rules cover the venues we serve; each venue module says which it uses
and over how many levels:

* :func:`crc32_digits`: each level's price then amount with the ``.``
  removed and leading zeros stripped, the first side's levels then the
  second's (Kraken: asks then bids, top 10).
* :func:`crc32_interleaved`: ``price:amount`` of bid 0, ask 0, bid 1, ask 1,
  ..., joined by ``:`` (OKX: top 25).

Both return zlib's unsigned CRC32. With the C speedups built they run in C
(``dragonfly/_speedups.c``): building the string in Python cost ~5 µs of a
~12 µs Kraken update. The ``_py`` twins here are the reference; the tests and
the fuzz job (``python3 dev.py fuzz``) check that both give the same number.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence

from dragonfly.accel import speedups

#: One level as the venue wrote it: ``(price, amount)`` strings.
TextSide = Sequence[tuple[str, str]]


def _digits(text: str) -> str:
    return text.replace(".", "").lstrip("0")


def crc32_digits_py(first: TextSide, second: TextSide) -> int:
    """CRC32 of every level's digits, ``first`` then ``second`` (pure Python)."""
    text = "".join(_digits(price) + _digits(amount) for price, amount in [*first, *second])
    return zlib.crc32(text.encode())


def crc32_interleaved_py(bids: TextSide, asks: TextSide) -> int:
    """CRC32 of ``bid:amount:ask:amount:...``, level by level (pure Python)."""
    parts: list[str] = []
    for i in range(max(len(bids), len(asks))):
        if i < len(bids):
            parts.append(f"{bids[i][0]}:{bids[i][1]}")
        if i < len(asks):
            parts.append(f"{asks[i][0]}:{asks[i][1]}")
    return zlib.crc32(":".join(parts).encode())


#: The checksums the venues run: the C twins when built.
crc32_digits: Callable[[TextSide, TextSide], int] = (
    speedups.crc32_digits if speedups is not None else crc32_digits_py
)
crc32_interleaved: Callable[[TextSide, TextSide], int] = (
    speedups.crc32_interleaved if speedups is not None else crc32_interleaved_py
)
