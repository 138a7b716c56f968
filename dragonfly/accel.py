"""The optional C speedups of the hot path, and the switch between them and pure Python.

``dragonfly/_speedups.c`` holds eighteen hot-path functions in C: the reader of
a compact JSON side's top N (``read_levels``, for the Binance and Bitstamp
snapshot decoders), the reader of Bybit's deltas (``read_bybit_delta``,
msgspec its twin), the listener's book check (``check_book``), the merge of
the venues' top N (``merge_side``), every venue's state in a published
view (``venue_states``, ``dragonfly.core.aggregator``; ``venue_states_py``
its twin), the Summary encoder
(``encode_summary``), a diff book's update, numeric or of the venue's strings,
and its top-N read, of levels or of strings (``apply_book``, both sides of
a numeric update in one call, and ``apply_side``, one side of it;
``apply_text_side``, ``top_levels``, used by ``dragonfly.core.book``), and the
CRC32 book checksums over the venue's strings (``crc32_digits`` for Kraken,
``crc32_interleaved`` for OKX, used by ``dragonfly.core.checksum``), and the
writer of a merged side's FIX W entries (``fix_entries``, for the gateway's
``dragonfly.fix.mdcodec.BookEncoder``; ``fix_entries_py`` its twin) and the
FIX CheckSum's byte sum (``byte_sum``, ``dragonfly.fix.codec``, of every FIX
message written and read), and the liquidity view's read of a venue side, its
keys and running sums (``side_sums``, ``dragonfly.core.liquidity``;
``side_sums_py`` its twin), and the bbo view's quotes, each venue's best bid
and ask and the best of each side across venues (``bbo_quotes``,
``dragonfly.core.bbo``; ``bbo_quotes_py`` its twin), and the liquidity view's
figures, what the venues hold within each band around the mid and what each
quantity costs to fill across them (``band_figures`` and ``fill_figures``,
``dragonfly.core.liquidity``; ``band_figures_py`` and ``fill_figures_py``
their twins).
``pip install`` builds it when a C compiler is present; without one the
install still succeeds and the pure-Python versions run, with
the same results (``tests/core/test_accel.py`` compares both on random books).

Set ``DRAGONFLY_PURE_PYTHON=1`` in the environment to run pure Python even
where the module is built (to compare, or to rule it out).

Measured with timeit on this 2-core VM, 2 venues x 10 levels a side: a merged
side 7.0 µs in Python against 0.8 µs in C, a side's levels encoded 2.4 µs
against 0.3 µs, a 10-level side read 1.0 µs in C (exact decimal shortcut)
against ~5.5 µs converting through Python's strtod; the six venues' states of a
view 0.7 µs against 2.7 µs (4.1-4.4 µs for the loop it replaced); a
50-level side's keys and running sums 1.6 µs against 6.5 µs; the liquidity
figures of 6 venues x 100 levels a side, 4 bands 5.2 µs against 26 µs and 3
fills of a side 4.6 µs against 41 µs (most of the C time checks and copies
every key and sum it may read), so ``python -m dragonfly.core.liquidity``'s
cached ``compute()`` takes 19-25 µs against 113-115 µs. ``python -m
latency.bench_accel`` times the whole chain both ways, interleaved:
~0.33x the pure-Python time (it was ~0.25x before every frame was parsed
whole and every update said each venue's state: both cost the same in each
twin, ~1.7 µs and ~1.5 µs a frame).

Venue decoders choose when they are made (``make_decoder``); the check, the
merge and the encoder when they are imported.

Every C function is fuzzed against its twin on an ASan and UBSan build by
``python3 dev.py fuzz`` (``scripts/fuzz_speedups.py``), including callers that
misbehave: a new function needs a target there.
"""

from __future__ import annotations

import os
from types import ModuleType

__all__ = ["ACTIVE", "speedups"]


def _load() -> ModuleType | None:
    if os.environ.get("DRAGONFLY_PURE_PYTHON", "") not in ("", "0"):
        return None
    try:
        from dragonfly import _speedups
    except ImportError:  # not built (no C compiler at install time)
        return None
    return _speedups


#: The C module, or ``None`` when the pure-Python code runs.
speedups = _load()
#: Whether the hot path runs the C speedups.
ACTIVE = speedups is not None
