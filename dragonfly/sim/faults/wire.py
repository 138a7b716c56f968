"""Raw WebSocket frames, written past picows, for faults that break the protocol.

picows only writes valid server frames; these builders write whatever
RFC 6455 forbids (a masked server frame, a reserved opcode, RSV1 without an
extension, an oversized PING, a 1-byte CLOSE, a stray CONTINUATION) so a
client's own protocol checks can be exercised.
"""

from __future__ import annotations

import os

TEXT, BINARY, CONTINUATION, CLOSE, PING = 0x1, 0x2, 0x0, 0x8, 0x9
#: The reserved opcode the ``opcode`` variant uses.
RESERVED_OPCODE = 0x3
#: Longest payload RFC 6455 allows in a control frame.
MAX_CONTROL = 125


def frame(opcode: int, payload: bytes, *, fin: bool = True, rsv1: bool = False,
          mask: bytes | None = None) -> bytes:
    """Encode one frame; ``mask`` (4 bytes) sets the mask bit and masks the payload."""
    first = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode
    mask_bit = 0x80 if mask is not None else 0
    size = len(payload)
    if size < 126:
        header = bytes((first, mask_bit | size))
    elif size < 1 << 16:
        header = bytes((first, mask_bit | 126)) + size.to_bytes(2, "big")
    else:
        header = bytes((first, mask_bit | 127)) + size.to_bytes(8, "big")
    if mask is None:
        return header + payload
    return header + mask + apply_mask(payload, mask)


def apply_mask(payload: bytes, mask: bytes) -> bytes:
    """XOR ``payload`` with the repeated 4-byte ``mask`` (its own inverse)."""
    repeated = (mask * (len(payload) // 4 + 1))[: len(payload)]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(repeated, "big")).to_bytes(len(payload), "big")


def close_payload(code: int | None, reason: bytes = b"") -> bytes:
    """Return a CLOSE payload: the 2-byte code and reason, or nothing for ``None``."""
    return b"" if code is None else code.to_bytes(2, "big") + reason


def violation(variant: str, payload: bytes) -> bytes:
    """Return the raw bytes of protocol violation ``variant`` carrying ``payload``."""
    if variant == "masked":
        return frame(TEXT, payload, mask=os.urandom(4))
    if variant == "opcode":
        return frame(RESERVED_OPCODE, payload)
    if variant == "rsv":
        return frame(TEXT, payload, rsv1=True)
    if variant == "ping":
        return frame(PING, (payload + b" " * (MAX_CONTROL + 75))[: MAX_CONTROL + 75])
    if variant == "close":
        return frame(CLOSE, b"\x03")
    if variant == "cont":
        return frame(CONTINUATION, payload)
    raise ValueError(f"unknown protocol variant {variant!r}")


def parse_header(data: bytes) -> tuple[int, bool, bool, bool, int, int] | None:
    """Read a frame header: (opcode, fin, rsv1, masked, header size, payload size), or None if short."""
    if len(data) < 2:
        return None
    first, second = data[0], data[1]
    size, offset = second & 0x7F, 2
    if size == 126:
        if len(data) < 4:
            return None
        size, offset = int.from_bytes(data[2:4], "big"), 4
    elif size == 127:
        if len(data) < 10:
            return None
        size, offset = int.from_bytes(data[2:10], "big"), 10
    masked = bool(second & 0x80)
    if masked:
        offset += 4
    return first & 0x0F, bool(first & 0x80), bool(first & 0x40), masked, offset, size
