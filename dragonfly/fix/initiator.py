"""Layer 1 for a FIX venue: one FIX 4.4 initiator session kept up, with reconnects.

:class:`FixInitiator` is a :class:`~dragonfly.core.transport.Connection`:
the feed drives it exactly as it drives a WebSocket
(:class:`~dragonfly.core.ws.WsConnection`), so the feed, listener,
aggregator and service layers do not know the venue speaks FIX. The
session itself (Logon, heartbeats, TestRequest on silence, sequence checks
both ways, ResendRequest / GapFill, Reject, Logout) is
:class:`~dragonfly.fix.session.FixSession` in its initiator role; this
module adds what a venue connection needs around it:

* Connect (TCP, or TLS for ``fixs://``) and log on; the feed's ``on_open``
  runs once the venue's Logon answer arrived, so the subscribe frames
  (MarketDataRequests) go out on an established session. Every connection
  is a fresh session: Logon carries ResetSeqNumFlag (141=Y) and both
  sequences start at 1, so nothing stale is ever resent or expected.
* Frames up: every application message (W, Y, ...) goes to the feed as its
  wire bytes, with its receive time and whether it was the last whole
  message of the read. Session messages that prove the stream current in
  order (Heartbeat, TestRequest) and the venue's session Rejects go up too,
  for the venue's control parser (:func:`dragonfly.fix.venue.control`).
* Frames down: a frame the feed sends is an application message's body,
  MsgType first (``35=V<SOH>...``); the session adds the header
  (49, 56, 34, 52), BodyLength and CheckSum.
* A sequence gap (a message above the number expected) means a W may be
  lost and a book may be out of date with nothing to say so: the session
  is ended at once (Logout naming the gap) and made again, which
  resubscribes every symbol and brings fresh snapshots. FIX's own answer,
  ResendRequest then GapFill, would leave the books as they were.
* Reconnects back off exactly as a WebSocket's (the feed's
  :class:`~dragonfly.core.backoff.Backoff`, reset by the feed once a
  connection carried books for a while) and keep to the venue's
  connection-attempt budget. A Logon the venue refuses counts as a failed
  attempt. Nothing escapes :meth:`FixInitiator.run` but cancellation.
* Bounds: one message at most ``max_message`` bytes (a bigger one ends the
  session: ``oversized``); what the venue can make us buffer for writing is
  the session's write limit. WebSocket ping settings do not apply: FIX
  heartbeats (``HeartBtInt``) and TestRequests keep the session honest.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time

from dragonfly.core.backoff import Backoff, RateLimit
from dragonfly.core.logs import RateLimitedLog
from dragonfly.core.transport import Connection, ConnectionFactory, FrameHandler
from dragonfly.core.ws import describe_error
from dragonfly.fix.codec import FixMessage
from dragonfly.fix.session import FixSession, SessionConfig
from dragonfly.fix.venue import MAX_MESSAGE, FixVenue, parse_endpoint

log = logging.getLogger("dragonfly.fix.initiator")
_bug_log = RateLimitedLog(log, interval=30.0)
_time_ns = time.time_ns

#: Session messages handed to the feed: Heartbeat and TestRequest (in-order
#: proofs that the stream is current), session Reject (an error to report).
_UP = frozenset({b"0", b"1", b"3"})


class FixInitiator:
    """Keep a FIX initiator session to ``url`` (``fix://host:port``) up until :meth:`close`.

    ``venue`` holds the session settings (CompIDs, HeartBtInt, credentials);
    the other arguments are those of every venue connection
    (:class:`~dragonfly.core.transport.ConnectionFactory`).
    """

    def __init__(
        self,
        url: str,
        handler: FrameHandler,
        *,
        venue: FixVenue,
        ssl_context: ssl.SSLContext | None = None,
        backoff: Backoff | None = None,
        connect_timeout: float = 10.0,
        ping_idle: float = 20.0,
        ping_reply: float = 10.0,
        max_message: int = MAX_MESSAGE,
        connect_limit: RateLimit | None = None,
    ) -> None:
        del ping_idle, ping_reply  # FIX heartbeats do that job (module doc)
        self.url = url
        self.handler = handler
        self.host, self.port, tls = parse_endpoint(url)
        self.ssl_context = (ssl_context or ssl.create_default_context()) if tls else None
        self.backoff = backoff or Backoff()
        self.connect_timeout = connect_timeout
        self.connect_limit = connect_limit
        self.config = SessionConfig(
            sender_comp_id=venue.sender_comp_id,
            target_comp_id=venue.target_comp_id,
            heartbeat_s=venue.heartbeat,
            username=venue.username,
            password=venue.password,
            logon_timeout_s=connect_timeout,
            max_message=max_message,
            # The session reads a W's header, the venue's decoder its bytes: no field split.
            lazy_fields=True,
        )
        self.connects = 0  #: sessions established (Logon answered) so far
        self.oversized = 0  #: sessions ended by a message over ``max_message``
        self.gaps = 0  #: sessions ended by a sequence gap
        self._session: FixSession | None = None
        self._ended: asyncio.Future[str] | None = None
        self._closing = asyncio.Event()

    @property
    def connected(self) -> bool:
        """Whether a session is established right now."""
        session = self._session
        return session is not None and session.logged_on

    @property
    def session(self) -> FixSession | None:
        """The current session (``None`` between connections)."""
        return self._session

    def send(self, payload: bytes) -> None:
        """Send one application message: ``payload`` is its body, MsgType first (``35=V<SOH>...``)."""
        session = self._session
        if session is None or not session.logged_on:
            return  # resent on the next session's on_open
        if not payload.startswith(b"35="):
            raise ValueError(f"a FIX frame starts with its MsgType (35=), got {payload[:20]!r}")
        end = payload.index(b"\x01")
        session.send_body(payload[3:end], payload[end + 1 :])

    def drop(self, reason: str) -> None:
        """End the current session now (Logout saying why); :meth:`run` reconnects after a backoff."""
        session = self._session
        if session is not None and not session.closed:
            session.logout(reason)
            session.close(reason)

    def close(self) -> None:
        """Stop for good: log out and disconnect now, and do not reconnect."""
        self._closing.set()
        self.drop("closed")

    async def run(self) -> None:
        """Connect, log on, wait for the session to end, back off, repeat, until :meth:`close`."""
        loop = asyncio.get_running_loop()
        while not self._closing.is_set():
            if self.connect_limit is not None:
                wait = self.connect_limit.delay()
                if wait > 0:
                    await self._sleep(wait)
                    continue
                self.connect_limit.record()
            self._ended = loop.create_future()
            connects = self.connects
            try:
                await asyncio.wait_for(
                    loop.create_connection(
                        self._make_session,
                        self.host,
                        self.port,
                        ssl=self.ssl_context,
                        server_hostname=self.host if self.ssl_context is not None else None,
                    ),
                    self.connect_timeout,
                )
            except (TimeoutError, OSError, ssl.SSLError, ValueError) as exc:
                self._session = None
                await self._retry(describe_error(exc))
                continue
            except Exception as exc:  # a bug, not the venue: say so, and keep trying
                self._session = None
                _bug_log.warning("%s: connecting failed unexpectedly", self.url, exc_info=True)
                await self._retry(f"unexpected error: {type(exc).__name__}: {exc}")
                continue
            if self._closing.is_set():
                self.drop("closed")  # close() came while connecting
            reason = await self._ended
            self._session = None
            if self.connects == connects:
                # The session ended before the venue's Logon answer: a failed attempt.
                if self._closing.is_set():
                    break
                await self._retry(reason)
                continue
            self.handler.on_close("closed" if self._closing.is_set() else reason)
            if self._closing.is_set():
                break
            await self._sleep(self.backoff.next_delay())

    def _make_session(self) -> FixSession:
        session = FixSession(self.config, self, "initiator")
        session.on_admin = self._on_admin
        session.on_gap = self._on_gap
        self._session = session
        return session

    async def _retry(self, reason: str) -> None:
        delay = self.backoff.next_delay()
        self.handler.on_connect_failed(reason, delay)
        await self._sleep(delay)

    async def _sleep(self, delay: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._closing.wait(), delay)

    # -- SessionHandler (called by the session, synchronously, on the loop) ----

    def on_logon(self, session: FixSession) -> None:
        self.connects += 1
        self.handler.on_open(self)

    def on_message(self, session: FixSession, msg: FixMessage) -> None:
        # The hot path: the wire bytes up, the decoder reads what it needs.
        self.handler.on_frame(msg.raw, _time_ns(), session.buffered == 0)

    def on_writable(self, session: FixSession) -> None:
        pass  # subscribe frames are few; nothing waits for the buffer to drain

    def on_close(self, session: FixSession, reason: str) -> None:
        if "-byte limit" in reason or "-byte message limit" in reason:  # the reader's FramingError
            self.oversized += 1
        ended = self._ended
        if ended is not None and not ended.done():
            ended.set_result(reason)

    def _on_admin(self, msg: FixMessage) -> None:
        if msg.msg_type in _UP and self._session is not None and self._session.logged_on:
            self.handler.on_frame(msg.raw, _time_ns(), self._session.buffered == 0)

    def _on_gap(self, expected: int, received: int) -> None:
        self.gaps += 1
        self.drop(f"sequence gap: expected MsgSeqNum {expected}, got {received}; starting a fresh session")


def initiator_for(venue: FixVenue) -> ConnectionFactory:
    """The connection factory of ``venue``'s spec: a :class:`FixInitiator` with its session settings."""

    def connect(
        url: str,
        handler: FrameHandler,
        *,
        ssl_context: ssl.SSLContext | None = None,
        backoff: Backoff | None = None,
        connect_timeout: float = 10.0,
        ping_idle: float = 20.0,
        ping_reply: float = 10.0,
        max_message: int = MAX_MESSAGE,
        connect_limit: RateLimit | None = None,
    ) -> Connection:
        return FixInitiator(
            url,
            handler,
            venue=venue,
            ssl_context=ssl_context,
            backoff=backoff,
            connect_timeout=connect_timeout,
            max_message=max_message,
            connect_limit=connect_limit,
        )

    return connect

