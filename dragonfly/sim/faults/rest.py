"""REST faults: snapshot requests answered late, wrong, stale, ahead or never.

Only the REST port (:mod:`dragonfly.sim.restport`) can answer late or stream
headers, so these faults apply there; the REST answers kept on the WebSocket
port for clients that derive their REST address from it are never faulted.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from dragonfly.sim.http import HttpReply

if TYPE_CHECKING:
    from dragonfly.sim.faults.faultset import FaultSet

#: Writes a whole answer itself, for as long as it takes: (reader, writer).
Streamer = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
#: The unfaulted answer to a GET: (path, query) -> reply.
Plain = Callable[[str, dict[str, str]], HttpReply]
#: Pause between two header lines of ``rest-headers``.
HEADER_PAUSE_S = 0.001


async def answer(faults: FaultSet, path: str, query: dict[str, str], plain: Plain
                 ) -> HttpReply | Streamer:
    """Answer one GET on the REST port: control endpoint, faulted snapshot, or ``plain``."""
    control = faults.control(path, query)
    if control is not None:
        return control
    key = faults.target.snapshot_key(path, query) if faults.rests else None
    if key is None or not faults.rests:
        return plain(path, query)
    active = faults.rests[0]
    fault = active.fault
    active.hit()
    if fault.kind == "rest-slow":
        # The answer as of the request, delivered late (a slow link, a busy
        # gateway): by the time it lands, the book has moved on.
        reply = plain(path, query)
        await asyncio.sleep(float(fault.get("delay")))
        return reply
    if fault.kind == "rest-error":
        reply = faults.target.rest_error(int(fault.get("status")))
        retry = fault.get("retry_after")
        if retry is not None:
            reply = HttpReply(reply.status, reply.body, reply.content_type,
                              (*reply.headers, ("Retry-After", str(retry))))
        return reply
    if fault.kind == "rest-stale":
        return faults.target.snapshot_reply(key, query, float(fault.get("age")), 0)
    if fault.kind == "rest-future":
        return faults.target.snapshot_reply(key, query, 0.0, int(fault.get("ahead")))
    return endless_headers


async def endless_headers(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Write a status line, then a header line every millisecond until the client hangs up."""
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json;charset=UTF-8\r\n")
    gone = asyncio.ensure_future(reader.read())  # completes when the client closes
    try:
        line = 0
        while not gone.done() and not writer.is_closing():
            writer.write(b"X-Dragonfly-Stall: %d\r\n" % line)
            line += 1
            await writer.drain()
            await asyncio.sleep(HEADER_PAUSE_S)
    finally:
        gone.cancel()
        with contextlib.suppress(asyncio.CancelledError, ConnectionError):
            await gone
