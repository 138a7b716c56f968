"""Reproduce what the chaos run found, as small as it gets: ``python -m latency.chaos_repro [NAME]``.

Each reproduction runs the engine in this process against the simulator
(truth record on), applies one fault, and checks every merged book the
engine publishes against the truth at the position it names. It prints what
it saw and exits 1 if the engine misbehaved (a wrong book published, or a
venue that never comes back), 0 if not.

``bitstamp-rest-stale``
    Bitstamp on its diff channel; a REST snapshot older than the diff stream
    (``rest-stale``: the book as it was 2 s ago, with its old
    ``microtimestamp``), fetched when the book resynchronises (forced by one
    unreadable diff frame). The engine loads it, drops the buffered diffs not
    newer than it (none are), applies the rest, and publishes the book: every
    level changed between the snapshot and the first buffered diff is wrong
    (a removed level is still there, a resized one keeps its old amount), and
    stays wrong until a later diff touches that price or the book
    resynchronises for another reason. Nothing checked that the snapshot
    reaches back to the stream: with no sequence numbers, only a buffered
    diff not newer than the snapshot proves there is no gap between them.
    Fixed in dd0c08c (such a snapshot is refused; the book resynchronises);
    kept as a regression check (``tests/latency/test_chaos.py``).

``bitstamp-diff-unsound``
    Bitstamp on its diff channel; diff frames with a level the snapshot
    channel would refuse (``check_book``): a negative amount, an amount of
    ``NaN``, a negative price, a price of ``NaN``. The diff book takes them
    as they are (``L2Book.update`` converts the strings with ``float()`` and
    checks nothing but the crossed book): a best bid with amount ``-7.02`` or
    ``nan`` is published as LIVE; a negative price files the level at the
    wrong end of the book and a removal with a negative price removes
    nothing (the real level stays); a ``NaN`` price ends in an unrelated
    error later (a resync). Binance's diff channel is not affected (its
    decoder constrains every number: finite, not negative). Fixed in
    33b28e8 (``L2Book`` refuses levels out of range); kept as a regression.

``binance-fragments-wedge``
    Binance on its snapshot channel; the venue starts a fragmented message
    (256 KiB, under the 4 MiB limit) and never finishes it, while it still
    answers pings. The book goes stale and leaves the merge after
    ``stale_after``, as it should, but the connection is never given up:
    no reconnect, and the venue stays out of the merge for good (here 20 s,
    in the chaos run until the next fault dropped the connection). Any
    silent-but-pinging connection does the same (a stuck proxy, a venue
    that stops one subscription). Fixed: a connection on which nothing has
    proved any book current for twice ``stale_after`` (10 s at least) is
    ended and made again (``dragonfly.core.feed.WEDGED_AFTER``).

``delayed-frames``
    Each venue on its snapshot channel, ``stale_after`` 2 s; the venue's
    frames arrive 3.5 s late (``delay``: a congested link or a venue that
    falls behind). Every frame still "proves" the book current when it
    arrives, so ``age_ns`` stayed near 0 while the book shown stopped being
    the venue's 3.5 s earlier: stale books published as fresh. Fixed where
    the frames carry the venue's clock: Bitstamp's ``microtimestamp`` now
    dates each proof of freshness (a channel's ``seq_ns``), so a delayed
    Bitstamp book shows its true age and leaves the merge. Binance's
    ``depth20`` frames carry no time: a delayed Binance feed cannot be told
    from a timely one, by this engine or any other; it is shown, not counted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import sys
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

from dragonfly.core.engine import Engine, VenueEndpoint
from dragonfly.core.types import MergedBook
from dragonfly.sim import Simulator
from dragonfly.venues import bitstamp

DEPTH = 10
#: Seconds a wedged venue is given to come back (binance-fragments-wedge).
WEDGE_WAIT_S = 20.0
#: The freshness limit of delayed-frames, and how late its frames arrive.
STALE_AFTER_S = 2.0
DELAY_MS = 3500


def check(sim: Simulator, book: MergedBook, venue: str) -> str | None:
    """Say how ``venue``'s levels in ``book`` differ from the truth at its position; None if they do not."""
    state = next((s for s in book.venues if s.venue == venue), None)
    if state is None or not state.in_merge:
        return None
    truth = sim.truth(venue, book.instrument, state.seq)
    if truth is None:
        return f"update {book.sequence}: {venue} seq {state.seq} is no state the venue's book had"
    bids = [(lv.price, lv.amount) for lv in book.bids if lv.exchange == venue]
    asks = [(lv.price, lv.amount) for lv in book.asks if lv.exchange == venue]
    want_bids, want_asks = list(truth.bids[: len(bids)]), list(truth.asks[: len(asks)])
    if bids == want_bids and asks == want_asks:
        return None
    extra = sorted(set(bids + asks) - set(truth.bids + truth.asks))
    return (f"update {book.sequence}: {venue} seq {state.seq}: {len(extra)} level(s) not in the venue's book "
            f"at that position: {extra[:4]}; best bid shown {bids[:1]} truth {want_bids[:1]}, best ask shown "
            f"{asks[:1]} truth {want_asks[:1]}")


