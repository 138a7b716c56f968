"""Check one merged update against the simulator's truth: is it the right book, and fresh?

An update (``orderbook.Summary``) names, for every venue in its merge, the
venue's own position of the book it shows (``VenueState.seq``). The
simulator's truth record (:mod:`dragonfly.sim.truth`) says what that venue's
book was at that position and until when. From that, for each update:

* **wrong book**: the merged top N, recomputed from the truth states at the
  positions the update names (the merge rule written out plainly: price,
  then the larger amount, then the venue name), must equal the update's
  levels exactly, and its spread must follow from them; no level may belong
  to a venue not in the merge. A venue whose shown levels are not the top of
  its truth state is *blamed*; when every venue's levels are right but the
  merge is not, the merge itself is (``<merge>``).
* **stale as fresh**: a venue in the merge whose shown top N had stopped
  being its book's top N more than its ``stale_after`` (plus a stated
  tolerance for delivery) before the update was published. The top N, not
  the whole state: a venue whose later changes were all deeper than N still
  shows the truth (the engine forwards a venue book only when its top N
  changes, so its ``seq`` may be older than the venue's newest frame).
* **the wire's own claim**: ``age_ns <= stale_after`` for every venue in the
  merge, and a venue in the merge is LIVE (or OUTLIER: flagged and kept).
* **unknown position**: a ``seq`` the venue's book never stood at (or only
  later: a snapshot stamped ahead of the stream), which cannot be checked;
  counted apart.

The checker only states facts; which of them a venue fault explains is
decided afterwards, with the whole fault log (:mod:`latency.chaos_report`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from dragonfly.serve import orderbook_pb2
from dragonfly.sim.truth import TruthRecord, TruthState

#: A merged level as compared: (venue, price, amount).
Level = tuple[str, float, float]
#: Statuses a venue in the merge may have: LIVE, or OUTLIER (flagged and kept).
IN_MERGE_STATUSES = frozenset({orderbook_pb2.VENUE_STATUS_LIVE, orderbook_pb2.VENUE_STATUS_OUTLIER})
MERGE = "<merge>"


@dataclass(frozen=True, slots=True)
class VenueView:
    """One venue's place in one update, and what the truth says of it.

    Attributes:
        venue: the venue name.
        in_merge: whether its levels are in the update.
        status: its ``VenueStatus`` (wire value).
        seq: the position it names.
        age_ns: the age the server claims for its data.
        known: the position names a state the venue's book had before the update was published.
        future: the position names a state that began only after the publish (a position that lied).
        matches: in the merge and known: its shown levels are the top of its truth state.
        until_ns: when its shown top N stopped being true (None: still true, or unknown).
        staleness_ns: ``publish_ns - until_ns`` (0 while still true; None when unknown).
        stale: in the merge and ``staleness_ns`` over its ``stale_after`` plus the tolerance.
        claim_ok: in the merge: ``age_ns <= stale_after`` and a status allowed in the merge.
    """

    venue: str
    in_merge: bool
    status: int
    seq: int
    age_ns: int
    known: bool
    future: bool
    matches: bool
    until_ns: int | None
    staleness_ns: int | None
    stale: bool
    claim_ok: bool

    @property
    def ok(self) -> bool:
        """In the merge with a known, correct and fresh book (a recovered venue)."""
        return self.in_merge and self.known and self.matches and not self.stale


@dataclass(frozen=True, slots=True)
class Verdict:
    """What one update is, against the truth.

    Attributes:
        sequence: the update's ``sequence``.
        publish_ns: its ``publish_ns``.
        views: every venue's :class:`VenueView`, in the update's order.
        wrong: its levels are not the truth's merge (or name a venue out of the merge).
        blamed: the venues whose shown levels are wrong (``<merge>``: the merge itself).
        foreign: a level belongs to a venue not in the merge.
        unverifiable: a venue in the merge names an unknown position (its merge cannot be recomputed).
        detail: a few lines on what differs, for the report's samples.
    """

    sequence: int
    publish_ns: int
    views: tuple[VenueView, ...]
    wrong: bool
    blamed: tuple[str, ...]
    foreign: bool
    unverifiable: bool
    detail: str = ""

    def view(self, venue: str) -> VenueView | None:
        """Return ``venue``'s view, or None if the update does not list it."""
        for view in self.views:
            if view.venue == venue:
                return view
        return None

    def ok(self, venue: str) -> bool:
        """Whether ``venue`` is in this update with a known, correct, fresh book (recovered)."""
        view = self.view(venue)
        return (view is not None and view.ok and not self.foreign and venue not in self.blamed
                and MERGE not in self.blamed)

    @property
    def stale(self) -> tuple[str, ...]:
        """The venues shown stale as fresh."""
        return tuple(v.venue for v in self.views if v.stale)

    @property
    def claim_violations(self) -> tuple[str, ...]:
        """The venues in the merge whose own age or status breaks the server's claim."""
        return tuple(v.venue for v in self.views if v.in_merge and not v.claim_ok)

    @property
    def unknown(self) -> tuple[str, ...]:
        """The venues in the merge naming a position the truth does not know (or knows only later)."""
        return tuple(v.venue for v in self.views if v.in_merge and not v.known)


def reference_merge(books: Mapping[str, tuple[Iterable[tuple[float, float]], Iterable[tuple[float, float]]]],
                    depth: int) -> tuple[list[Level], list[Level]]:
    """Merge venue books the plain way: price, then the larger amount, then the venue name.

    Written independently of the aggregator's sort keys (three stable sorts,
    as ``tests/integration/conftest.py`` ``reference_merge``).
    """
    bids = [(venue, p, a) for venue, (side, _) in books.items() for p, a in side]
    asks = [(venue, p, a) for venue, (_, side) in books.items() for p, a in side]
    for levels, descending in ((bids, True), (asks, False)):
        levels.sort(key=lambda lv: lv[0])
        levels.sort(key=lambda lv: lv[2], reverse=True)
        levels.sort(key=lambda lv: lv[1], reverse=descending)
    return bids[:depth], asks[:depth]


