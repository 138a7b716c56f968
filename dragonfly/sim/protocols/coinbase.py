"""Coinbase Advanced Trade WebSocket, ``level2`` and ``heartbeats``: requests, answers, messages.

Per the Advanced Trade WebSocket docs ("Channels", "Sequence numbers"): on
``/``, ``{"type":"subscribe"|"unsubscribe","channel":"level2","product_ids":[..]}``
and ``{"type":"subscribe","channel":"heartbeats"}``; each request is answered
with a ``subscriptions`` message listing every subscription of the connection.
Book messages come on channel ``l2_data``: an event ``snapshot`` (the whole
book, after a subscribe) or ``update`` (new absolute quantities, "0" removes),
each level ``{"side":"bid"|"offer","event_time":..,"price_level":..,"new_quantity":..}``.
``heartbeats`` sends one message a second with a ``heartbeat_counter``.

``sequence_num`` counts every message the server sends on a connection, from 0,
of every channel: each connection numbers its own (:class:`Numbering`), so a
message is kept as two parts around the number (:func:`message_parts`) and
spliced per client. Errors (``{"type":"error","message":..}``) carry none. An
unknown product is refused with an error and nothing is subscribed; this
simulator words it ``Failed to subscribe: unknown product_ids [..]`` (the live
venue's ``failure to subscribe`` names no product).
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Callable, Sequence
from typing import Any

from dragonfly.sim.protocols import compact

CHANNEL = "level2"
HEARTBEATS = "heartbeats"
TextLevel = tuple[str, str]
#: (type, product): carry out an accepted (un)subscription of one product.
OnProduct = Callable[[str, str], None]


def iso(ts: float) -> str:
    """Return unix time ``ts`` as ISO 8601 UTC with microseconds (``...T16:43:37.077736Z``)."""
    return datetime.datetime.fromtimestamp(ts, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def iso_micros(micros: int) -> str:
    """Return ``micros`` since the epoch as ISO 8601 UTC, exact to the microsecond."""
    seconds, fraction = divmod(micros, 1_000_000)
    when = datetime.datetime.fromtimestamp(seconds, datetime.UTC)
    return f"{when:%Y-%m-%dT%H:%M:%S}.{fraction:06d}Z"


def raw_parts(channel: str, ts: float, events: bytes) -> tuple[bytes, bytes]:
    """Return a message with the encoded ``events`` split around its ``sequence_num`` value."""
    head = b'{"channel":"%s","client_id":"","timestamp":"%s","sequence_num":' % (
        channel.encode(), iso(ts).encode())
    return head, b',"events":%s}' % events


def message_parts(channel: str, ts: float, events: list[dict[str, Any]]) -> tuple[bytes, bytes]:
    """Return a message split around its ``sequence_num`` value: (head, tail)."""
    return raw_parts(channel, ts, compact(events))


def l2_events(kind: str, product: str, bids: Sequence[TextLevel], asks: Sequence[TextLevel],
              event_time: str) -> bytes:
    """Return the encoded ``events`` of an ``l2_data`` message: one event, bids then offers."""
    levels = [f'{{"side":"bid","event_time":"{event_time}","price_level":"{p}","new_quantity":"{q}"}}'
              for p, q in bids]
    levels += [f'{{"side":"offer","event_time":"{event_time}","price_level":"{p}","new_quantity":"{q}"}}'
               for p, q in asks]
    return f'[{{"type":"{kind}","product_id":"{product}","updates":[{",".join(levels)}]}}]'.encode()


def error(message: str) -> bytes:
    """Return an error message (it carries no ``sequence_num``)."""
    return compact({"type": "error", "message": message})


class Numbering:
    """One connection's protocol state: its message count and its ``heartbeats`` subscription."""

    __slots__ = ("heartbeat_counter", "heartbeats", "seq")

    def __init__(self) -> None:
        """Start at ``sequence_num`` 0, not subscribed to heartbeats."""
        self.seq = 0
        self.heartbeats = False
        self.heartbeat_counter = 0

    def number(self, head: bytes, tail: bytes) -> bytes:
        """Return the message numbered with the connection's next ``sequence_num`` (uses it up)."""
        seq = self.seq
        self.seq = seq + 1
        return b"%s%d%s" % (head, seq, tail)

    def heartbeat(self) -> bytes | None:
        """Return the next ``heartbeats`` message, numbered, or None if not subscribed."""
        if not self.heartbeats:
            return None
        now = datetime.datetime.now(datetime.UTC).timestamp()
        self.heartbeat_counter += 1
        return self.number(*message_parts(HEARTBEATS, now, [
            {"current_time": iso(now), "heartbeat_counter": self.heartbeat_counter}]))


def answer(payload: bytes, conn: Numbering, knows: Callable[[str], bool],
           on_product: OnProduct, subscribed: Callable[[], list[str]]) -> list[bytes]:
    """Return the answers to one client message; ``subscribed`` lists the connection's products after it."""
    try:
        message = json.loads(payload)
    except ValueError:
        return [error("Failed to parse request: invalid JSON")]
    kind = message.get("type") if isinstance(message, dict) else None
    if kind not in ("subscribe", "unsubscribe"):
        return [error(f"Failed to parse request: unknown type {kind!r}")]
    assert isinstance(message, dict)
    channel = message.get("channel")
    if channel == HEARTBEATS:
        conn.heartbeats = kind == "subscribe"
    elif channel == CHANNEL:
        products = message.get("product_ids")
        if not isinstance(products, list) or not products:
            return [error(f"Failed to {kind}: product_ids required for {CHANNEL}")]
        unknown = [p for p in products if not isinstance(p, str) or not knows(p)]
        if unknown:
            return [error(f"Failed to {kind}: unknown product_ids {unknown}")]
        for product in products:
            on_product(kind, product)
    else:
        return [error(f"Failed to {kind}: unsupported channel {channel!r}")]
    subscriptions: dict[str, list[str]] = {}
    products_now = subscribed()
    if products_now:
        subscriptions[CHANNEL] = products_now
    if conn.heartbeats:
        subscriptions[HEARTBEATS] = [HEARTBEATS]
    now = datetime.datetime.now(datetime.UTC).timestamp()
    return [conn.number(*message_parts("subscriptions", now, [{"subscriptions": subscriptions}]))]