def synced(sim: Simulator, books: list[MergedBook], venue: str) -> bool:
    """Whether some book published so far had ``venue`` in the merge and right."""
    return any(b.venues[0].in_merge and check(sim, b, venue) is None for b in books)


@contextlib.asynccontextmanager
async def bitstamp_diff_engine(seed: int) -> AsyncIterator[tuple[Simulator, Engine, list[MergedBook]]]:
    """A simulated Bitstamp (truth on) and an engine on its diff channel, its book in the merge and right."""
    async with Simulator(["bitstamp"], ["ethbtc"], seed=seed, truth_s=60.0) as sim:
        books: list[MergedBook] = []
        endpoint = VenueEndpoint(bitstamp.SPEC, sim.ws_url("bitstamp"), sim.rest_url("bitstamp"))
        engine = Engine("ethbtc", [endpoint], depth=DEPTH, channels={"bitstamp": "diff"},
                        stale_after={"bitstamp": 2.0})
        engine.add_sink(books.append)
        await engine.start()
        try:
            await _until(lambda: synced(sim, books, "bitstamp"), "the book in the merge")
            yield sim, engine, books
        finally:
            await engine.stop()


async def bitstamp_rest_stale(say: Callable[[str], None]) -> int:
    """See the module doc; return how many wrong books the engine published."""
    async with bitstamp_diff_engine(seed=1) as (sim, _, books):
        await asyncio.sleep(2.5)  # the market moves on: the sampled book 2 s old differs
        wrong_before = sum(1 for b in books if check(sim, b, "bitstamp"))
        say(f"synchronised: {len(books)} books published, {wrong_before} wrong")
        stale = sim.fault("bitstamp", "rest-stale,age=2,count=1")
        sim.fault("bitstamp", "malformed,count=1")  # one unreadable diff: the engine resynchronises
        mark = len(books)
        await stale.wait_applied(1, timeout=10)
        say("resynchronising from a REST snapshot 2 s older than the stream")
        await asyncio.sleep(3.0)
        after = books[mark:]
        wrong = [w for b in after if (w := check(sim, b, "bitstamp"))]
        say(f"after the stale snapshot: {len(after)} books published, {len(wrong)} wrong")
        for line in wrong[:5]:
            say("  " + line)
        return len(wrong)


#: The unsound diff levels of ``bitstamp-diff-unsound``, each in a fresh simulator and engine.
UNSOUND = ("negative,field=price,side=bid,count=3", "negative,field=amount,count=3",
           "nan,field=amount,count=3", "nan,field=price,count=3")


async def bitstamp_diff_unsound(say: Callable[[str], None]) -> int:
    """See the module doc; return how many wrong books the engine published."""
    wrong_total = 0
    for spec in UNSOUND:
        wrong_total += await bitstamp_diff_fault(spec, say)
    return wrong_total


async def bitstamp_diff_fault(spec: str, say: Callable[[str], None]) -> int:
    """Apply ``spec`` to a synchronised Bitstamp diff book; return how many wrong books followed in 2 s."""
    async with bitstamp_diff_engine(seed=2) as (sim, engine, books):
        mark = len(books)
        fault = sim.fault("bitstamp", spec)
        await fault.wait_applied(3, timeout=10)
        await asyncio.sleep(2.0)
        after = books[mark:]
        wrong = [w for b in after if (w := check(sim, b, "bitstamp"))]
        resyncs = engine.status()["bitstamp"].get("resyncs")
        say(f"{spec}: {len(after)} books published, {len(wrong)} wrong, resyncs {resyncs}")
        for line in wrong[:2]:
            say("  " + line)
        return len(wrong)


