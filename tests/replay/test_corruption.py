"""Corrupted copies of real recordings: the damaged book is withdrawn, never published."""

from __future__ import annotations

import asyncio
import json
import shutil
from decimal import Decimal
from pathlib import Path

import pytest
from reference import recordings_dir

from dragonfly.core.aggregator import Aggregator
from dragonfly.core.feed import Feed
from dragonfly.core.types import MergedBook
from dragonfly.replay.run import replay
from dragonfly.sim.replay import ReplaySimulator
from dragonfly.venues import get_venue

RECORDINGS = recordings_dir()
pytestmark = pytest.mark.skipif(
    RECORDINGS is None,
    reason="no recordings: set DRAGONFLY_RECORDINGS or put ../shared/recordings beside the repo",
)


def copy_venue(venue: str, dest: Path) -> list[Path]:
    assert RECORDINGS is not None
    files = sorted(RECORDINGS.glob(f"{venue.upper()}.*"))
    for f in files:
        shutil.copy(f, dest / f.name)
    return [dest / f.name for f in files]


def find_kraken_update(lines: list[str]) -> tuple[int, str, str, str]:
    """A recorded Kraken update that sets one of the 10 best asks: (line, pair, price, volume).

    Only the top 10 levels are under Kraken's checksum, so that is where an
    altered level must be caught.
    """
    asks: dict[str, dict[Decimal, str]] = {}
    verified: dict[str, int] = {}
    for i, line in enumerate(lines):
        if " <- " in line or " <-> " in line or not line.strip():
            continue
        msg = json.loads(line.partition(": ")[2])
        if not isinstance(msg, list):
            continue
        pair = msg[-1]
        book = asks.setdefault(pair, {})
        checked = verified.get(pair, 0)
        verified[pair] = checked + any("c" in part for part in msg[1:-2])
        for part in msg[1:-2]:
            for price, volume, *_ in part.get("as", []) + part.get("a", []):
                top10 = sorted(book)[:10]
                # After a few verified updates, so the book has been published.
                if (
                    checked >= 100
                    and "c" in part
                    and float(volume) > 0
                    and top10
                    and Decimal(price) < top10[-1]
                ):
                    return i, pair, price, volume
                if float(volume) == 0:
                    book.pop(Decimal(price), None)
                else:
                    book[Decimal(price)] = volume
    raise AssertionError("no suitable Kraken update in the recording")


async def run_kraken_pair(directory: Path, pair: str) -> tuple[list[MergedBook], Feed]:
    published: list[MergedBook] = []
    # Ten times the recorded pace (~3 s): frames arrive in small bursts, as live.
    async with ReplaySimulator(directory, venues=["kraken"], pace=10.0) as sim:
        (conn,) = [c for c in sim.connections if pair in c.symbols]
        agg = Aggregator(pair, ["kraken"], depth=10)
        agg.add_sink(published.append)
        outputs = {s: (agg.producers["kraken"] if s == pair else None) for s in conn.symbols}
        feed = Feed(get_venue("kraken"), outputs, channel="diff", ws_url=conn.ws_url, rest_url=conn.rest_url)
        task = asyncio.create_task(feed.run())
        await asyncio.wait_for(conn.done.wait(), 30)
        await asyncio.sleep(0.5)
        feed.stop()
        await task
    return published, feed


async def test_altered_kraken_level_is_withdrawn_and_never_published(tmp_path: Path) -> None:
    (path,) = [p for p in copy_venue("kraken", tmp_path) if ".ws." in p.name]
    lines = path.read_text().split("\n")
    index, pair, price, volume = find_kraken_update(lines)
    ts, _, payload = lines[index].partition(": ")
    bogus = "%.8f" % (float(volume) + 123.0)
    lines[index] = f"{ts}: " + payload.replace(f'["{price}","{volume}"', f'["{price}","{bogus}"', 1)
    assert lines[index] != f"{ts}: {payload}"
    path.write_text("\n".join(lines))

    published, feed = await run_kraken_pair(tmp_path, pair)
    sync = feed.listener.syms[pair]  # type: ignore[union-attr]
    assert sync.stats.checksums_bad == 1
    assert sync.stats.resyncs == 1
    assert published, "the book was published before the corruption"
    assert published[-1].bids == () and published[-1].asks == (), "the corrupted book was not withdrawn"
    bad = (float(price), float(bogus))
    for book in published:
        assert all((lv.price, lv.amount) != bad for lv in book.asks), "the corrupted level was published"
    # Every other pair on the connection is untouched.
    others = [s for s in feed.listener.syms.values() if s.symbol != pair]  # type: ignore[union-attr]
    assert others and all(s.stats.checksums_bad == 0 for s in others)


async def test_altered_kraken_snapshot_is_never_published(tmp_path: Path) -> None:
    """Kraken snapshots carry no checksum: the book waits for the first verified update."""
    (path,) = [p for p in copy_venue("kraken", tmp_path) if ".ws." in p.name]
    lines = path.read_text().split("\n")
    for i, line in enumerate(lines):
        if '{"as":' in line:
            ts, _, payload = line.partition(": ")
            msg = json.loads(payload)
            pair = msg[-1]
            price, volume = msg[1]["as"][0][:2]
            bogus = "%.8f" % (float(volume) + 77.0)
            lines[i] = f"{ts}: " + payload.replace(f'["{price}","{volume}"', f'["{price}","{bogus}"', 1)
            break
    path.write_text("\n".join(lines))
    published, feed = await run_kraken_pair(tmp_path, pair)
    sync = feed.listener.syms[pair]  # type: ignore[union-attr]
    assert sync.stats.checksums_bad == 1 and sync.stats.resyncs == 1
    bad = (float(price), float(bogus))
    assert all((lv.price, lv.amount) != bad for book in published for lv in book.asks)


async def test_dropped_binance_diff_is_a_gap_and_the_book_is_withdrawn(tmp_path: Path) -> None:
    (path,) = [p for p in copy_venue("binance", tmp_path) if ".ws." in p.name]
    lines = path.read_text().split("\n")
    depth_lines = [i for i, line in enumerate(lines) if '"depthUpdate"' in line and '"s":"NKNUSDT"' in line]
    del lines[depth_lines[len(depth_lines) // 2]]
    path.write_text("\n".join(lines))
    result = await replay(tmp_path, venues=["binance"])
    summary = result.venues["binance"]
    assert summary.gaps >= 1 and summary.resyncs >= 1
    assert "NKNUSDT" not in {sync.symbol for _, sync in result.books}
    assert {"BLZETH", "LRCBTC", "RUNEEUR"} <= {sync.symbol for _, sync in result.books}
