"""Listener plumbing shared by the live simulator and the replay server.

Both serve WebSocket clients and plain REST GETs on one picows port; this is
the part that does not depend on what is served: binding, routing an upgrade
(through the server's faults) or a GET, reassembling fragmented client
messages, and shutting down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Protocol, TypeVar

from picows import (
    WSCloseCode,
    WSFrame,
    WSListener,
    WSMsgType,
    WSTransport,
    WSUpgradeRequest,
    WSUpgradeResponseWithListener,
    ws_create_server,
)

from dragonfly.sim.http import NOT_FOUND, HttpReply, is_upgrade, split_target, to_picows

if TYPE_CHECKING:
    from dragonfly.sim.faults.faultset import FaultSet
    from dragonfly.sim.peer import Peer

#: Largest fragmented client message reassembled before the client is dropped.
MAX_MESSAGE = 64 * 1024
#: How long a shutdown waits for connections to finish closing.
CLOSE_WAIT_S = 2.0

L = TypeVar("L", bound=WSListener)


class Client(Protocol):
    """What shutdown needs of a session: its transport, once connected."""

    transport: WSTransport | None


class Reassembler:
    """Reassemble a client's fragmented TEXT/BINARY messages, up to MAX_MESSAGE bytes."""

    __slots__ = ("_parts",)

    def __init__(self) -> None:
        """Start with no message in progress."""
        self._parts: bytearray | None = None

    def feed(self, frame: WSFrame, deliver: Callable[[bytes], None],
             close: Callable[[WSCloseCode, str], None]) -> None:
        """Pass a complete message to ``deliver``; ``close`` a client whose message is too big.

        Frames other than TEXT, BINARY and CONTINUATION are ignored.
        """
        kind = frame.msg_type
        if kind in (WSMsgType.TEXT, WSMsgType.BINARY) and frame.fin:
            deliver(frame.get_payload_as_bytes())
        elif kind in (WSMsgType.TEXT, WSMsgType.BINARY):
            self._parts = bytearray(frame.get_payload_as_bytes())
        elif kind == WSMsgType.CONTINUATION and self._parts is not None:
            self._parts += frame.get_payload_as_bytes()
            if len(self._parts) > MAX_MESSAGE:
                close(WSCloseCode.MESSAGE_TOO_BIG, "message too big")
            elif frame.fin:
                message, self._parts = bytes(self._parts), None
                deliver(message)


def authority(host: str, port: int) -> str:
    """Return ``host:port`` for a client URL; a wildcard bind address becomes loopback."""
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    return f"{host}:{port}"


def rest_reply(handle_rest: Callable[[str, dict[str, str]], HttpReply | None], path: str,
               query: dict[str, str], log: logging.Logger, name: str) -> HttpReply:
    """Return the venue's answer to a GET: its handler's reply, 404, or 500 if the handler failed."""
    try:
        reply = handle_rest(path, query)
    except Exception:
        log.exception("%s: REST handler failed for %s", name, path)
        reply = HttpReply(500, b"Internal Server Error", "text/plain; charset=utf-8")
    return reply if reply is not None else NOT_FOUND


def route(request: WSUpgradeRequest, open_session: Callable[[str, dict[str, str]], Peer | None],
          handle_rest: Callable[[str, dict[str, str]], HttpReply | None],
          log: logging.Logger, name: str, faults: FaultSet) -> Peer | WSUpgradeResponseWithListener | None:
    """Answer a WebSocket upgrade with a session (unless a fault says otherwise), a GET with REST.

    The fault control endpoint answers on this port too; REST faults do not
    apply here (see :mod:`dragonfly.sim.faults.rest`).
    """
    path, query = split_target(request.path)
    if is_upgrade(request.headers):
        return faults.upgrade(path, query, open_session)
    control = faults.control(path, query)
    if control is not None:
        return to_picows(control)
    return to_picows(rest_reply(handle_rest, path, query, log, name))


async def listen(router: Callable[[WSUpgradeRequest], L | WSUpgradeResponseWithListener | None],
                 host: str, port: int, ssl_context: ssl.SSLContext | None,
                 logger_name: str) -> tuple[asyncio.Server, int]:
    """Bind ``host:port`` (0 picks a free port); return the server and its port."""
    server = await ws_create_server(
        router,
        host,
        port,
        ssl=ssl_context,
        logger_name=logger_name,
        # Clients' PINGs are answered by the sessions, so a silenced or stalled one goes unanswered.
        enable_auto_pong=False,
        # aiofastnet reports a client's failed TLS handshake to the loop's exception
        # handler with a malformed exception; the stock loop only debug-logs it.
        use_aiofastnet=None if ssl_context is None else False,
    )
    return server, server.sockets[0].getsockname()[1]


async def cancel_tasks(tasks: list[asyncio.Task[None]]) -> None:
    """Cancel ``tasks``, wait for them to end and empty the list."""
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task
    tasks.clear()


async def await_closed(sessions: Sequence[Client]) -> None:
    """Wait up to CLOSE_WAIT_S for ``sessions`` to disconnect, then abort the rest."""
    waits = [s.transport.wait_disconnected() for s in sessions if s.transport is not None]
    if waits:
        done = asyncio.gather(*waits, return_exceptions=True)
        try:
            await asyncio.wait_for(done, CLOSE_WAIT_S)
        except TimeoutError:
            for session in sessions:
                if session.transport is not None:
                    session.transport.disconnect(graceful=False)


async def wait_server_closed(server: asyncio.Server | None) -> None:
    """Wait up to CLOSE_WAIT_S for a closed listening socket to finish closing."""
    if server is not None:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(server.wait_closed(), CLOSE_WAIT_S)


def leave(channels: dict[str, dict[L, None]], session: L, subs: dict[str, None],
          key: str) -> bool:
    """Remove ``session`` (whose subscriptions are ``subs``) from channel ``key``.

    Return False if it was not in it; a channel left without members is forgotten.
    """
    if key not in subs:
        return False
    del subs[key]
    members = channels.get(key)
    if members is not None:
        members.pop(session, None)
        if not members:
            del channels[key]
    return True