class TruthChecker:
    """Check updates of one instrument against a truth record (see module doc).

    ``stale_after_ns`` is each venue's freshness limit as the server was told;
    ``tolerance_ns`` is the delivery allowance added to it (a frame is sent,
    then received and merged: the last frame that showed a top N may leave
    the venue just before the top N changes).
    """

    def __init__(self, record: TruthRecord, instrument: str, depth: int,
                 stale_after_ns: Mapping[str, int], tolerance_ns: int) -> None:
        """Check against ``record``, the merged book ``depth`` levels a side."""
        self.record = record
        self.instrument = instrument
        self.depth = depth
        self.stale_after_ns = dict(stale_after_ns)
        self.tolerance_ns = tolerance_ns

    def check(self, summary: orderbook_pb2.Summary) -> Verdict:
        """Return the verdict on ``summary`` (see module doc)."""
        publish_ns = summary.publish_ns
        depth = self.depth
        members = {s.venue for s in summary.venues if s.in_merge}
        got_bids = [(lv.exchange, lv.price, lv.amount) for lv in summary.bids]
        got_asks = [(lv.exchange, lv.price, lv.amount) for lv in summary.asks]
        foreign = any(lv[0] not in members for lv in got_bids + got_asks)
        views: list[VenueView] = []
        states: dict[str, TruthState] = {}
        blamed: list[str] = []
        notes: list[str] = []
        for vs in summary.venues:
            view, state, note = self._view(vs, publish_ns, got_bids, got_asks)
            views.append(view)
            if state is not None:
                states[vs.venue] = state
            if view.in_merge and view.known and not view.matches:
                blamed.append(vs.venue)
                notes.append(note)
        unverifiable = any(v.in_merge and not v.known for v in views)
        wrong = foreign or bool(blamed)
        if not unverifiable:
            want_bids, want_asks = reference_merge(
                {venue: state.top(depth) for venue, state in states.items() if venue in members}, depth
            )
            spread = want_asks[0][1] - want_bids[0][1] if want_bids and want_asks else math.nan
            spread_ok = (math.isnan(spread) and math.isnan(summary.spread)) or spread == summary.spread
            if want_bids != got_bids or want_asks != got_asks or not spread_ok:
                wrong = True
                if not blamed:
                    # Every venue shows the top of its truth, yet the merge
                    # differs: a venue that lost places it should have won
                    # holds fewer good levels than the truth (a level missing
                    # from its book); if none did, the merge itself is wrong.
                    for venue in sorted(members):
                        for want, got in ((want_bids, got_bids), (want_asks, got_asks)):
                            if sum(lv[0] == venue for lv in want) > sum(lv[0] == venue for lv in got):
                                blamed.append(venue)
                                break
                if not blamed:
                    blamed.append(MERGE)
                if not notes:
                    notes.append(f"merge: want bids {want_bids[:3]} asks {want_asks[:3]} spread {spread!r}; "
                                 f"got bids {got_bids[:3]} asks {got_asks[:3]} spread {summary.spread!r}")
        if foreign:
            notes.append(f"levels of venues out of the merge: members {sorted(members)}, "
                         f"bids {got_bids[:3]}, asks {got_asks[:3]}")
        return Verdict(summary.sequence, publish_ns, tuple(views), wrong, tuple(blamed), foreign,
                       unverifiable, "; ".join(notes))

    def _view(self, vs: orderbook_pb2.VenueState, publish_ns: int, got_bids: list[Level],
              got_asks: list[Level]) -> tuple[VenueView, TruthState | None, str]:
        venue = vs.venue
        limit = self.stale_after_ns.get(venue, 0)
        claim_ok = vs.age_ns <= limit and vs.status in IN_MERGE_STATUSES if vs.in_merge else True
        try:
            truth = self.record.book(venue, self.instrument)
        except KeyError:
            truth = None
        state = truth.state(vs.seq) if truth is not None else None
        # A state that began after the publish cannot have been what the venue showed.
        future = state is not None and state.valid_from_ns > publish_ns
        known = state is not None and not future
        matches = False
        until: int | None = None
        staleness: int | None = None
        note = ""
        if known and state is not None and truth is not None:
            bids, asks = state.top(self.depth)
            shown_bids = [(p, a) for v, p, a in got_bids if v == venue]
            shown_asks = [(p, a) for v, p, a in got_asks if v == venue]
            # The update shows each venue's best levels only, as many as won a
            # place in the merge: they must be the top of its true book.
            matches = (shown_bids == list(bids[: len(shown_bids)])
                       and shown_asks == list(asks[: len(shown_asks)]))
            if vs.in_merge and not matches:
                status = orderbook_pb2.VenueStatus.Name(vs.status).removeprefix("VENUE_STATUS_")
                note = (f"{venue} seq {vs.seq} ({status}): shown bids {shown_bids[:3]} "
                        f"asks {shown_asks[:3]}; truth bids {list(bids[:3])} asks {list(asks[:3])}")
            until = truth.top_until(state, self.depth)
            staleness = 0 if until is None else publish_ns - until
        stale = vs.in_merge and staleness is not None and staleness > limit + self.tolerance_ns
        view = VenueView(venue, vs.in_merge, vs.status, vs.seq, vs.age_ns, known, future, matches,
                         until, staleness, stale, claim_ok)
        return view, state if known else None, note