async def binance_fragments_wedge(say: Callable[[str], None]) -> int:
    """See the module doc; return 1 if the venue is still out of the merge after WEDGE_WAIT_S, else 0."""
    from dragonfly.venues import binance

    async with Simulator(["binance"], ["ethbtc"], seed=3, truth_s=60.0) as sim:
        books: list[MergedBook] = []
        endpoint = VenueEndpoint(binance.SPEC, sim.ws_url("binance"), sim.rest_url("binance"))
        engine = Engine("ethbtc", [endpoint], depth=DEPTH, stale_after={"binance": 2.0})
        engine.add_sink(books.append)
        await engine.start()
        try:
            await _until(lambda: bool(books) and books[-1].venues[0].in_merge, "the book in the merge")
            connections = sim.connections("binance")
            fault = sim.fault("binance", "fragments,count=1,bytes=262144")
            await fault.wait_applied(1, timeout=10)
            start = time.monotonic()
            await _until(lambda: not books[-1].venues[0].in_merge, "the book to leave the merge")
            say(f"a 256 KiB message that never ends: out of the merge after {time.monotonic() - start:.1f} s")
            try:
                await _until(lambda: books[-1].venues[0].in_merge, "the book back", WEDGE_WAIT_S)
            except TimeoutError:
                status = engine.status()["binance"]
                say(f"still out after {time.monotonic() - start:.0f} s: status {status['status']}, "
                    f"feed {status['state']}, {sim.connections('binance') - connections} new connection(s)")
                return 1
            say(f"back after {time.monotonic() - start:.1f} s")
            return 0
        finally:
            await engine.stop()


async def delayed_frames(say: Callable[[str], None]) -> int:
    """See the module doc; return how many books were published stale as fresh."""
    from dragonfly.venues import binance

    stale_total = 0
    # (spec, channel, counted): Binance depth20 frames carry no time (module doc).
    cases = (
        (binance.SPEC, "snapshot", False),
        (bitstamp.SPEC, "snapshot", True),
        (bitstamp.SPEC, "diff", True),
    )
    for spec, channel, counted in cases:
        venue = spec.name
        async with Simulator([venue], ["ethbtc"], seed=4, truth_s=60.0) as sim:
            assert sim.truth_record is not None
            truth = sim.truth_record.book(venue, "ethbtc")
            books: list[MergedBook] = []
            engine = Engine("ethbtc", [VenueEndpoint(spec, sim.ws_url(venue), sim.rest_url(venue))],
                            depth=DEPTH, stale_after={venue: STALE_AFTER_S}, channels={venue: channel})
            engine.add_sink(books.append)
            await engine.start()
            try:
                await _until(functools.partial(synced, sim, books, venue), "the book in the merge")
                mark = len(books)
                sim.fault(venue, f"delay,ms={DELAY_MS},for=6")
                await asyncio.sleep(6.0)
                worst = 0.0
                stale = 0
                for book in books[mark:]:
                    state = book.venues[0]
                    shown = sim.truth(venue, "ethbtc", state.seq) if state.in_merge else None
                    until = truth.top_until(shown, DEPTH) if shown is not None else None
                    if until is None:
                        continue
                    late = (book.publish_ns - until) / 1e9
                    worst = max(worst, late)
                    if late > STALE_AFTER_S + 0.5 and state.age_ns <= STALE_AFTER_S * 1e9:
                        stale += 1
                say(f"{venue} ({channel} channel), frames {DELAY_MS} ms late: "
                    f"{len(books) - mark} books, {stale} older than stale_after {STALE_AFTER_S:g} s + 0.5 s "
                    f"with age_ns under it; the oldest shown {worst:.2f} s after it stopped being true"
                    + ("" if counted else " (not counted: its frames carry no time)"))
                stale_total += stale if counted else 0
            finally:
                await engine.stop()
    return stale_total


async def _until(cond: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


REPRODUCTIONS: dict[str, Callable[[Callable[[str], None]], Coroutine[Any, Any, int]]] = {
    "bitstamp-rest-stale": bitstamp_rest_stale,
    "bitstamp-diff-unsound": bitstamp_diff_unsound,
    "binance-fragments-wedge": binance_fragments_wedge,
    "delayed-frames": delayed_frames,
}


def main(argv: list[str] | None = None) -> int:
    """Run the named reproductions (default: all); exit 1 if any found the engine misbehaving."""
    p = argparse.ArgumentParser(prog="python -m latency.chaos_repro", description=__doc__.splitlines()[0])
    p.add_argument("names", nargs="*", choices=[[], *REPRODUCTIONS], default=[], metavar="NAME",
                   help=f"one of {', '.join(REPRODUCTIONS)} (default: all)")
    args = p.parse_args(argv)
    import uvloop

    failed = 0
    for name in args.names or list(REPRODUCTIONS):
        print(f"{name}:")
        wrong: int = uvloop.run(REPRODUCTIONS[name](print))
        print(f"{name}: {'FAIL' if wrong else 'ok'} ({wrong} problem(s))")
        failed += bool(wrong)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
