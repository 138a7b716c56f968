"""Freshness of diff books: silence, proofs of continuity, keep-alives, and a snapshot ahead of the stream."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from dragonfly.core import diff
from dragonfly.core.aggregator import Aggregator
from dragonfly.core.book import L2Book
from dragonfly.core.diff import Alive, Delta, DiffChannel, DiffListener, Event, Snapshot, SyncState
from dragonfly.core.health import Liveness, LivenessKind, VenueStatus
from dragonfly.core.types import MergedBook

S = 1_000_000_000  # one second in ns


class Control:
    """Records what the listener asks of its feed."""

    def __init__(self) -> None:
        self.snapshots: list[str] = []
        self.resubscribed: list[str] = []

    def request_snapshot(self, symbol: str) -> None:
        self.snapshots.append(symbol)

    def resubscribe(self, symbol: str) -> None:
        self.resubscribed.append(symbol)


def channel(
    queue: list[Event],
    *,
    continuity: bool = True,
    checksum: Callable[[L2Book], int] | None = None,
    gapless: bool = False,
    rest: bool = False,
) -> DiffChannel:
    """A channel whose decoder hands out the next event of ``queue`` per frame."""

    def decoder() -> Callable[[bytes], list[Event]]:
        return lambda payload: [queue.pop(0)]

    return DiffChannel(
        subscribe=lambda s: [],
        unsubscribe=lambda s: [],
        make_decoder=decoder,
        rest_snapshot="/snap" if rest else None,
        parse_rest_snapshot=(lambda symbol, body: SNAP) if rest else None,
        continuity=continuity,
        checksum=checksum,
        gapless=gapless,
        liveness=Liveness(LivenessKind.PINGS, 1.0),
    )


def make(chan: DiffChannel) -> tuple[DiffListener, Control, list[MergedBook]]:
    agg = Aggregator("x", ["v"], depth=2)
    out: list[MergedBook] = []
    agg.add_sink(out.append)
    control = Control()
    lst = DiffListener("v", chan, {"S": agg.producers["v"]}, 2, control)
    agg.watch("v", lst.health("S"))
    return lst, control, out


SNAP = Snapshot("S", [("10", "1"), ("9", "1")], [("11", "1"), ("12", "1")], 100)


def test_a_silent_sequenced_book_leaves_and_returns_when_the_next_delta_follows_on() -> None:
    queue: list[Event] = [SNAP, Delta("S", [("10", "2")], [], 101, 101)]
    lst, control, out = make(channel(queue))
    t0 = time.time_ns()
    lst.on_frame(b"", t0, True)
    sync = lst.syms["S"]
    assert sync.status is VenueStatus.LIVE and sync.stale_after_ns == S
    assert lst.check_stale(t0 + S // 2) == 0
    assert lst.check_stale(t0 + 2 * S) == 1
    assert sync.status is VenueStatus.STALE and out[-1].bids == ()
    assert out[-1].venues[0].status == VenueStatus.STALE and not out[-1].venues[0].in_merge
    # The book is kept: the next delta proves by its sequence number that nothing was missed.
    assert sync.state is SyncState.SYNCED and control.resubscribed == []
    lst.on_frame(b"", time.time_ns(), True)
    assert sync.status is VenueStatus.LIVE and out[-1].bids[0].amount == 2.0
    assert out[-1].venues[0].seq == 101


def test_a_silent_sequenced_book_that_missed_updates_resynchronises() -> None:
    queue: list[Event] = [SNAP, Delta("S", [("10", "2")], [], 105, 105)]
    lst, control, out = make(channel(queue))
    t0 = time.time_ns()
    lst.on_frame(b"", t0, True)
    lst.check_stale(t0 + 2 * S)
    lst.on_frame(b"", time.time_ns(), True)  # 101..104 never came
    assert control.resubscribed == ["S"] and lst.syms["S"].status is VenueStatus.SYNCING
    assert out[-1].bids == ()


def test_a_silent_book_with_only_a_checksum_returns_once_one_verifies() -> None:
    good = [10]

    def checksum(book: L2Book) -> int:
        return good[0]

    queue: list[Event] = [
        SNAP,
        Delta("S", [("10", "2")], [], None, None, 99),  # does not verify: resync
        SNAP,
        Delta("S", [("10", "3")], [], None, None, 10),
    ]
    lst, control, out = make(channel(queue, continuity=False, checksum=checksum))
    t0 = time.time_ns()
    lst.on_frame(b"", t0, True)
    lst.check_stale(t0 + 2 * S)
    sync = lst.syms["S"]
    assert sync.status is VenueStatus.STALE and not sync.verified
    lst.on_frame(b"", time.time_ns(), True)
    assert control.resubscribed == ["S"] and out[-1].bids == ()
    lst.on_frame(b"", time.time_ns(), True)  # the fresh snapshot
    lst.on_frame(b"", time.time_ns(), True)  # and an update that verifies
    assert sync.status is VenueStatus.LIVE and out[-1].bids[0].amount == 3.0


def test_a_silent_book_that_cannot_prove_continuity_resynchronises_when_updates_resume() -> None:
    queue: list[Event] = [Delta("S", [("10", "2")], [], 200, 200)]
    lst, control, out = make(channel(queue, continuity=False, rest=True))
    lst.on_snapshot(SNAP)
    sync = lst.syms["S"]
    assert sync.status is VenueStatus.LIVE
    lst.check_stale(time.time_ns() + 2 * S)
    # Nothing can prove what it missed: the book is dropped at once...
    assert sync.status is VenueStatus.STALE and sync.state is SyncState.WAITING and out[-1].bids == ()
    assert control.snapshots == []  # ...but no REST request while the venue is silent
    lst.on_frame(b"", time.time_ns(), True)
    assert control.snapshots == ["S"] and sync.status is VenueStatus.SYNCING


def test_gapless_channels_prove_continuity_with_any_delta() -> None:
    queue: list[Event] = [SNAP, Delta("S", [("10", "4")], [])]
    lst, control, out = make(channel(queue, continuity=False, gapless=True))
    t0 = time.time_ns()
    lst.on_frame(b"", t0, True)
    lst.check_stale(t0 + 2 * S)
    lst.on_frame(b"", time.time_ns(), True)
    assert lst.syms["S"].status is VenueStatus.LIVE and out[-1].bids[0].amount == 4.0
    assert control.resubscribed == []


def test_a_keep_alive_proves_the_book_current_and_a_wrong_one_resyncs() -> None:
    queue: list[Event] = [SNAP, Alive("S", 100), Alive("S", 100), Alive("S", 99)]
    lst, control, out = make(channel(queue))
    t0 = time.time_ns()
    lst.on_frame(b"", t0, True)
    sync = lst.syms["S"]
    lst.on_frame(b"", t0 + 900_000_000, True)
    assert sync.data_ns == t0 + 900_000_000
    assert lst.check_stale(t0 + 1_500_000_000) == 0
    lst.check_stale(t0 + 3 * S)
    lst.on_frame(b"", time.time_ns(), True)  # a keep-alive at the book's own position: back in
    assert sync.status is VenueStatus.LIVE and out[-1].bids[0].price == 10.0
    lst.on_frame(b"", time.time_ns(), True)  # at another position: something was missed
    assert control.resubscribed == ["S"] and out[-1].bids == ()


def test_a_venue_heartbeat_proves_every_book_of_the_connection() -> None:
    queue: list[Event] = [SNAP]
    lst, _, _ = make(channel(queue))
    t0 = time.time_ns()
    lst.on_frame(b"", t0, True)
    lst.prove_fresh(t0 + 900_000_000)
    assert lst.check_stale(t0 + 1_500_000_000) == 0
    assert lst.check_stale(t0 + 2 * S) == 1


def test_a_snapshot_ahead_of_the_stream_is_resynchronised(monkeypatch: pytest.MonkeyPatch) -> None:
    """A REST snapshot stamped ahead of every delta: it once froze the book, published, for 40 s."""
    ahead = Snapshot("S", SNAP.bids, SNAP.asks, 10_000)
    queue: list[Event] = [Delta("S", [("10", "2")], [], 101 + i, 101 + i) for i in range(10)]
    lst, control, out = make(channel(queue, rest=True))
    clock = [1000.0]
    monkeypatch.setattr(diff.time, "monotonic", lambda: clock[0])
    lst.on_snapshot(ahead)
    sync = lst.syms["S"]
    assert sync.status is VenueStatus.LIVE
    for _ in range(3):
        lst.on_frame(b"", time.time_ns(), True)  # older than the snapshot: dropped
    assert sync.stats.stale == 3 and sync.state is SyncState.SYNCED
    clock[0] += diff.STITCH_TIMEOUT + 0.1
    lst.on_frame(b"", time.time_ns(), True)
    assert sync.state is SyncState.WAITING and sync.stats.resyncs == 1 and out[-1].bids == ()
    lst.on_frame(b"", time.time_ns(), True)  # the next delta asks for a new snapshot
    assert control.snapshots == ["S"]


def test_a_snapshot_that_the_stream_stitches_onto_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    queue: list[Event] = [Delta("S", [], [], 99, 99), Delta("S", [("10", "5")], [], 100, 101)]
    lst, _, out = make(channel(queue, rest=True))
    clock = [1000.0]
    monkeypatch.setattr(diff.time, "monotonic", lambda: clock[0])
    lst.on_snapshot(SNAP)
    lst.on_frame(b"", time.time_ns(), True)  # older: dropped
    lst.on_frame(b"", time.time_ns(), True)  # stitches (U <= 101 <= u)
    clock[0] += 60
    assert lst.syms["S"].stitched and out[-1].bids[0].amount == 5.0


def test_a_venue_already_out_of_the_merge_publishes_its_new_status() -> None:
    """Stale, then disconnected: the view changes only in the venue's status, and that is published.

    CI once reconnected a venue so fast that no other venue's book changed
    meanwhile: subscribers saw it go from stale straight back to live.
    """
    queue: list[Event] = [SNAP]
    lst, _, out = make(channel(queue))
    t0 = time.time_ns()
    lst.on_frame(b"", t0, True)
    assert lst.check_stale(t0 + 2 * S) == 1
    published = len(out)
    assert out[-1].venues[0].status == VenueStatus.STALE
    lst.withdraw(VenueStatus.CONNECTING, "closed")
    assert len(out) == published + 1
    assert out[-1].venues[0].status == VenueStatus.CONNECTING and not out[-1].venues[0].in_merge
    assert out[-1].sequence == out[-2].sequence + 1
