"""The FIX codec: framing, every malformed shape, encoding checked by simplefix."""

from __future__ import annotations

import random

import pytest
import simplefix

from dragonfly.fix.codec import (
    FieldError,
    FixMessage,
    FixReader,
    FramingError,
    GarbledError,
    byte_sum,
    encode,
    field,
    format_float,
    frame,
    sending_time,
    to_float,
)

LOGON = encode(
    "A", [(49, "C"), (56, "DRAGONFLY"), (34, 1), (52, "20260101-00:00:00.000"), (98, 0), (108, 30)]
)


def _checksum(data: bytes) -> bytes:
    return b"10=%03d\x01" % (sum(data) % 256)


def _raw(body: bytes, length: int | None = None, checksum: bytes | None = None) -> bytes:
    head = b"8=FIX.4.4\x019=%d\x01" % (len(body) if length is None else length)
    return head + body + (checksum if checksum is not None else _checksum(head + body))


def test_encode_is_read_back_by_simplefix() -> None:
    parser = simplefix.FixParser()
    parser.append_buffer(LOGON)
    msg = parser.get_message()
    assert msg is not None
    assert msg.get(35) == b"A" and msg.get(108) == b"30" and msg.get(56) == b"DRAGONFLY"
    # simplefix writes the same bytes for the same fields.
    ref = simplefix.FixMessage()
    ref.append_pair(8, "FIX.4.4")
    for tag, value in [
        (35, "A"),
        (49, "C"),
        (56, "DRAGONFLY"),
        (34, 1),
        (52, "20260101-00:00:00.000"),
        (98, 0),
        (108, 30),
    ]:
        ref.append_pair(tag, value)
    assert ref.encode() == LOGON


def test_frame_with_shared_tail_equals_whole_encode() -> None:
    tail = b"".join(field(t, v) for t, v in [(55, "ETHBTC"), (268, 1), (269, 0), (270, 0.05), (271, 1.5)])
    head = b"35=W\x0149=D\x0156=C\x0134=7\x0152=20260101-00:00:00.000\x01" + field(262, "r1")
    assert frame(head, tail, byte_sum(tail)) == frame(head + tail)
    assert frame(head, tail, byte_sum(tail)) == encode(
        "W",
        [
            (49, "D"),
            (56, "C"),
            (34, 7),
            (52, "20260101-00:00:00.000"),
            (262, "r1"),
            (55, "ETHBTC"),
            (268, 1),
            (269, 0),
            (270, 0.05),
            (271, 1.5),
        ],
    )


def test_reader_reads_messages_fed_byte_by_byte() -> None:
    reader = FixReader()
    stream = LOGON * 3
    got: list[FixMessage] = []
    for i in range(len(stream)):
        reader.feed(stream[i : i + 1])
        while (msg := reader.next()) is not None:
            got.append(msg)
    assert [m.msg_type for m in got] == [b"A"] * 3
    assert got[0].raw == LOGON
    assert got[0].get_int(108) == 30 and got[0].seq_num == 1 and got[0].get_str(56) == "DRAGONFLY"
    assert reader.buffered == 0


def test_bad_checksum_is_garbled_and_the_stream_goes_on() -> None:
    body = b"35=0\x0149=C\x0156=D\x0134=5\x0152=x\x01"
    reader = FixReader()
    reader.feed(_raw(body, checksum=b"10=000\x01") + LOGON)
    with pytest.raises(GarbledError, match="CheckSum") as info:
        reader.next()
    assert info.value.seq_num == 5
    msg = reader.next()
    assert msg is not None and msg.msg_type == b"A"


@pytest.mark.parametrize("delta", [-5, 5, 40])
def test_wrong_body_length_is_garbled_and_resyncs(delta: int) -> None:
    body = b"35=0\x0149=C\x0156=D\x0134=6\x0152=x\x01"
    reader = FixReader()
    reader.feed(_raw(body, length=len(body) + delta) + LOGON)
    with pytest.raises(GarbledError, match="BodyLength") as info:
        reader.next()
    assert info.value.seq_num == 6
    msg = reader.next()
    assert msg is not None and msg.msg_type == b"A"


def test_body_length_too_long_at_the_end_of_the_stream_is_still_reported() -> None:
    body = b"35=0\x0149=C\x0156=D\x0134=6\x0152=x\x01"
    reader = FixReader()
    reader.feed(_raw(body, length=len(body) + 100))
    with pytest.raises(GarbledError, match="BodyLength"):
        reader.next()


@pytest.mark.parametrize(
    "data",
    [
        b"hello world\r\n",
        b"GET / HTTP/1.1\r\n\r\n",
        b"8=FIX.4.2\x019=5\x0135=0\x0110=000\x01",
        b"8=FIX.4.4\x019=abc\x0135=0\x01",
        b"8=FIX.4.4\x019=123456789012\x01",
    ],
)
def test_unframeable_input_is_fatal(data: bytes) -> None:
    reader = FixReader()
    reader.feed(data)
    with pytest.raises(FramingError) as info:
        reader.next()
    assert info.value.reason
    with pytest.raises(FramingError):  # the reader stays spent
        reader.next()


def test_oversized_message_is_fatal_before_it_is_buffered() -> None:
    reader = FixReader(max_message=1024)
    reader.feed(b"8=FIX.4.4\x019=100000\x0135=V\x01")
    with pytest.raises(FramingError, match="exceeds"):
        reader.next()


