"""The FIX path's null relay writes dragonfly's W, and its subscribers read the stamps dragonfly writes."""

from __future__ import annotations

import asyncio

import pytest

from dragonfly.fix.codec import FixReader, byte_sum, frame
from dragonfly.fix.mdcodec import encode_book
from latency.fix_relay import FixRelay, template_book
from latency.fix_subscribers import StampClient, StampTags, stamps
from latency.subscribers import SubscriberLog


def test_the_null_fix_relay_writes_the_gateways_w_byte_for_byte() -> None:
    book = template_book()
    relay = FixRelay()
    relay.sequence = book.sequence
    tail, tail_sum = relay.stamped(relay.venue_field(book.source_venue), book.source_frame, book.recv_ns,
                                   book.publish_ns)
    assert tail == encode_book(book).tail
    assert tail_sum == byte_sum(tail)


def test_subscribers_read_the_stamps_the_codec_reads() -> None:
    book = template_book()._replace(sequence=77, recv_ns=1_800_000_000_123_456_789, source_frame=4321)
    update = encode_book(book)
    head = b"35=W\x0149=DRAGONFLY\x0156=LAT0\x0134=9\x0152=20260101-00:00:00.000\x01"
    head += b"262=lat-1\x0155=ethbtc\x01"
    raw = frame(head, update.tail, update.tail_sum)
    reader = FixReader()
    reader.feed(raw)
    msg = reader.next()
    assert msg is not None and msg.msg_type == b"W"  # framed right: BodyLength and CheckSum
    got = stamps(raw)
    for tag in (StampTags.sequence, StampTags.publish_ns, StampTags.recv_ns, StampTags.source_venue,
                StampTags.source_frame):
        assert got[b"%d" % tag] == msg.get(tag), tag
    assert got[b"20001"] == b"77" and got[b"20003"] == b"1800000000123456789" and got[b"20005"] == b"4321"
    assert got[b"20004"] == b"binance"


def _w() -> bytes:
    update = encode_book(template_book())
    head = b"35=W\x0149=DRAGONFLY\x0156=LAT0\x0134=2\x0152=20260101-00:00:00.000\x01"
    return frame(head + b"262=lat-1\x0155=ethbtc\x01", update.tail, update.tail_sum)


@pytest.mark.parametrize(
    ("sent", "error"),
    [
        (b"HTTP/1.1 400 Bad Request\r\n\r\nnot a FIX server at all", "not a FIX 4.4 message"),
        (b"8=FIX.4.4\x019=12x45\x0135=0\x0110=000\x01", "unreadable BodyLength"),
        (_w()[:-4] + b"999\x01", "bad BodyLength or CheckSum"),
        (_w()[:-4] + b"ab9\x01", "bad BodyLength or CheckSum"),
        (b"8=FIX.4.4\x019=999999\x0135=W\x01", "over 65536"),
    ],
)
async def test_a_subscriber_drops_a_peer_that_does_not_speak_fix(sent: bytes, error: str) -> None:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(_w() + sent)  # one good W first: it is recorded, the rest ends the session
        await writer.drain()
        await reader.read()  # until the subscriber closes

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    log = SubscriberLog(slow=False)
    first, opened = asyncio.Event(), asyncio.Event()
    client = StampClient("LAT0", log, "ethbtc", first, opened, 0.0)
    loop = asyncio.get_running_loop()
    await loop.create_connection(lambda: client, "127.0.0.1", port)
    async with asyncio.timeout(5):
        while client.transport is not None:
            await asyncio.sleep(0.01)
    server.close()
    await server.wait_closed()
    assert first.is_set() and list(log.sequence) == [1] and list(log.frame) == [1], log
    assert len(client.errors) == 1 and error in client.errors[0], client.errors
