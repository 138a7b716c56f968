"""Replay a recording directory through the simulator's replay server and the real adapters.

Every recorded WebSocket connection is served on loopback in its venue's
current protocol; a :class:`~dragonfly.core.feed.Feed` per connection
subscribes to the recorded symbols on the diff channel exactly as it would
live (REST snapshots included), and the books it synchronises are the result.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from dragonfly.core.diff import DiffListener, SymbolSync, SyncState
from dragonfly.core.errors import ConfigError, DragonflyError
from dragonfly.core.feed import Feed
from dragonfly.sim.replay import ReplaySimulator
from dragonfly.sim.replay.base import ReplayConnection
from dragonfly.venues import get_venue


@dataclass
class VenueSummary:
    """Totals of one venue over every symbol it replayed."""

    messages: int = 0
    applied: int = 0
    gaps: int = 0
    resyncs: int = 0
    checksums_ok: int = 0
    checksums_bad: int = 0
    malformed: int = 0
    books: int = 0
    unsynced: list[str] = field(default_factory=list)


@dataclass
class ReplayResult:
    """Final books and counters of one replay."""

    books: list[tuple[str, SymbolSync]]
    venues: dict[str, VenueSummary]
    seconds: float
    errors: list[str]

    @property
    def messages(self) -> int:
        """Frames received by the adapters, all venues."""
        return sum(v.messages for v in self.venues.values())


async def replay(
    directory: Path,
    *,
    venues: Sequence[str] | None = None,
    depth: int = 10,
    pace: float | None = None,
    idle: float = 0.5,
    timeout: float = 600.0,
) -> ReplayResult:
    """Replay ``directory``; return once every connection is drained and books are settled."""
    if not directory.is_dir():
        raise ConfigError(f"not a directory: {directory}")
    wanted = [get_venue(v).name for v in venues] if venues else None
    started = time.monotonic()
    async with ReplaySimulator(directory, venues=wanted, pace=pace) as sim:
        errors = [str(e) for e in getattr(sim, "errors", [])]
        feeds: list[Feed] = []
        served: list[tuple[ReplayConnection, Feed]] = []
        tasks: list[asyncio.Task[None]] = []
        for conn in sim.connections:
            if not conn.symbols:
                continue
            spec = get_venue(conn.venue)
            feed = Feed(
                spec,
                dict.fromkeys(conn.symbols),
                depth=depth,
                channel="diff",
                ws_url=conn.ws_url,
                rest_url=conn.rest_url,
                book_depth=conn.book_depth,
                # A recording's silences are the recorded market's, not a dead
                # feed's: nothing is published, so no book is withdrawn as stale
                # (a resync would load a later recorded snapshot into it).
                stale_after=REPLAY_STALE_AFTER,
            )
            feeds.append(feed)
            served.append((conn, feed))
            tasks.append(asyncio.create_task(feed.run(), name=f"replay-{conn.name}"))
        try:
            finished = await asyncio.wait_for(_drained(served, idle), timeout)
            # Up to the last frame or snapshot handled, not the idle wait after it.
            seconds = finished - started
            # Read the books before closing: a closed feed withdraws its books.
            books, summaries = _collect(feeds)
        finally:
            for feed in feeds:
                feed.stop()
            await asyncio.gather(*tasks, return_exceptions=True)
    return ReplayResult(books, summaries, seconds, errors)


def _collect(feeds: list[Feed]) -> tuple[list[tuple[str, SymbolSync]], dict[str, VenueSummary]]:
    books: list[tuple[str, SymbolSync]] = []
    summaries: dict[str, VenueSummary] = {}
    for feed in feeds:
        listener = feed.listener
        assert isinstance(listener, DiffListener)
        summary = summaries.setdefault(feed.name, VenueSummary())
        summary.messages += listener.frames
        summary.malformed += listener.malformed
        for sync in listener.syms.values():
            st = sync.stats
            summary.applied += st.applied
            summary.gaps += st.gaps
            summary.resyncs += st.resyncs
            summary.checksums_ok += st.checksums_ok
            summary.checksums_bad += st.checksums_bad
            if sync.state is SyncState.SYNCED:
                summary.books += 1
                # A copy: the listener clears its book when the feed closes.
                book = sync.book
                frozen = SymbolSync(sync.symbol, None, numeric=book.numeric)
                if book.numeric:
                    frozen.book.load(*book.top(len(book)), book.seq)
                else:
                    frozen.book.load(*book.top_text(len(book)), book.seq)
                frozen.stats = st
                frozen.state = sync.state
                books.append((feed.name, frozen))
            else:
                summary.unsynced.append(sync.symbol)
    return books, summaries


#: The freshness limit of replayed books: a day, so none is ever withdrawn as stale.
REPLAY_STALE_AFTER = 86400.0


def _refused(feed: Feed) -> bool:
    """Whether the venue refused the feed's subscription (its outcome is a reason)."""
    return feed.outcome.done() and feed.outcome.result() is not None


class ReplayError(DragonflyError):
    """Nothing in the recording could be replayed (one line, for the command line)."""


async def _drained(served: list[tuple[ReplayConnection, Feed]], idle: float) -> float:
    """Wait until every recorded frame was sent and nothing moved for ``idle`` seconds.

    Returns the ``time.monotonic()`` of the last movement seen. Raises
    :class:`ReplayError` when the venue refused every recorded book (a capture
    of a channel the adapter does not subscribe, say).
    """
    feeds = [feed for _, feed in served]
    # A connection is drained once every symbol its feed subscribes has been
    # streamed: wait for all of them to be subscribed first (a feed's
    # subscribe frames keep to the venue's message limit, so they may come
    # over a few seconds), or the first ones would be mistaken for all. A
    # feed whose symbols were all refused is done.
    while True:
        live = [(conn, feed) for conn, feed in served if not _refused(feed)]
        if not live:
            reasons = "; ".join(dict.fromkeys(feed.last_error for feed in feeds if feed.last_error))
            raise ReplayError(f"the replay server refused every recorded book: {reasons}")
        if all(conn.subscribers(symbol) > 0 for conn, feed in live for symbol in feed.symbols):
            break
        await asyncio.sleep(0.01)
    await asyncio.gather(*(conn.done.wait() for conn, _ in live))
    last = -1
    quiet_since = time.monotonic()
    while True:
        frames = sum(f.listener.frames for f in feeds) + sum(f.stats.snapshots for f in feeds)
        pending = any(f.snapshot_pending for f in feeds)
        if frames != last or pending:
            last = frames
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since >= idle:
            return quiet_since
        await asyncio.sleep(0.05)
