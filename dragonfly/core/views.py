"""What the aggregators publish besides the merged book: the BBO view and the liquidity view.

Every view is an immutable NamedTuple of floats and tuples, made once per
update and handed to every consumer as is (the services encode it once per
(instrument, kind, depth) and share the bytes). Each carries the same
freshness record as the merged book: ``venues``, one
:class:`~dragonfly.core.types.VenueState` per venue of its aggregator, in
name order, saying whether the venue is in this update and how old its data
is.
"""

from __future__ import annotations

from typing import NamedTuple

from dragonfly.core.types import MergedLevel, VenueState

#: The aggregator kinds a topology can build (``book`` is the merged top N).
KINDS = ("book", "bbo", "liquidity")


class VenueBbo(NamedTuple):
    """One venue's best bid and best ask (``nan`` price and 0 amount for an empty side)."""

    venue: str
    bid_price: float
    bid_amount: float
    ask_price: float
    ask_amount: float


class BboView(NamedTuple):
    """Each venue's best bid and ask, and the cross-venue best of each side with its venue.

    ``quotes`` holds the venues in the merge, in name order. ``best_bid`` and
    ``best_ask`` are ``None`` when no venue in the merge has that side; ties
    go to the larger amount, then the venue first by name (the merged book's
    order). ``spread`` is ``best_ask - best_bid`` (``nan`` when a side is
    missing; zero or negative when venues are locked or crossed). Published
    only when a quote, a best or the merge's members changed. The other fields
    are the merged book's (:class:`~dragonfly.core.types.MergedBook`).
    """

    instrument: str
    spread: float
    best_bid: MergedLevel | None
    best_ask: MergedLevel | None
    quotes: tuple[VenueBbo, ...]
    sequence: int
    recv_ns: int
    publish_ns: int
    source_venue: str = ""
    source_frame: int = 0
    venues: tuple[VenueState, ...] = ()
