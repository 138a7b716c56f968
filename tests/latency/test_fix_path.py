"""The FIX path's null relay writes dragonfly's W, and its subscribers read the stamps dragonfly writes."""

from __future__ import annotations

from dragonfly.fix.codec import FixReader, byte_sum, frame
from dragonfly.fix.mdcodec import encode_book
from latency.fix_relay import FixRelay, template_book
from latency.fix_subscribers import StampTags, stamps


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
