"""The FIX 4.4 session layer on an asyncio Protocol: both ends, one state machine.

Public API (stable; changes are additive only):

- ``SessionConfig``: the settings of one end. ``sender_comp_id`` is ours;
  for an initiator ``target_comp_id`` is the acceptor's and ``heartbeat_s`` the
  interval it asks for; for an acceptor ``accept_comp_ids`` (empty: any) and
  ``heartbeat_min_s``/``heartbeat_max_s`` bound the interval a client may ask
  for, and ``username``/``password`` (both ``None``: not checked) are required
  in its Logon. ``max_message`` bounds one inbound message; the write-buffer
  limits bound what a peer can make us hold (see Slow readers).
- ``SessionHandler``: what the owner implements: ``on_logon(session)``,
  ``on_message(session, msg)`` (every application message, in sequence, after
  the session checks), ``on_writable(session)`` (the write buffer drained below
  its low-water mark) and ``on_close(session, reason)`` (exactly once).
- ``FixSession(config, handler, role)``: the ``asyncio.Protocol``; pass
  ``lambda: FixSession(...)`` to ``loop.create_server`` (role ``"acceptor"``) or
  ``loop.create_connection`` (role ``"initiator"``: it sends Logon on connect).
  ``send(msg_type, fields)`` / ``send_body(msg_type, head, tail, tail_sum)``
  write an application message with the standard header (49, 56, 34, 52)
  filled in; ``reject(...)`` sends a session Reject; ``logout(text)`` ends the
  session cleanly; ``close(reason)`` drops the connection now. ``writable``
  says whether the transport wants more data now; ``logged_on``, ``peer_comp_id``,
  ``heartbeat_s``, ``next_out_seq``, ``next_in_seq`` and the counters
  ``messages_sent``/``messages_received`` describe the session. ``buffered``
  says how many received bytes wait to be framed (0: the message being handled
  is the last of its read). Optional hooks ``on_admin(msg)`` (a session-level
  message processed in sequence) and ``on_gap(expected, received)`` (a
  sequence gap, before the ResendRequest) let a venue's initiator
  (``dragonfly.fix.initiator``) see what the session handles itself.

Session rules (both roles; written for a market-data session, nothing stored):

- Sequence numbers start at 1 on both sides for every connection (no store:
  as if ResetSeqNumFlag 141=Y; a Logon with 141=Y is answered with 141=Y).
- A client Logon above MsgSeqNum 1 without 141=Y (a client that keeps sequence
  numbers across connections, QuickFIX's default) is answered with 141=Y: both
  sides start again at 1, and the client's Logon 34=1 141=Y that confirms it is
  taken as that reset. A Logon 141=Y while logged on resets both sequences (and
  is confirmed with ours), as FIX says.
- The first message must be a Logon (A); anything else, a Logon with a wrong
  CompID, a HeartBtInt outside the bounds, a bad EncryptMethod (98 must be 0)
  or bad credentials, ends the connection with a Logout (5) saying why.
  An acceptor waits ``logon_timeout_s`` for the Logon; an initiator as long
  for the answer.
- MsgSeqNum (34) too low without PossDupFlag (43=Y) ends the session (Logout
  with the expected and received numbers); too low with 43=Y is ignored as a
  duplicate; too high sends one ResendRequest (2) for the gap and holds up to
  ``max_held`` later messages until the gap is filled (more: Logout).
- A ResendRequest is answered with one SequenceReset-GapFill (4, 123=Y,
  43=Y, 34=BeginSeqNo, 36=our next number): a market-data session never
  replays stale prices. SequenceReset-Reset (123=N) moves the expected number.
- A message that frames (BodyLength and CheckSum right) but breaks a rule
  gets a Reject (3) with RefSeqNum (45), RefMsgType (372), RefTagID (371)
  where known, SessionRejectReason (373) and Text (58); its number is used.
  A garbled message (wrong BodyLength or CheckSum, a field not tag=value) is
  not processed and uses no number, as FIX says; it still gets a Reject (373=99)
  so a client learns why, and its number is asked for again by the next
  ResendRequest. A stream that cannot be framed any more (not FIX 4.4, an
  unreadable BodyLength, a message over ``max_message``) ends with a Logout.
- Heartbeats: Heartbeat (0) after ``heartbeat_s`` without sending; after
  ``heartbeat_s`` plus 20% without receiving, a TestRequest (1); without any
  message within ``heartbeat_s`` more, the session ends (Logout, close).
  A TestRequest is answered with a Heartbeat carrying its TestReqID (112).
- Slow readers: the transport's write buffer has a high-water mark
  (``write_high``); ``writable`` turns false above it and ``on_writable`` fires
  below ``write_low``. The owner sends application data only while
  ``writable``. While not writable the session also stops reading and handling
  the peer's messages (backpressure: a peer that floods requests without reading
  the answers gets at most a write buffer of them). Session messages are
  always written, but if the buffer ever holds more than ``write_limit`` bytes
  the peer is not reading: the connection is closed, so no peer can grow our
  memory without bound.
- A Logout (5) received is answered with a Logout and the connection closes;
  ``logout(text)`` sends one and closes when the answer comes or after
  ``logout_timeout_s``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Final, Literal, Protocol, cast

from dragonfly.fix.codec import (
    DEFAULT_MAX_MESSAGE,
    SOH,
    FieldError,
    FieldValue,
    FixMessage,
    FixReader,
    FramingError,
    GarbledError,
    fields_bytes,
    frame,
    sending_time,
)

__all__ = ["ADMIN_TYPES", "FixSession", "Role", "SessionConfig", "SessionHandler"]

log = logging.getLogger(__name__)

Role = Literal["acceptor", "initiator"]

#: Session-level (admin) message types, handled here and never passed to the handler.
ADMIN_TYPES: Final = frozenset({b"0", b"1", b"2", b"3", b"4", b"5", b"A"})

#: Extra time allowed for a peer's message to arrive beyond its heartbeat interval.
_RECV_GRACE: Final = 0.2


@dataclass(frozen=True, slots=True)
class SessionConfig:
    """The settings of one end of a session (see the module docstring)."""

    sender_comp_id: str = "DRAGONFLY"
    #: Initiator: the acceptor's CompID (its 49 is checked against it; ``None``: any).
    target_comp_id: str | None = None
    #: Acceptor: the client CompIDs accepted (empty: any).
    accept_comp_ids: frozenset[str] = frozenset()
    #: Initiator: the HeartBtInt asked for (seconds).
    heartbeat_s: int = 30
    #: Acceptor: the HeartBtInt a client may ask for (seconds, inclusive).
    heartbeat_min_s: int = 1
    heartbeat_max_s: int = 300
    #: Credentials: an initiator sends them; an acceptor requires them when set.
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    logon_timeout_s: float = 10.0
    logout_timeout_s: float = 2.0
    max_message: int = DEFAULT_MAX_MESSAGE
    #: Write-buffer marks (bytes): pause above ``write_high``, resume below ``write_low``.
    write_high: int = 256 * 1024
    write_low: int = 64 * 1024
    #: Close the connection when this much is waiting to be written (the peer is not reading).
    write_limit: int = 4 * 1024 * 1024
    #: Messages held while a gap is being filled (more: the session ends).
    max_held: int = 1000
    #: Split a message's fields only when first asked for (``FixReader(lazy=True)``):
    #: for a reader of large messages it needs a few fields of (a FIX venue's W).
    lazy_fields: bool = False

    def __post_init__(self) -> None:
        if not self.sender_comp_id or SOH.decode() in self.sender_comp_id:
            raise ValueError("sender_comp_id must be a non-empty string without SOH")
        if not 1 <= self.heartbeat_min_s <= self.heartbeat_max_s:
            raise ValueError(
                "heartbeat bounds must satisfy 1 <= min <= max, "
                f"got {self.heartbeat_min_s}..{self.heartbeat_max_s}"
            )
        if self.heartbeat_s < 1:
            raise ValueError(f"heartbeat_s must be >= 1, not {self.heartbeat_s}")
        if not 0 <= self.write_low <= self.write_high <= self.write_limit:
            raise ValueError("write limits must satisfy 0 <= write_low <= write_high <= write_limit")


class SessionHandler(Protocol):
    """What the owner of a session implements; every call is synchronous, on the loop."""

    def on_logon(self, session: FixSession) -> None:
        """The session is established: application messages may flow."""

    def on_message(self, session: FixSession, msg: FixMessage) -> None:
        """An application message arrived, in sequence (a ``FieldError`` raised here becomes a Reject)."""

    def on_writable(self, session: FixSession) -> None:
        """The write buffer drained below its low-water mark."""

    def on_close(self, session: FixSession, reason: str) -> None:
        """The connection ended (called once)."""


# States.
_AWAIT_LOGON: Final = 0
_ACTIVE: Final = 1
_LOGOUT_SENT: Final = 2
_CLOSED: Final = 3


class FixSession(asyncio.Protocol):
    """One FIX 4.4 session over one connection (see the module docstring)."""

    def __init__(self, config: SessionConfig, handler: SessionHandler, role: Role = "acceptor") -> None:
        self.config = config
        self.handler = handler
        self.role: Role = role
        self.peer_comp_id: str | None = None
        self.heartbeat_s: float = float(config.heartbeat_s)
        self.next_out_seq = 1
        self.next_in_seq = 1
        self.messages_sent = 0
        self.messages_received = 0
        self.writable = True
        self.close_reason: str | None = None
        self.peername: str = "?"
        self._state = _AWAIT_LOGON
        self._reader = FixReader(config.max_message, lazy=config.lazy_fields)
        self._transport: asyncio.Transport | None = None
        self._loop = asyncio.get_running_loop()
        self._timer: asyncio.TimerHandle | None = None
        self._last_sent = 0.0
        self._last_recv = 0.0
        self._test_req_at: float | None = None
        self._test_req_count = 0
        self._resend_target: int | None = None  # the gap we asked for ends below this number
        self._held: dict[int, FixMessage] = {}
        self._reset_requested = False
        #: Our Logon answer asked a resuming peer to reset; its Logon 141=Y confirms it.
        self._reset_sent = False
        self._reading_paused = False
        # Precomputed header bytes between MsgType and MsgSeqNum.
        self._comp_head = b""
        #: Optional hooks (a venue's initiator sets them): ``on_admin(msg)`` after each
        #: session-level message processed in sequence; ``on_gap(expected, received)``
        #: when a message arrives above the number expected, before the ResendRequest
        #: (a hook that ends the session stops the handling there).
        self.on_admin: Callable[[FixMessage], None] | None = None
        self.on_gap: Callable[[int, int], None] | None = None

    # ----------------------------------------------------------------- properties

    @property
    def logged_on(self) -> bool:
        """Whether the session is established (Logon exchanged, no Logout sent)."""
        return self._state == _ACTIVE

    @property
    def closed(self) -> bool:
        """Whether the connection has ended."""
        return self._state == _CLOSED

    @property
    def buffered(self) -> int:
        """Bytes received and not framed yet (0 while a message is handled: the last of its read)."""
        return self._reader.buffered

    @property
    def write_buffer_size(self) -> int:
        """Bytes waiting in the transport."""
        t = self._transport
        return t.get_write_buffer_size() if t is not None and not t.is_closing() else 0

    # ----------------------------------------------------------------- asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        transport = cast(asyncio.Transport, transport)
        self._transport = transport
        cfg = self.config
        transport.set_write_buffer_limits(high=cfg.write_high, low=cfg.write_low)
        peer = transport.get_extra_info("peername")
        self.peername = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) and len(peer) >= 2 else str(peer)
        now = self._loop.time()
        self._last_recv = self._last_sent = now
        self._timer = self._loop.call_later(cfg.logon_timeout_s, self._logon_timeout)
        if self.role == "initiator":
            self.peer_comp_id = cfg.target_comp_id
            self._set_comp_head(cfg.target_comp_id or "")
            logon: list[tuple[int, FieldValue]] = [(98, 0), (108, cfg.heartbeat_s), (141, b"Y")]
            if cfg.username is not None:
                logon.append((553, cfg.username))
            if cfg.password is not None:
                logon.append((554, cfg.password))
            self._send_admin(b"A", logon)

    def connection_lost(self, exc: Exception | None) -> None:
        self._finish(self.close_reason or (f"connection lost: {exc}" if exc else "connection closed by peer"))

    def pause_writing(self) -> None:
        self.writable = False
        if self.write_buffer_size > self.config.write_limit:
            self.close(f"peer not reading: {self.write_buffer_size} bytes unsent")
            return
        # Backpressure: take no more requests from a peer that does not read the answers,
        # so a flood of requests costs at most a write buffer of answers (and their work).
        t = self._transport
        if t is not None and not t.is_closing() and not self._reading_paused:
            self._reading_paused = True
            t.pause_reading()

    def resume_writing(self) -> None:
        self.writable = True
        if self._reading_paused and self._state != _CLOSED:
            self._reading_paused = False
            t = self._transport
            if t is not None and not t.is_closing():
                t.resume_reading()
            self._process()  # what was read before the pause
        if self._state == _ACTIVE:
            self.handler.on_writable(self)

    def data_received(self, data: bytes) -> None:
        if self._state == _CLOSED:
            return
        self._reader.feed(data)
        self._last_recv = self._loop.time()
        self._process()

    def _process(self) -> None:
        """Handle the messages read, until none is whole or the peer stops reading our answers."""
        reader = self._reader
        while self._state != _CLOSED and self.writable:
            try:
                msg = reader.next()
            except GarbledError as exc:
                self._on_garbled(exc)
                continue
            except FramingError as exc:
                self._fail(f"unreadable stream: {exc.reason}")
                return
            if msg is None:
                return
            self.messages_received += 1
            try:
                self._on_message(msg)
            except FieldError as exc:
                self._reject_field(msg, exc)
            except Exception:  # a bug must end this session, never the server
                log.exception("fix %s %s: error handling %r", self.peername, self.peer_comp_id, msg)
                self._fail("internal error handling the message")

    def eof_received(self) -> bool | None:
        self.close_reason = self.close_reason or "peer closed its side"
        return None

    # ----------------------------------------------------------------- sending

    def _set_comp_head(self, target: str) -> None:
        self._comp_head = b"49=" + self.config.sender_comp_id.encode() + b"\x0156=" + target.encode() + SOH

    def _head(self, msg_type: bytes, seq: int, extra: bytes = b"") -> bytes:
        return b"35=%s\x01%s34=%d\x01%s52=%s\x01" % (msg_type, self._comp_head, seq, extra, sending_time())

    def _write(self, data: bytes) -> None:
        t = self._transport
        if t is None or t.is_closing():
            return
        t.write(data)
        self.messages_sent += 1
        self._last_sent = self._loop.time()
        if not self.writable and t.get_write_buffer_size() > self.config.write_limit:
            self.close(f"peer not reading: {t.get_write_buffer_size()} bytes unsent")

    def _send_admin(self, msg_type: bytes, fields: Sequence[tuple[int, FieldValue]]) -> None:
        seq = self.next_out_seq
        self.next_out_seq = seq + 1
        self._write(frame(self._head(msg_type, seq) + fields_bytes(fields)))

    def send(self, msg_type: bytes, fields: Sequence[tuple[int, FieldValue]]) -> int:
        """Send an application message with ``fields`` after the standard header; return its MsgSeqNum.

        Does nothing (returns 0) unless logged on.
        """
        return self.send_body(msg_type, fields_bytes(fields))

    def send_body(self, msg_type: bytes, head: bytes, tail: bytes = b"", tail_sum: int | None = None) -> int:
        """Send an application message whose body (after 52) is ``head + tail``; return its MsgSeqNum.

        ``tail`` may be shared by many sessions with its byte sum ``tail_sum``
        computed once (``codec.byte_sum``); only the header and ``head`` are
        summed here. Does nothing (returns 0) unless logged on.
        """
        if self._state != _ACTIVE:
            return 0
        seq = self.next_out_seq
        self.next_out_seq = seq + 1
        self._write(frame(self._head(msg_type, seq) + head, tail, tail_sum))
        return seq

    def reject(
        self,
        ref_seq: int | None,
        reason: int,
        text: str,
        ref_tag: int | None = None,
        ref_msg_type: bytes | None = None,
    ) -> None:
        """Send a session Reject (3) with RefSeqNum, SessionRejectReason, Text and the refs known."""
        fields: list[tuple[int, FieldValue]] = [(45, ref_seq if ref_seq is not None else 0)]
        if ref_tag is not None:
            fields.append((371, ref_tag))
        if ref_msg_type is not None:
            fields.append((372, ref_msg_type))
        fields.append((373, reason))
        fields.append((58, _text(text)))
        log.info("fix %s %s: reject %s: %s", self.peername, self.peer_comp_id, ref_seq, text)
        self._send_admin(b"3", fields)

    def logout(self, text: str | None = None) -> None:
        """Send Logout (with Text) and close when the peer answers or after ``logout_timeout_s``."""
        if self._state in (_CLOSED, _LOGOUT_SENT):
            return
        self._send_admin(b"5", [(58, _text(text))] if text else [])
        self.close_reason = self.close_reason or (f"logout: {text}" if text else "logout")
        self._state = _LOGOUT_SENT
        self._cancel_timer()
        self._timer = self._loop.call_later(self.config.logout_timeout_s, self.close, self.close_reason)

    def close(self, reason: str) -> None:
        """Drop the connection now (what is buffered is still flushed by the transport)."""
        if self._state == _CLOSED:
            return
        self.close_reason = self.close_reason or reason
        t = self._transport
        if t is not None and not t.is_closing():
            if t.get_write_buffer_size() > self.config.write_limit:
                t.abort()
            else:
                t.close()
        self._finish(self.close_reason)

    def _finish(self, reason: str) -> None:
        if self._state == _CLOSED:
            return
        self._state = _CLOSED
        self._cancel_timer()
        self._held.clear()
        log.info("fix %s %s: session ended: %s", self.peername, self.peer_comp_id, reason)
        self.handler.on_close(self, reason)

    def _fail(self, text: str) -> None:
        """End the session: Logout with ``text`` and close at once (no answer awaited)."""
        if self._state == _CLOSED:
            return
        log.warning("fix %s %s: %s", self.peername, self.peer_comp_id, text)
        self.close_reason = self.close_reason or text
        if self._state != _LOGOUT_SENT:
            if not self._comp_head:
                self._set_comp_head(self.peer_comp_id or "")
            self._send_admin(b"5", [(58, _text(text))])
        self.close(text)

    # ----------------------------------------------------------------- timers

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _logon_timeout(self) -> None:
        self._timer = None
        if self._state == _AWAIT_LOGON:
            self._fail(f"no Logon within {self.config.logon_timeout_s:g} s")

    def _tick(self) -> None:
        """Send heartbeats, test a silent peer, end a dead session; reschedule itself."""
        self._timer = None
        if self._state != _ACTIVE:
            return
        now = self._loop.time()
        hb = self.heartbeat_s
        if now - self._last_sent >= hb:
            self._send_admin(b"0", [])
        wait = hb * (1 + _RECV_GRACE)
        if self._test_req_at is not None:
            if now - self._test_req_at >= wait and self._last_recv <= self._test_req_at:
                self._fail(f"no answer to TestRequest within {wait:g} s: peer presumed dead")
                return
        elif now - self._last_recv >= hb * (1 + _RECV_GRACE):
            self._test_req_count += 1
            self._test_req_at = now
            self._send_admin(b"1", [(112, f"TEST-{self._test_req_count}")])
        if self._state != _ACTIVE:
            return
        due = [self._last_sent + hb]
        if self._test_req_at is not None:
            due.append(self._test_req_at + hb * (1 + _RECV_GRACE))
        else:
            due.append(self._last_recv + hb * (1 + _RECV_GRACE))
        delay = max(0.01, min(due) - now)
        self._timer = self._loop.call_later(delay, self._tick)

    # ----------------------------------------------------------------- receiving

    def _on_garbled(self, exc: GarbledError) -> None:
        if self._state == _AWAIT_LOGON:
            self._fail(f"first message unreadable: {exc.reason}")
            return
        log.info("fix %s %s: garbled message: %s", self.peername, self.peer_comp_id, exc.reason)
        if self._state == _ACTIVE:
            self.reject(exc.seq_num, 99, exc.reason)

    def _reject_field(self, msg: FixMessage, exc: FieldError) -> None:
        if self._state == _ACTIVE:
            self.reject(msg.seq_num, exc.session_reason, exc.reason, exc.tag, msg.msg_type)
        elif self._state == _AWAIT_LOGON:
            self._fail(f"Logon refused: {exc.reason}")

    def _on_message(self, msg: FixMessage) -> None:
        state = self._state
        if state == _AWAIT_LOGON:
            self._on_first(msg)
            return
        seq_text = msg.get(34)
        if seq_text is None or not seq_text.isdigit():
            self._fail("MsgSeqNum (34) missing or not a number")
            return
        seq = int(seq_text)
        sender = msg.get(49)
        target = msg.get(56)
        if sender is None or target is None or msg.get(52) is None:
            missing = 49 if sender is None else 56 if target is None else 52
            self.reject(seq, 1, f"required header tag {missing} missing", missing, msg.msg_type)
            if seq == self.next_in_seq:
                self.next_in_seq += 1
            return
        ours = self.config.sender_comp_id
        if sender.decode("ascii", "replace") != self.peer_comp_id or target != ours.encode():
            wanted = f"expected 49={self.peer_comp_id} 56={ours}"
            self.reject(seq, 9, f"CompID problem: {wanted}", 49, msg.msg_type)
            self._fail("CompID problem: SenderCompID/TargetCompID differ from the Logon")
            return
        msg_type = msg.msg_type
        if msg_type == b"4" and msg.get(123) != b"Y":
            self._on_sequence_reset(msg, seq)
            return
        if msg_type == b"A" and msg.get(141) == b"Y":
            self._on_reset_logon(seq)
            return
        expected = self.next_in_seq
        if seq < expected:
            if msg.get(43) == b"Y":
                return  # a duplicate of something already processed
            self._fail(f"MsgSeqNum too low, expecting {expected} but received {seq}")
            return
        if seq > expected:
            if msg_type == b"5":
                self._answer_logout(msg)
                return
            if self.on_gap is not None:
                self.on_gap(expected, seq)
                if self._state != _ACTIVE:
                    return
            if msg_type == b"2":
                self._dispatch(msg, seq)  # answer it first, then ask for ours
            elif len(self._held) >= self.config.max_held:
                self._fail(f"more than {self.config.max_held} messages held while waiting for a resend")
                return
            else:
                self._held[seq] = msg
            if self._resend_target is None:  # one ResendRequest per gap
                self._resend_target = seq
                self._send_admin(b"2", [(7, expected), (16, 0)])
            return
        self.next_in_seq = seq + 1
        self._dispatch(msg, seq)
        # Release what was held behind a gap, in order.
        held = self._held
        while held and self._state == _ACTIVE:
            nxt = held.pop(self.next_in_seq, None)
            if nxt is None:
                break
            self.next_in_seq += 1
            try:
                self._dispatch(nxt, self.next_in_seq - 1)
            except FieldError as exc:
                self._reject_field(nxt, exc)
        if self._resend_target is not None and self.next_in_seq > self._resend_target:
            self._resend_target = None

    def _dispatch(self, msg: FixMessage, seq: int) -> None:
        msg_type = msg.msg_type
        if msg_type == b"0":
            if self._test_req_at is not None and msg.get(112) is not None:
                self._test_req_at = None
        elif msg_type == b"1":
            test_id = msg.get(112)
            if test_id is None:
                raise FieldError(112, 1, "TestRequest without TestReqID (112)")
            self._send_admin(b"0", [(112, test_id)])
        elif msg_type == b"2":
            self._answer_resend(msg, seq)
        elif msg_type == b"3":
            log.info("fix %s %s: peer rejected our %s: %s (reason %s)", self.peername, self.peer_comp_id,
                     msg.get_str(45), msg.get_str(58), msg.get_str(373))
        elif msg_type == b"4":
            self._on_gap_fill(msg, seq)
        elif msg_type == b"5":
            self._answer_logout(msg)
        elif msg_type == b"A":
            self.reject(seq, 99, "already logged on: a second Logon is not allowed", None, msg_type)
        else:
            self.handler.on_message(self, msg)
        # Any message proves the peer alive.
        self._test_req_at = None
        if self.on_admin is not None and msg_type in ADMIN_TYPES and self._state == _ACTIVE:
            self.on_admin(msg)

    def _answer_resend(self, msg: FixMessage, seq: int) -> None:
        begin = msg.require_int(7)
        msg.require_int(16)
        last_sent = self.next_out_seq - 1
        if begin < 1 or begin > last_sent:
            self.reject(seq, 5, f"BeginSeqNo {begin} is outside 1..{last_sent} (the messages sent)", 7, b"2")
            return
        # Every message is replaced by one gap fill: a market-data session never replays prices.
        fill = b"122=%s\x01123=Y\x0136=%d\x01" % (sending_time(), self.next_out_seq)
        head = self._head(b"4", begin, b"43=Y\x01") + fill
        self._write(frame(head))

    def _on_gap_fill(self, msg: FixMessage, seq: int) -> None:
        new_seq = msg.require_int(36)
        if new_seq <= seq:
            self.reject(seq, 5, f"NewSeqNo {new_seq} must be above the gap fill's MsgSeqNum {seq}", 36, b"4")
            return
        self.next_in_seq = new_seq

    def _on_sequence_reset(self, msg: FixMessage, seq: int) -> None:
        new_seq = msg.require_int(36)
        if new_seq < self.next_in_seq:
            self.reject(seq, 5, f"NewSeqNo {new_seq} is below the expected {self.next_in_seq}", 36, b"4")
            return
        self.next_in_seq = new_seq
        for held_seq in [s for s in self._held if s < new_seq]:
            del self._held[held_seq]

    def _on_reset_logon(self, seq: int) -> None:
        """A Logon with ResetSeqNumFlag (141=Y) while logged on: both sequences start again at 1.

        It confirms the reset our Logon answer asked for, or the peer resets on
        its own, which our Logon 34=1 141=Y confirms.
        """
        if seq != 1:
            text = f"a Logon with ResetSeqNumFlag (141=Y) must have MsgSeqNum 1, not {seq}"
            self.reject(seq, 5, text, 34, b"A")
            return
        self.next_in_seq = 2
        self._held.clear()
        self._resend_target = None
        if self._reset_sent:
            self._reset_sent = False
            return
        log.info("fix %s %s: the peer reset the sequence numbers", self.peername, self.peer_comp_id)
        self.next_out_seq = 1
        self._send_admin(b"A", [(98, 0), (108, int(self.heartbeat_s)), (141, b"Y")])

    def _answer_logout(self, msg: FixMessage) -> None:
        text = msg.get_str(58)
        if self._state == _LOGOUT_SENT:
            self.close(self.close_reason or "logout")
            return
        self.close_reason = f"peer logged out: {text}" if text else "peer logged out"
        self._send_admin(b"5", [])
        self.close(self.close_reason)

    # ----------------------------------------------------------------- Logon

    def _on_first(self, msg: FixMessage) -> None:
        if msg.msg_type != b"A":
            got = msg.msg_type.decode("ascii", "replace")
            self._fail(f"first message must be Logon (A), got MsgType {got}")
            return
        cfg = self.config
        sender = msg.get_str(49)
        target = msg.get_str(56)
        seq = msg.seq_num
        if sender is None or target is None or seq is None or msg.get(52) is None:
            self._fail(
                "Logon refused: SenderCompID (49), TargetCompID (56), MsgSeqNum (34) "
                "and SendingTime (52) are required"
            )
            return
        self.peer_comp_id = sender
        self._set_comp_head(sender)
        if target != cfg.sender_comp_id:
            self._fail(f"Logon refused: TargetCompID {target} is not this end ({cfg.sender_comp_id})")
            return
        encrypt = msg.get(98)
        if encrypt != b"0":
            self._fail("Logon refused: EncryptMethod (98) must be 0 (none)")
            return
        hb_text = msg.get(108)
        if hb_text is None or not hb_text.isdigit():
            self._fail("Logon refused: HeartBtInt (108) missing or not a number")
            return
        hb = int(hb_text)
        if self.role == "acceptor":
            if cfg.accept_comp_ids and sender not in cfg.accept_comp_ids:
                self._fail(f"Logon refused: SenderCompID {sender} is not accepted here")
                return
            if not cfg.heartbeat_min_s <= hb <= cfg.heartbeat_max_s:
                self._fail(
                    f"Logon refused: HeartBtInt {hb} outside the accepted "
                    f"{cfg.heartbeat_min_s}..{cfg.heartbeat_max_s} s"
                )
                return
            needs_credentials = cfg.username is not None or cfg.password is not None
            if needs_credentials and (msg.get_str(553) != cfg.username or msg.get_str(554) != cfg.password):
                self._fail("Logon refused: wrong Username (553) or Password (554)")
                return
        else:
            if cfg.target_comp_id is not None and sender != cfg.target_comp_id:
                self._fail(f"Logon refused: the acceptor is {sender}, not {cfg.target_comp_id}")
                return
        self.heartbeat_s = float(hb)
        self._cancel_timer()
        self._state = _ACTIVE
        resumes = seq > 1 and msg.get(141) != b"Y"
        if self.role == "acceptor":
            reply: list[tuple[int, FieldValue]] = [(98, 0), (108, hb)]
            # A client resuming a sequence (34 > 1, as QuickFIX does by default) is told that
            # both sides start again at 1: nothing is stored here to resume from. It resets
            # and confirms with a Logon 34=1 141=Y (see _on_reset_logon).
            if msg.get(141) == b"Y" or resumes:
                reply.append((141, b"Y"))
            self._send_admin(b"A", reply)
            self._reset_sent = resumes
        self.next_in_seq = seq + 1 if seq == 1 else 1
        self._last_recv = self._loop.time()
        self._timer = self._loop.call_later(self.heartbeat_s, self._tick)
        log.info("fix %s: %s logged on (HeartBtInt %d s)", self.peername, sender, hb)
        self.handler.on_logon(self)
        if resumes and self.role == "initiator" and self._state == _ACTIVE:
            # The peer resumes a sequence we have no record of: ask for the gap.
            self._resend_target = seq
            self._send_admin(b"2", [(7, 1), (16, 0)])


def _text(text: str | None) -> str:
    """Return ``text`` fit for a Text (58) field: ASCII, no SOH, at most 200 characters."""
    if not text:
        return ""
    clean = text.encode("ascii", "replace").decode("ascii").replace("\x01", " ")
    return clean[:200]

