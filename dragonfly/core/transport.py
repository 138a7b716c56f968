"""Layer 1's contract: what a feed needs of a venue connection, whatever its protocol.

A :class:`~dragonfly.core.feed.Feed` drives one :class:`Connection` and is
its :class:`FrameHandler`. The WebSocket connection
(:class:`~dragonfly.core.ws.WsConnection`) is the default; a venue spec
names another through :attr:`~dragonfly.core.venue.VenueSpec.connection`
(a :class:`ConnectionFactory`), e.g. the FIX 4.4 initiator of
:mod:`dragonfly.fix.initiator`. Whatever the protocol, a connection:

* keeps reconnecting with its :class:`~dragonfly.core.backoff.Backoff`
  (full jitter) until :meth:`Connection.close`, within the venue's
  connection-attempt budget (``connect_limit``), and counts successful
  connections in ``connects``;
* calls ``on_open`` once a connection is ready for the subscribe frames
  (after the WebSocket handshake, after the FIX Logon), ``on_frame`` with
  each complete application message (hot path), ``on_close`` once per
  connection that was up, with the reason, and ``on_connect_failed`` for an
  attempt that never came up;
* bounds what a peer can make it buffer (``max_message``; a bigger message
  ends the connection and counts in ``oversized``);
* lets nothing but cancellation escape :meth:`Connection.run`.
"""

from __future__ import annotations

import ssl
from typing import Protocol

from dragonfly.core.backoff import Backoff, RateLimit


class FrameHandler(Protocol):
    """What a connection drives: the feed subscriber above it."""

    def on_open(self, conn: Connection) -> None:
        """The connection is up (handshake or logon done); subscribe now."""

    def on_frame(self, payload: bytes, recv_ns: int, last_in_buffer: bool) -> None:
        """A complete message arrived (hot path); ``last_in_buffer``: the last of this read."""

    def on_close(self, reason: str) -> None:
        """The connection went down; a reconnect follows unless closed."""

    def on_connect_failed(self, reason: str, retry_in: float) -> None:
        """A connection attempt failed; the next one starts in ``retry_in`` s."""


class Connection(Protocol):
    """One venue connection kept open until closed (see the module doc)."""

    #: Where it connects (for logs).
    url: str
    #: The reconnect delays; the feed resets it once a connection proved healthy.
    backoff: Backoff
    #: Successful connections so far.
    connects: int
    #: Connections ended by a message over the size bound.
    oversized: int

    @property
    def connected(self) -> bool:
        """Whether a connection is up right now."""

    def send(self, payload: bytes) -> None:
        """Send one subscribe (or keep-alive) frame if connected; dropped otherwise."""

    def drop(self, reason: str) -> None:
        """End the current connection; :meth:`run` reconnects after a backoff."""

    def close(self) -> None:
        """Stop for good: disconnect now and do not reconnect."""

    async def run(self) -> None:
        """Connect, wait for the drop, back off, repeat, until :meth:`close`."""


class ConnectionFactory(Protocol):
    """Make a venue's connection (the signature of :class:`~dragonfly.core.ws.WsConnection`)."""

    def __call__(
        self,
        url: str,
        handler: FrameHandler,
        *,
        ssl_context: ssl.SSLContext | None = ...,
        backoff: Backoff | None = ...,
        connect_timeout: float = ...,
        ping_idle: float = ...,
        ping_reply: float = ...,
        max_message: int = ...,
        connect_limit: RateLimit | None = ...,
    ) -> Connection:
        """Return a connection to ``url`` driving ``handler`` (not started: call ``run``)."""
