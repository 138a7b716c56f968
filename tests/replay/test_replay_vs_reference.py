"""Replay real recordings through the real adapters and compare with the oracle.

The oracle (``reference.py``) rebuilds every book from the raw recording by the
venues' documented rules, independently of dragonfly's code. Here the same
recording is served by the replay server and synchronised by the adapters over
real sockets (REST snapshots included); every final book must equal the
oracle's level by level, at full depth.
"""

from __future__ import annotations

import pytest
from reference import RefBook, recordings_dir, reference_books

from dragonfly.core.book import L2Book
from dragonfly.replay.run import ReplayResult, replay

RECORDINGS = recordings_dir()
pytestmark = pytest.mark.skipif(
    RECORDINGS is None,
    reason="no recordings: set DRAGONFLY_RECORDINGS or put ../shared/recordings beside the repo",
)

ALL_VENUES = ("binance", "bitstamp", "kraken", "okx", "coinbase", "bybit")


def levels(book: L2Book) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
    bids, asks = book.top(len(book))  # float pairs, whether or not the book keeps strings
    return list(bids), list(asks)


def ref_levels(book: RefBook) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
    return [(float(p), float(a)) for p, a in book.bids], [(float(p), float(a)) for p, a in book.asks]


@pytest.fixture(scope="module")
def replayed() -> dict[str, ReplayResult]:
    import uvloop

    assert RECORDINGS is not None
    return {venue: uvloop.run(replay(RECORDINGS, venues=[venue])) for venue in ALL_VENUES}


@pytest.mark.parametrize("venue", ALL_VENUES)
def test_final_books_equal_the_reference(venue: str, replayed: dict[str, ReplayResult]) -> None:
    assert RECORDINGS is not None
    expected, ref_stats = reference_books(RECORDINGS, venue)
    result = replayed[venue]
    got = {sync.symbol: sync.book for v, sync in result.books if v == venue}
    assert sorted(got) == sorted(expected), f"{venue}: synchronised symbols differ"
    for symbol, ref in expected.items():
        assert levels(got[symbol]) == ref_levels(ref), f"{venue} {symbol}: book differs from the reference"
    summary = result.venues[venue]
    assert summary.gaps == ref_stats.gaps == 0
    assert summary.checksums_bad == 0
    assert summary.checksums_ok == ref_stats.checksums_ok


def test_every_kraken_and_okx_checksum_verifies(replayed: dict[str, ReplayResult]) -> None:
    assert replayed["kraken"].venues["kraken"].checksums_ok > 4000
    assert replayed["okx"].venues["okx"].checksums_ok > 250
    for venue in ("kraken", "okx"):
        assert replayed[venue].venues[venue].checksums_bad == 0
        assert replayed[venue].venues[venue].resyncs == 0


def test_exact_strings_where_the_protocol_is_native(replayed: dict[str, ReplayResult]) -> None:
    """Native protocols pass bytes through: the books hold the venue's own strings.

    Binance's diff channel is numeric (no strings kept, see its module doc):
    its books are compared as floats above, and must refuse to give strings.
    """
    assert RECORDINGS is not None
    for _, sync in replayed["binance"].books:
        with pytest.raises(ValueError, match="numeric book"):
            sync.book.top_text(1)
    for venue in ("bitstamp", "kraken", "okx"):
        expected, _ = reference_books(RECORDINGS, venue)
        for v, sync in replayed[venue].books:
            bids, asks = sync.book.top_text(len(sync.book))
            assert (bids, asks) == (expected[sync.symbol].bids, expected[sync.symbol].asks), (v, sync.symbol)
