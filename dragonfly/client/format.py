"""Render ``orderbook.Summary`` updates for people (a table) and programs (JSON)."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

from dragonfly.serve import orderbook_pb2

__all__ = ["format_number", "format_summary", "summary_to_dict", "summary_to_json"]

_GAP = "   "


def format_number(value: float, digits: int = 15) -> str:
    """Return ``value`` with up to ``digits`` significant digits, no trailing zeros.

    A double holds any decimal of up to 15 significant digits exactly enough
    to print it back, so 15 shows every price or amount a venue quotes while
    hiding the float noise of computed values (0.1 + 0.2 prints as 0.3).
    """
    return f"{value:.{digits}g}"


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def status_name(status: int) -> str:
    """Return a venue status in lower case (``live``, ``stale``, ...), or its number if unknown."""
    try:
        return orderbook_pb2.VenueStatus.Name(status).removeprefix("VENUE_STATUS_").lower()  # type: ignore[arg-type]
    except ValueError:
        return str(status)


def summary_to_dict(summary: orderbook_pb2.Summary) -> dict[str, Any]:
    """Return the JSON-ready dict of an update; NaN or infinite numbers become None.

    ``venues`` lists each venue's state (empty from a server that sends none):
    whether it is in the merge, its status, how old its data was (seconds,
    ``None`` without any) and the venue's own position of the book shown.
    """
    return {
        "instrument": summary.instrument,
        "sequence": summary.sequence,
        "spread": _finite(summary.spread),
        "bids": [_level_dict(level) for level in summary.bids],
        "asks": [_level_dict(level) for level in summary.asks],
        "venues": [
            {
                "venue": state.venue,
                "in_merge": state.in_merge,
                "status": status_name(state.status),
                "age_s": state.age_ns / 1e9 if state.data_ns else None,
                "seq": state.seq,
            }
            for state in summary.venues
        ],
    }


def _level_dict(level: orderbook_pb2.Level) -> dict[str, Any]:
    return {"exchange": level.exchange, "price": _finite(level.price), "amount": _finite(level.amount)}


def summary_to_json(summary: orderbook_pb2.Summary) -> str:
    """Return an update as one line of JSON (strict: no NaN)."""
    return json.dumps(summary_to_dict(summary), separators=(",", ":"), allow_nan=False, ensure_ascii=False)


def _decimal_aligned(texts: list[str]) -> list[str]:
    """Pad numbers so that their decimal points line up."""
    parts = [text.partition(".") for text in texts]
    whole = max((len(head) for head, _, _ in parts), default=0)
    fraction = max((len(dot) + len(tail) for _, dot, tail in parts), default=0)
    return [f"{head:>{whole}}{dot + tail:<{fraction}}" for head, dot, tail in parts]


def _cells(levels: Sequence[orderbook_pb2.Level], depth: int) -> list[tuple[str, str, str]]:
    shown = levels[:depth]
    prices = _decimal_aligned([format_number(level.price) for level in shown])
    amounts = _decimal_aligned([format_number(level.amount) for level in shown])
    return [
        (level.exchange, price, amount) for level, price, amount in zip(shown, prices, amounts, strict=True)
    ]


def _width(rows: list[tuple[str, str, str]], column: int, title: str) -> int:
    return max([len(title), *(len(row[column]) for row in rows)])


def _age(state: orderbook_pb2.VenueState) -> str:
    if not state.data_ns:
        return "no data"
    age = state.age_ns / 1e9
    return f"{age * 1000:.0f} ms" if age < 1 else f"{age:.1f} s"


def format_venues(summary: orderbook_pb2.Summary) -> str:
    """Return one line: the venues in the merge and their data's age, then the others and why.

    ::

        in merge: binance 12 ms, bitstamp 40 ms; out: kraken stale 6.2 s, okx connecting
    """
    merged = []
    out = []
    for state in summary.venues:
        status = status_name(state.status)
        if state.in_merge:
            flag = f" ({status})" if status != "live" else ""
            merged.append(f"{state.venue} {_age(state)}{flag}")
        else:
            age = f" {_age(state)}" if state.data_ns and status in ("stale", "outlier", "bad_data") else ""
            out.append(f"{state.venue} {status}{age}")
    line = f"in merge: {', '.join(merged) or 'none'}"
    return f"{line}; out: {', '.join(out)}" if out else line


def format_summary(summary: orderbook_pb2.Summary, depth: int = 10) -> str:
    """Return a header line, a venues line, and a bids | asks table of the ``depth`` best levels.

    ::

        ETHBTC  seq 42  spread 1e-05  (10 bids, 10 asks)
        in merge: binance 12 ms, bitstamp 40 ms
        venue     bid price  amount   ask price  amount  venue
        binance     0.06827     1.5     0.06828     2.5  bitstamp
        bitstamp    0.0682     12.25    0.0683      3    kraken

    The venues line is left out for a server that sends no venue states
    (the original aggregator's API).
    """
    instrument = summary.instrument or "?"
    header = (
        f"{instrument}  seq {summary.sequence}  spread {format_number(summary.spread, 8)}"
        f"  ({len(summary.bids)} bids, {len(summary.asks)} asks)"
    )
    if summary.venues:
        header += "\n" + format_venues(summary)
    bids = _cells(summary.bids, depth)
    asks = _cells(summary.asks, depth)
    bid_venue = _width(bids, 0, "venue")
    bid_price = _width(bids, 1, "bid price")
    bid_amount = _width(bids, 2, "amount")
    ask_price = _width(asks, 1, "ask price")
    ask_amount = _width(asks, 2, "amount")
    # Prices face each other in the middle, venues sit on the outside; each
    # number column is aligned on the decimal point.
    lines = [
        header,
        f"{'venue':<{bid_venue}}  {'bid price':>{bid_price}}  {'amount':>{bid_amount}}{_GAP}"
        f"{'ask price':>{ask_price}}  {'amount':>{ask_amount}}  venue",
    ]
    blank = ("", "", "")
    for row in range(max(len(bids), len(asks))):
        bv, bp, ba = bids[row] if row < len(bids) else blank
        av, ap, aa = asks[row] if row < len(asks) else blank
        bid = f"{bv:<{bid_venue}}  {bp:>{bid_price}}  {ba:>{bid_amount}}"
        ask = f"{ap:>{ask_price}}  {aa:>{ask_amount}}  {av}"
        lines.append(f"{bid}{_GAP}{ask}".rstrip())
    if not bids and not asks:
        lines.append("(empty book)")
    return "\n".join(lines)