def test_missing_checksum_within_the_limit_is_fatal() -> None:
    reader = FixReader(max_message=1024)
    reader.feed(b"8=FIX.4.4\x019=10\x01" + b"58=" + b"x" * 2000 + b"\x01")
    with pytest.raises(FramingError, match="CheckSum"):
        reader.next()


@pytest.mark.parametrize(
    "body",
    [
        b"35=0\x01garbage\x01",  # not tag=value
        b"35=0\x01=5\x01",  # empty tag
        b"49=C\x0135=0\x01",  # MsgType not third
        b"35=\x01",  # empty MsgType
        b"35=0\x0107=1\x01",  # leading zero in a tag
    ],
)
def test_malformed_fields_are_garbled(body: bytes) -> None:
    reader = FixReader()
    reader.feed(_raw(body) + LOGON)
    with pytest.raises(GarbledError):
        reader.next()
    assert reader.next() is not None


def test_random_garbage_never_escapes_the_codec_errors() -> None:
    rng = random.Random(7)
    for _ in range(500):
        data = bytearray(LOGON * 2)
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(len(data))] = rng.choice([0, 1, 48, 61, 255, rng.randrange(256)])
        reader = FixReader(max_message=256)
        reader.feed(bytes(data))
        for _ in range(10):
            try:
                if reader.next() is None:
                    break
            except GarbledError:
                continue
            except FramingError:
                break


def test_typed_getters_and_groups() -> None:
    msg_bytes = encode(
        "V",
        [
            (49, "C"),
            (56, "D"),
            (34, 2),
            (52, "t"),
            (262, "r"),
            (263, 1),
            (264, 0),
            (267, 2),
            (269, 0),
            (269, 1),
            (146, 2),
            (55, "ethbtc"),
            (55, "btcusdt"),
            (58, "x"),
        ],
    )
    reader = FixReader()
    reader.feed(msg_bytes)
    msg = reader.next()
    assert msg is not None
    assert msg.group(267, 269, frozenset({269})) == [{269: b"0"}, {269: b"1"}]
    assert [e[55] for e in msg.group(146, 55, frozenset({55, 65, 48, 22}))] == [b"ethbtc", b"btcusdt"]
    assert msg.group(999, 1, frozenset()) == []
    assert msg.require_int(263) == 1
    with pytest.raises(FieldError) as info:
        msg.require(111)
    assert info.value.tag == 111 and info.value.session_reason == 1
    bad = FixMessage(b"V", [(35, b"V"), (263, b"x1"), (146, b"3"), (55, b"a")])
    with pytest.raises(FieldError) as info:
        bad.get_int(263)
    assert info.value.session_reason == 6
    with pytest.raises(FieldError) as info:
        bad.group(146, 55, frozenset({55}))
    assert info.value.session_reason == 16


@pytest.mark.parametrize(
    "value",
    [
        1e-9,
        1.5e-7,
        2.5e-8,
        1e-300,
        5e-324,
        1e22,
        1.2345678e20,
        1e16,
        0.1,
        123.0,
        0.05001,
        65000.12,
        -2.5e-8,
        0.0,
    ],
)
def test_floats_never_use_an_exponent_and_read_back_exactly(value: float) -> None:
    text = format_float(value)
    assert b"e" not in text and b"E" not in text
    assert float(text) == value
    assert to_float(270, text) == value


def test_float_formatting_matches_repr_when_repr_has_no_exponent() -> None:
    assert format_float(0.05) == b"0.05"
    assert format_float(123.0) == b"123.0"  # as repr writes it
    assert format_float(1.5) == b"1.5"
    with pytest.raises(ValueError):
        format_float(float("nan"))
    with pytest.raises(ValueError):
        format_float(float("inf"))


@pytest.mark.parametrize("text", [b"1e5", b"nan", b"inf", b"", b".", b"1.2.3", b"+1", b"- 1"])
def test_to_float_refuses_what_fix_does_not_allow(text: bytes) -> None:
    with pytest.raises(FieldError):
        to_float(270, text)


def test_sending_time_has_milliseconds() -> None:
    assert sending_time(1_767_225_600_123_000_000) == b"20260101-00:00:00.123"
    assert len(sending_time()) == 21


@pytest.mark.parametrize("path", ["c", "python"])
def test_byte_sum_is_the_sum_of_the_bytes(path: str) -> None:
    """Both twins (the C speedup and zlib's Adler-32 in 256-byte chunks) are ``sum(data)``, exactly."""
    from dragonfly import accel
    from dragonfly.fix import codec

    if path == "c":
        if accel.speedups is None:
            pytest.skip("C speedups not built (no C compiler at install) or DRAGONFLY_PURE_PYTHON set")
        summed = accel.speedups.byte_sum
    else:
        summed = codec.byte_sum_py
    rng = random.Random(3)
    for size in (0, 1, 255, 256, 257, 511, 512, 513, 1255, 4096, 70000):
        for fill in (0, 255, None):
            data = bytes(rng.randrange(256) for _ in range(size)) if fill is None else bytes([fill]) * size
            assert summed(data) == sum(data)
            assert summed(bytearray(data)) == sum(data)
            assert summed(memoryview(data)[1:]) == sum(data[1:])
    for bad in ("text", 5, None, [1, 2]):
        with pytest.raises(TypeError):
            summed(bad)  # type: ignore[arg-type]
    with pytest.raises((BufferError, ValueError)):
        summed(memoryview(b"abcdef")[::2])  # not contiguous
