"""The seed API's FanOut: Summaries encoded only while a BookSummary stream reads them."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from dragonfly.core.types import MergedBook
from dragonfly.serve import server
from dragonfly.serve.encode import encode_summary_queued
from dragonfly.serve.orderbook_pb2 import Summary
from dragonfly.serve.server import SummaryFanOut
from tests.serve.conftest import MakeBook


@pytest.fixture
def encodes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Record the sequence of every book the server module encodes into a Summary."""
    seen: list[int] = []
    real = encode_summary_queued

    def counting(book: MergedBook, clock: Callable[[], int]) -> bytes:
        seen.append(book.sequence)
        return real(book, clock)

    monkeypatch.setattr(server, "encode_summary_queued", counting)
    return seen


def _sequence(payload: bytes | None) -> int:
    assert payload is not None
    return Summary.FromString(payload).sequence


def test_no_stream_no_encoding_and_a_new_stream_gets_the_newest_book(
    encodes: list[int], make_book: MakeBook
) -> None:
    fanout = SummaryFanOut()
    books = [make_book(sequence) for sequence in range(1, 6)]
    before = time.time_ns()
    for book in books:
        fanout.sink(book)
    after = time.time_ns()
    assert encodes == []
    sub = fanout.subscribe()
    assert encodes == [5]
    got = sub.get_nowait()
    assert got is not None
    stamp = Summary.FromString(got).publish_ns
    assert before <= stamp <= after  # when the book came, not when the stream opened
    assert got == encode_summary_queued(books[-1], lambda: stamp)
    fanout.sink(make_book(6))
    fanout.sink(make_book(7))
    assert encodes == [5, 6, 7]  # every book while a stream is open
    assert _sequence(sub.get_nowait()) == 7
    sub.close()
    fanout.sink(make_book(8))
    assert encodes == [5, 6, 7]
    latest = fanout.latest
    assert _sequence(latest) == 8
    assert fanout.latest is latest
    assert encodes == [5, 6, 7, 8]  # once


def test_a_kept_book_is_what_an_open_stream_got_but_for_the_stamp(make_book: MakeBook) -> None:
    book = make_book(3)
    eager = SummaryFanOut()
    sub = eager.subscribe()
    eager.sink(book)
    lazy = SummaryFanOut()
    lazy.sink(book)
    sent, kept = sub.get_nowait(), lazy.latest
    assert sent is not None and kept is not None
    restamped = Summary.FromString(sent)
    restamped.publish_ns = Summary.FromString(kept).publish_ns
    assert Summary.FromString(kept) == restamped
