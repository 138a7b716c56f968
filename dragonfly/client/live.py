"""``dragonfly-client --live``: the merged book redrawn in place in a terminal (``rich``).

The screen shows the instrument, the spread and the mid, updates per second,
the top levels of both sides with each venue in its own colour, and every
venue's state and data age; a line says when a venue leaves or rejoins the
merge. Updates arrive as fast as the server sends them; the screen is redrawn
at most :data:`REFRESH_PER_S` times a second from the newest one, so a fast
stream costs one table per frame of the terminal, not one per update. When
the stream ends or fails, the last screen stays and a line below it says why.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import AsyncIterator

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from dragonfly.client.format import format_number, status_name
from dragonfly.serve import orderbook_pb2

#: Screen redraws a second at most.
REFRESH_PER_S = 8
#: Colours given to venues in order of first appearance.
PALETTE = ("cyan", "magenta", "green", "yellow", "blue", "red", "bright_cyan", "bright_magenta")
#: Venue membership changes kept on screen.
EVENTS = 5


class LiveView:
    """The state behind the screen: the newest update, rates, venue colours and recent events."""

    def __init__(self, server: str, depth: int) -> None:
        self.server = server
        self.depth = depth
        self.latest: orderbook_pb2.Summary | None = None
        self.colours: dict[str, str] = {}
        self.events: deque[str] = deque(maxlen=EVENTS)
        self._in_merge: dict[str, bool] = {}
        self._times: deque[float] = deque()
        self.received = 0

    def colour(self, venue: str) -> str:
        """The venue's colour (stable for the session)."""
        if venue not in self.colours:
            self.colours[venue] = PALETTE[len(self.colours) % len(PALETTE)]
        return self.colours[venue]

    def add(self, summary: orderbook_pb2.Summary, now: float) -> None:
        """Take one update: keep it, count it, note venues entering or leaving the merge."""
        self.latest = summary
        self.received += 1
        self._times.append(now)
        while self._times and self._times[0] < now - 1.0:
            self._times.popleft()
        clock = time.strftime("%H:%M:%S")
        for state in summary.venues:
            before = self._in_merge.get(state.venue)
            if before is not None and before != state.in_merge:
                self.events.append(
                    f"{clock} {state.venue} "
                    + (
                        "rejoined the merge"
                        if state.in_merge
                        else f"left the merge ({status_name(state.status)})"
                    )
                )
            self._in_merge[state.venue] = state.in_merge

    def rate(self) -> int:
        """Updates in the last second."""
        return len(self._times)

    def render(self) -> Group:
        """The screen for the newest update."""
        summary = self.latest
        if summary is None:
            return Group(Text(f"dragonfly {self.server}: waiting for the first update...", style="bold"))
        bids, asks = summary.bids[: self.depth], summary.asks[: self.depth]
        mid = (bids[0].price + asks[0].price) / 2 if bids and asks else math.nan
        head = Text.assemble(
            (f"{summary.instrument or '?'}", "bold"),
            f"  spread {format_number(summary.spread, 8)}  mid {format_number(mid, 10)}",
            f"  seq {summary.sequence}  {self.rate()} updates/s  ({self.server})",
        )
        book = Table(box=None, pad_edge=False, expand=False)
        for title, justify in (
            ("venue", "left"), ("bid amount", "right"), ("bid", "right"),
            ("ask", "left"), ("ask amount", "left"), ("venue", "left"),
        ):  # fmt: skip
            book.add_column(title, justify=justify)  # type: ignore[arg-type]
        for i in range(max(len(bids), len(asks))):
            bid = bids[i] if i < len(bids) else None
            ask = asks[i] if i < len(asks) else None
            book.add_row(
                Text(bid.exchange, self.colour(bid.exchange)) if bid else "",
                format_number(bid.amount) if bid else "",
                Text(format_number(bid.price), "bold green") if bid else "",
                Text(format_number(ask.price), "bold red") if ask else "",
                format_number(ask.amount) if ask else "",
                Text(ask.exchange, self.colour(ask.exchange)) if ask else "",
            )
        venues = Table(box=None, pad_edge=False)
        for title in ("venue", "state", "data age"):
            venues.add_column(title)
        for state in summary.venues:
            age = f"{state.age_ns / 1e6:.0f} ms" if state.data_ns else "-"
            shown = status_name(state.status) + ("" if state.in_merge else " (out)")
            venues.add_row(
                Text(state.venue, self.colour(state.venue)),
                Text(shown, "green" if state.in_merge else "bold red"),
                age,
            )
        parts: list[Text | Table] = [head, book, Text(""), venues]
        if self.events:
            parts += [Text(""), *(Text(e, "yellow") for e in self.events)]
        return Group(*parts)


async def run_live(
    summaries: AsyncIterator[orderbook_pb2.Summary],
    server: str,
    depth: int,
    count: int | None,
    console: Console | None = None,
) -> int:
    """Show ``summaries`` until ``count`` updates or the stream ends; return the number shown."""
    view = LiveView(server, depth)
    console = console or Console()
    drawn = 0.0
    with Live(view.render(), console=console, auto_refresh=False, transient=False) as live:
        async for summary in summaries:
            now = time.monotonic()
            view.add(summary, now)
            if now - drawn >= 1 / REFRESH_PER_S or view.received == count:
                live.update(view.render(), refresh=True)
                drawn = now
            if view.received == count:
                break
        live.update(view.render(), refresh=True)
    return view.received
