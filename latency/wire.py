"""Minimal protobuf wire helpers: append stamp fields, read them back from a Summary's tail."""

from __future__ import annotations

from typing import NamedTuple

from dragonfly.serve import orderbook_pb2


def varint(value: int) -> bytes:
    """Encode a non-negative int as a protobuf varint."""
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def field_varint(number: int, value: int) -> bytes:
    """A varint field (wire type 0)."""
    return varint(number << 3) + varint(value)


def field_bytes(number: int, value: bytes) -> bytes:
    """A length-delimited field (wire type 2)."""
    return varint(number << 3 | 2) + varint(len(value)) + value


class Stamps(NamedTuple):
    """The tracing fields of one Summary."""

    sequence: int
    recv_ns: int
    publish_ns: int
    source_venue: str
    source_frame: int


class StampReader:
    """Read the stamps of a Summary without decoding its levels.

    Both dragonfly and the relay write ``instrument`` (field 4) after the levels
    and the stamps after it, so the suffix from the instrument field on is a
    valid Summary of its own: parsing those ~50 bytes costs ~1 µs where the
    whole 20-level message costs several (this runs once per message per
    subscriber, in the subscribers' process). The first message is decoded in
    full to learn the instrument.
    """

    def __init__(self) -> None:
        self._marker: bytes | None = None
        self._parse = orderbook_pb2.Summary.FromString

    def read(self, payload: bytes) -> Stamps:
        """Return the stamps of ``payload``."""
        marker = self._marker
        if marker is None:
            msg = self._parse(payload)
            self._marker = field_bytes(4, msg.instrument.encode())
        else:
            i = payload.rfind(marker)
            msg = self._parse(payload[i:] if i >= 0 else payload)
        return Stamps(msg.sequence, msg.recv_ns, msg.publish_ns, msg.source_venue, msg.source_frame)
