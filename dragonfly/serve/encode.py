"""Serialize a MergedBook as an ``orderbook.Summary`` message, fast.

Each merged update is serialized once and the same bytes go to every
subscriber. Building the message with the generated classes costs far more
than the serialization itself (one Python object per level), so
``encode_summary`` writes the proto3 wire format directly. Its output is the
exact bytes the official serializer produces for the same message (fields in
number order, default values omitted), which tests/serve/test_encode.py checks
against ``encode_summary_pb``.

Wire format used here (https://protobuf.dev/programming-guides/encoding/):
a field is a varint key ``number << 3 | wire_type`` followed by its value;
doubles are wire type 1 (8 bytes little-endian), strings and sub-messages wire
type 2 (varint length, then the bytes), integers wire type 0 (varint; an
int64 below zero is its two's complement, 10 bytes). Proto3 omits a scalar
whose value is the default: the empty string, integer 0, and the double whose
bits are all zero (+0.0 only: -0.0 and NaN are written).

With the C speedups (:mod:`dragonfly.accel`) both functions run their C twin,
``encode_summary(book, send_ns, clock)``: same bytes (tests/serve/test_encode.py
runs on both), a few µs less per update (the levels alone: ~0.3 µs a side of 10
against ~2.4 µs here, timeit on this VM).

Why no per-level cache (measured, then left out): caching each level's whole
field keyed by the MergedLevel value (value keys cannot go stale; zeros must
stay uncached, as -0.0 == +0.0) cut a Summary of repeated levels from 7.0 to
5.0 µs, but hashing a level costs ~70 ns, about a third of packing it, and a
miss pays the lookup and the insert on top. On the synthetic frames of
``latency.bench_hotpath`` (every amount redrawn each frame, so about half the
levels of each update are new) the chain frame -> queued got ~12% slower
(41.7 -> 46.7 µs median, old and new interleaved in one process), so the
levels are packed each time, one C call per level.

The venue states (field 11, one ``VenueState`` per venue of the book) are the
last field: they are encoded here, in Python, and appended to the C twin's
bytes too, so both give the official encoding. Their numbers are fixed-width
on the wire, so a state is one ``struct`` pack of its numbers behind a cached
prefix (its name, membership and status): ~0.4 µs a venue here, against
~1.7 µs with varints packed one by one.

:func:`encode_summary_queued` stamps ``publish_ns`` while encoding; it used
to be appended as a second field 7 to the encoded message, which cost one
varint and one copy of the message more. Interleaved in one process, 15 rounds, this
2-core VM: encode + stamp ~10.0 -> ~8.7 µs median per update; the chain frame
-> bytes in 10 queues 2-5% faster (per-round ratio 0.95-0.98).
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable
from functools import partial

from dragonfly.accel import speedups
from dragonfly.core.types import MergedBook, MergedLevel, VenueState
from dragonfly.serve import orderbook_pb2

__all__ = [
    "append_send_ns",
    "encode_summary",
    "encode_summary_pb",
    "encode_summary_queued",
]

# Keys (field number << 3 | wire type) of the fields written here.
_SUMMARY_SPREAD = 0x09  # 1, double
_SUMMARY_BIDS = 0x12  # 2, Level
_SUMMARY_ASKS = 0x1A  # 3, Level
_SUMMARY_INSTRUMENT = 0x22  # 4, string
_SUMMARY_SEQUENCE = b"\x28"  # 5, uint64
_SUMMARY_RECV_NS = b"\x30"  # 6, int64
_SUMMARY_PUBLISH_NS = b"\x38"  # 7, int64
_SUMMARY_SEND_NS = b"\x40"  # 8, int64
_SUMMARY_SOURCE_VENUE = 0x4A  # 9, string
_SUMMARY_SOURCE_FRAME = b"\x50"  # 10, uint64
_SUMMARY_VENUES = 0x5A  # 11, VenueState
_STATE_VENUE = 0x0A  # 1, string
_STATE_IN_MERGE = b"\x10\x01"  # 2, bool (true; false is omitted)
_STATE_STATUS = 0x18  # 3, enum
_STATE_DATA_NS = 0x21  # 4, sfixed64
_STATE_AGE_NS = 0x29  # 5, sfixed64
_STATE_SEQ = 0x31  # 6, fixed64
_LEVEL_EXCHANGE = 0x0A  # 1, string
_LEVEL_PRICE = 0x11  # 2, double
_LEVEL_AMOUNT = 0x19  # 3, double

_U64 = 1 << 64
_I64_MIN = -(1 << 63)
_BYTE = tuple(bytes((i,)) for i in range(256))
_pack_key_double = struct.Struct("<Bd").pack
# Continuation bits (0x80) of the first n - 1 bytes of an n-byte varint.
_CONTINUATION = tuple(int.from_bytes(b"\x80" * (n - 1) + b"\x00" * (9 - n), "little") for n in range(1, 10))

# Per venue name, per side: a packer taking (price, 0x19, amount) and returning
# the whole field "side key, length, Level{exchange, price, amount}". Venue
# names are few, so this is bounded in practice; _MAX_CACHED guards the rest.
_LevelPacker = Callable[[float, int, float], bytes]
_bid_packers: dict[str, _LevelPacker] = {}
_ask_packers: dict[str, _LevelPacker] = {}
_string_fields: dict[tuple[int, str], bytes] = {}
_MAX_CACHED = 1024


def _uvarint(value: int) -> bytes:
    """Return the varint of ``0 <= value < 2**64``."""
    if value < 0x80:
        if value >= 0:
            return _BYTE[value]
        raise ValueError(f"uint64 field out of range: {value}")
    if value < 1 << 63:
        # Spread the 7-bit groups of the low 56 bits into 8-bit bytes with mask
        # steps (28 -> 32, 14 -> 16, 7 -> 8 bits) instead of a per-byte loop:
        # a third of the cost for the 9-byte unix-ns timestamps.
        x = (value & 0xFFFFFFF) | ((value & 0xFFFFFFF0000000) << 4)
        x = (x & 0x00003FFF00003FFF) | ((x & 0x0FFFC0000FFFC000) << 2)
        x = (x & 0x007F007F007F007F) | ((x & 0x3F803F803F803F80) << 1)
        if value >= 1 << 56:
            return (x | 0x8080808080808080).to_bytes(8, "little") + _BYTE[value >> 56]
        size = (value.bit_length() + 6) // 7
        return (x | _CONTINUATION[size - 1]).to_bytes(size, "little")
    if value >= _U64:
        raise ValueError(f"uint64 field out of range: {value}")
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _ivarint(value: int) -> bytes:
    """Return the varint of an int64 (two's complement below zero)."""
    if 0 <= value < 1 << 63:
        return _uvarint(value)
    if _I64_MIN <= value < 0:
        return _uvarint(value + _U64)
    raise ValueError(f"int64 field out of range: {value}")


def _string_field(key: int, text: str) -> bytes:
    """Return key, length and UTF-8 of ``text``; cached, as names repeat."""
    field = _string_fields.get((key, text))
    if field is None:
        data = text.encode()
        field = _BYTE[key] + _uvarint(len(data)) + data
        if len(_string_fields) >= _MAX_CACHED:
            _string_fields.clear()
        _string_fields[key, text] = field
    return field


def _is_default(value: float) -> bool:
    """Return whether proto3 omits a double: only +0.0 (all bits zero)."""
    return value == 0.0 and math.copysign(1.0, value) > 0.0


def _level_packer(side_key: int, exchange: str) -> _LevelPacker:
    """Build the packer of levels with non-zero price and amount of ``exchange``."""
    name = _string_field(_LEVEL_EXCHANGE, exchange) if exchange else b""
    body_len = len(name) + 18  # + price and amount: key byte and 8 bytes each
    prefix = _BYTE[side_key] + _uvarint(body_len) + name + _BYTE[_LEVEL_PRICE]
    # One C call per level: the constant prefix is packed as an "s" field.
    return partial(struct.Struct(f"<{len(prefix)}sdBd").pack, prefix)


def _level_field(side_key: int, level: MergedLevel) -> bytes:
    """Encode any level as a field of Summary: the general, slower path."""
    exchange, price, amount = level
    body = _string_field(_LEVEL_EXCHANGE, exchange) if exchange else b""
    if not _is_default(price):
        body += _pack_key_double(_LEVEL_PRICE, price)
    if not _is_default(amount):
        body += _pack_key_double(_LEVEL_AMOUNT, amount)
    return _BYTE[side_key] + _uvarint(len(body)) + body


def _side(
    parts: list[bytes], side_key: int, packers: dict[str, _LevelPacker], levels: tuple[MergedLevel, ...]
) -> None:
    append = parts.append
    for level in levels:
        exchange, price, amount = level
        # Truthiness is false for +0.0 and -0.0 (both need the slow path's bit
        # check) and true for NaN (written as is, like any non-zero value).
        if price and amount:
            pack = packers.get(exchange)
            if pack is None:
                if len(packers) >= _MAX_CACHED:
                    packers.clear()
                pack = packers[exchange] = _level_packer(side_key, exchange)
            append(pack(price, _LEVEL_AMOUNT, amount))
        else:
            append(_level_field(side_key, level))


def _head(book: MergedBook) -> list[bytes]:
    """Return the fields up to ``recv_ns`` (numbers 1 to 6) of ``book``."""
    instrument, spread, bids, asks, sequence, recv_ns = book[:6]
    parts: list[bytes] = []
    if spread or math.copysign(1.0, spread) < 0.0:  # omit +0.0 only
        parts.append(_pack_key_double(_SUMMARY_SPREAD, spread))
    if bids:
        _side(parts, _SUMMARY_BIDS, _bid_packers, bids)
    if asks:
        _side(parts, _SUMMARY_ASKS, _ask_packers, asks)
    if instrument:
        parts.append(_string_field(_SUMMARY_INSTRUMENT, instrument))
    if sequence:
        parts += (_SUMMARY_SEQUENCE, _uvarint(sequence))
    if recv_ns:
        parts += (_SUMMARY_RECV_NS, _ivarint(recv_ns))
    return parts


def _tail(parts: list[bytes], book: MergedBook, publish_ns: int, send_ns: int) -> bytes:
    """Append the fields from ``publish_ns`` on (numbers 7 to 10); return the message."""
    if publish_ns:
        parts += (_SUMMARY_PUBLISH_NS, _ivarint(publish_ns))
    if send_ns:
        parts += (_SUMMARY_SEND_NS, _ivarint(send_ns))
    source_venue = book.source_venue
    if source_venue:
        parts.append(_string_field(_SUMMARY_SOURCE_VENUE, source_venue))
    source_frame = book.source_frame
    if source_frame:
        parts += (_SUMMARY_SOURCE_FRAME, _uvarint(source_frame))
    return b"".join(parts)


#: The numbers of a state: (its bit in ``present``, its key, its struct code).
_STATE_NUMBERS = ((1, _STATE_DATA_NS, "q"), (2, _STATE_AGE_NS, "q"), (4, _STATE_SEQ, "Q"))
# (venue, in merge, status, which numbers are non-zero) -> the packer of a whole
# state field; proto3 omits a zero number, so each combination has its own.
_StatePacker = Callable[..., bytes]
_state_packers: dict[tuple[str, bool, int, int], _StatePacker] = {}


def _state_packer(venue: str, in_merge: bool, status: int, present: int) -> _StatePacker:
    """Build the packer of one state's field; ``present`` bits: data_ns 1, age_ns 2, seq 4."""
    head = _string_field(_STATE_VENUE, venue) if venue else b""
    if in_merge:
        head += _STATE_IN_MERGE
    if status:
        head += _BYTE[_STATE_STATUS] + _uvarint(status)
    # Each number present: a key byte and 8 bytes (sfixed64 q, fixed64 Q).
    fields = [(key, code) for bit, key, code in _STATE_NUMBERS if present & bit]
    keys = [key for key, _ in fields]
    prefix = _BYTE[_SUMMARY_VENUES] + _uvarint(len(head) + 9 * len(fields)) + head
    pack = struct.Struct(f"<{len(prefix)}s" + "".join("B" + code for _, code in fields)).pack
    if len(keys) == 3:
        k1, k2, k3 = keys
        return lambda a, b, c: pack(prefix, k1, a, k2, b, k3, c)
    return partial(_pack_some, pack, prefix, keys)


def _pack_some(pack: Callable[..., bytes], prefix: bytes, keys: list[int], *values: int) -> bytes:
    """Pack the non-zero ``values`` (those the packer has keys for, in order)."""
    args: list[object] = [prefix]
    for key, value in zip(keys, [v for v in values if v], strict=True):
        args += (key, value)
    return pack(*args)


def _venue_states(states: tuple[VenueState, ...]) -> bytes:
    """Return field 11 (one ``VenueState`` per venue) of a Summary."""
    parts: list[bytes] = []
    for venue, in_merge, status, data_ns, age_ns, seq in states:
        present = (1 if data_ns else 0) | (2 if age_ns else 0) | (4 if seq else 0)
        key = (venue, in_merge, status, present)
        pack = _state_packers.get(key)
        if pack is None:
            if len(_state_packers) >= _MAX_CACHED:
                _state_packers.clear()
            pack = _state_packers[key] = _state_packer(venue, in_merge, status, present)
        try:
            parts.append(pack(data_ns, age_ns, seq))
        except struct.error:
            raise ValueError(f"VenueState number out of range: {data_ns}, {age_ns}, {seq}") from None
    return b"".join(parts)


def encode_summary(book: MergedBook, send_ns: int = 0) -> bytes:
    """Return ``book`` serialized as an ``orderbook.Summary`` (official bytes)."""
    if speedups is not None:
        head: bytes = speedups.encode_summary(book, send_ns, None)
    else:
        head = _tail(_head(book), book, book.publish_ns, send_ns)
    return head + _venue_states(book.venues) if book.venues else head


def encode_summary_queued(book: MergedBook, clock: Callable[[], int]) -> bytes:
    """Return ``book`` serialized with ``publish_ns = clock()`` read after the levels.

    The bytes are exactly ``encode_summary(book._replace(publish_ns=t))`` for
    the ``t`` read: the stamp is taken once the levels are encoded, so
    ``publish_ns - recv_ns`` covers merge *and* encoding, without the second
    field 7 (and the copy of the message) that appending the stamp would cost.
    """
    if speedups is not None:
        head: bytes = speedups.encode_summary(book, 0, clock)
    else:
        head = _tail(_head(book), book, clock(), 0)
    return head + _venue_states(book.venues) if book.venues else head


def append_send_ns(payload: bytes, send_ns: int) -> bytes:
    """Return an encoded Summary with ``send_ns`` set, without re-encoding it.

    Protobuf parsers keep the last occurrence of a scalar field, so appending
    field 8 overrides any ``send_ns`` already in ``payload``; when there was
    none and no later fields (9 to 11) precede it, the result is also the
    official encoding byte for byte (field order aside, it always decodes the
    same).
    """
    if not send_ns:
        return payload
    return payload + _SUMMARY_SEND_NS + _ivarint(send_ns)


def encode_summary_pb(book: MergedBook, send_ns: int = 0) -> bytes:
    """Return ``book`` serialized with the generated classes: the reference."""
    level = orderbook_pb2.Level
    return orderbook_pb2.Summary(
        spread=book.spread,
        bids=[level(exchange=e, price=p, amount=a) for e, p, a in book.bids],
        asks=[level(exchange=e, price=p, amount=a) for e, p, a in book.asks],
        instrument=book.instrument,
        sequence=book.sequence,
        recv_ns=book.recv_ns,
        publish_ns=book.publish_ns,
        send_ns=send_ns,
        source_venue=book.source_venue,
        source_frame=book.source_frame,
        venues=[
            orderbook_pb2.VenueState(
                venue=v.venue,
                in_merge=v.in_merge,
                status=orderbook_pb2.VenueStatus.ValueType(v.status),
                data_ns=v.data_ns,
                age_ns=v.age_ns,
                seq=v.seq,
            )
            for v in book.venues
        ],
    ).SerializeToString()
