"""The recording format: reading the shared recordings, malformed lines, discovery, writing."""

from __future__ import annotations

from pathlib import Path

import pytest

from dragonfly.recording import (
    Config,
    Opened,
    Received,
    RecordedConnection,
    RecordedRest,
    RecordingError,
    RecordingWriter,
    Rest,
    Sent,
    discover,
    is_header,
    parse_line,
    read_recording,
    shared_recordings,
)

RECORDINGS = shared_recordings()
needs_recordings = pytest.mark.skipif(
    RECORDINGS is None,
    reason="shared recordings not found: set DRAGONFLY_RECORDINGS or put them in ../shared/recordings",
)


def line_kinds(path: Path) -> dict[str, int]:
    """Count a file's non-empty lines by shape, without the module under test."""
    counts = {"opened": 0, "sent": 0, "received": 0, "rest": 0, "config": 0}
    for line in path.read_bytes().split(b"\n"):
        if not line.strip():
            continue
        head = line.split(b": ", 1)[0]
        if line[:1].isdigit():
            counts["received"] += 1
        elif line.startswith(b"configuration: "):
            counts["config"] += 1
        elif b" <-> " in line and b": " not in line:
            counts["opened"] += 1
        elif b" <- " in head:
            counts["sent"] += 1
        elif b" -> " in head:
            counts["rest"] += 1
    return counts


# -- the shared recordings ------------------------------------------------------------


@needs_recordings
def test_discover_finds_every_connection_and_rest_file() -> None:
    assert RECORDINGS is not None
    errors: list[RecordingError] = []
    found = discover(RECORDINGS, errors.append)
    assert errors == []
    connections = [(f.venue, f.name) for f in found if isinstance(f, RecordedConnection)]
    rests = [(f.venue, f.name) for f in found if isinstance(f, RecordedRest)]
    assert connections == [
        ("binance", "BINANCE.ws.1.0"), ("bitstamp", "BITSTAMP.ws.1.0"), ("kraken", "KRAKEN.ws.50.0"),
        ("okx", "OKX.ws.1.0"), ("coinbase", "COINBASE.ws.28.0"), ("bybit", "BYBIT.ws.25.0"),
        ("bybit", "BYBIT.ws.26.0"),
    ]
    assert rests == [("binance", "BINANCE.http.0.0"), ("bitstamp", "BITSTAMP.http.0.0")]
    bybit = next(f for f in found if f.name == "BYBIT.ws.26.0")
    assert isinstance(bybit, RecordedConnection)
    assert (bybit.number, bybit.part, bybit.header.name) == (26, 0, "BYBIT.0")


@needs_recordings
def test_every_shared_file_reads_cleanly() -> None:
    assert RECORDINGS is not None
    for path in sorted(RECORDINGS.iterdir()):
        if path.name == "README.md":
            continue
        errors: list[RecordingError] = []
        records = list(read_recording(path, errors.append))
        assert errors == [], path.name
        counts = {
            "opened": sum(isinstance(r, Opened) for r in records),
            "sent": sum(isinstance(r, Sent) for r in records),
            "received": sum(isinstance(r, Received) for r in records),
            "rest": sum(isinstance(r, Rest) for r in records),
            "config": sum(isinstance(r, Config) for r in records),
        }
        assert counts == line_kinds(path), path.name
        assert records, path.name
        if ".ws." in path.name:
            assert isinstance(records[0], Opened) and counts["opened"] == 1
        numbers = [r.line for r in records]
        assert numbers == sorted(numbers) and numbers[0] == 1


@needs_recordings
def test_records_keep_the_exact_bytes() -> None:
    assert RECORDINGS is not None
    path = RECORDINGS / "BINANCE.ws.1.0"
    lines = path.read_bytes().split(b"\n")
    records = list(read_recording(path))
    opened = records[0]
    assert isinstance(opened, Opened)
    assert opened.url.startswith("wss://stream.binance.com:9443/stream?streams=nknusdt@depth@100ms/")
    assert opened.ts == 1633998511.159679
    first = records[1]
    assert isinstance(first, Received)
    assert first.ts == 1633998512.0633569 and first.line == 2
    assert first.payload == lines[1].split(b": ", 1)[1]
    rest = next(iter(read_recording(RECORDINGS / "BITSTAMP.http.0.0")))
    assert isinstance(rest, Rest)
    assert rest.url == "https://www.bitstamp.net/api/v2/order_book/sgbeur"
    assert rest.body.startswith(b'{"timestamp": "1641343695", "microtimestamp": "1641343695572693"')
    sent = [r for r in read_recording(RECORDINGS / "KRAKEN.ws.50.0") if isinstance(r, Sent)]
    assert len(sent) == 1 and sent[0].url == "wss://ws.kraken.com"
    assert sent[0].payload.startswith(b'{"event":"subscribe","pair":["WAVES/EUR"')


@needs_recordings
def test_shared_recording_round_trips_through_the_writer(tmp_path: Path) -> None:
    assert RECORDINGS is not None
    for name in ("BITSTAMP.ws.1.0", "BINANCE.http.0.0", "BYBIT.0"):
        records = list(read_recording(RECORDINGS / name))
        with RecordingWriter(tmp_path / name) as writer:
            for record in records:
                writer.write(record)
        assert list(read_recording(tmp_path / name)) == records


# -- malformed input ---------------------------------------------------------------


def test_malformed_lines_are_reported_with_file_and_line_and_the_rest_is_read(tmp_path: Path) -> None:
    path = tmp_path / "BINANCE.ws.1.0"
    path.write_bytes(
        b"wss://x/ws <-> 1.5\n"
        b"2.0: {\"a\":1}\n"
        b"3.0 {\"no colon\":1}\n"
        b"\n"
        b"wss://x/ws <- nope: {}\n"
        b"wss://x/ws ?? 4.0: {}\n"
        b"1e9: {}\n"
        b"5.25: {\"b\":2}\n"
        b"wss://x/ws <->\n"
        b"https://x/api -> 6.0: {\"c\":3}"
    )
    errors: list[RecordingError] = []
    records = list(read_recording(path, errors.append))
    assert records == [
        Opened("wss://x/ws", 1.5), Received(2.0, b'{"a":1}'), Received(5.25, b'{"b":2}'),
        Rest("https://x/api", 6.0, b'{"c":3}'),
    ]
    assert [r.line for r in records] == [1, 2, 8, 10]
    assert [str(e) for e in errors] == [
        "BINANCE.ws.1.0:3: expected 'TIMESTAMP: PAYLOAD'",
        "BINANCE.ws.1.0:5: expected 'URL <- TIMESTAMP: PAYLOAD'",
        "BINANCE.ws.1.0:6: unknown direction '??' after the URL (expected '<->', '<-' or '->')",
        "BINANCE.ws.1.0:7: expected 'TIMESTAMP: PAYLOAD'",
        "BINANCE.ws.1.0:9: expected 'URL <-> TIMESTAMP'",
    ]
    assert (errors[0].path, errors[0].line) == (path, 3)


def test_malformed_line_raises_without_an_error_callback(tmp_path: Path) -> None:
    path = tmp_path / "OKX.ws.1.0"
    path.write_bytes(b"1.0: {}\ngarbage\n")
    reader = read_recording(path)
    assert next(reader) == Received(1.0, b"{}")
    with pytest.raises(RecordingError, match=r"^OKX\.ws\.1\.0:2: "):
        next(reader)


def test_unreadable_file_raises_naming_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "KRAKEN.ws.9.0"
    with pytest.raises(RecordingError) as info:
        read_recording(missing)
    assert str(missing) in str(info.value) and info.value.line is None
    with pytest.raises(RecordingError, match="cannot read"):
        read_recording(tmp_path)  # a directory


def test_parse_line_shapes() -> None:
    assert parse_line(b"wss://a/b <-> 12.5") == Opened("wss://a/b", 12.5)
    assert parse_line(b"wss://a/b <- 12.5: x: y") == Sent("wss://a/b", 12.5, b"x: y")
    assert parse_line(b"12: ping") == Received(12.0, b"ping")
    assert parse_line(b"configuration: {}") == Config(b"{}")
    with pytest.raises(RecordingError):
        parse_line(b"nan: {}")


# -- discovery -------------------------------------------------------------------------


def test_discover_reports_unknown_venues_and_lists_the_rest(tmp_path: Path) -> None:
    for name in ("FOO.ws.1.0", "binance.ws.2.0", "Kraken.http.0.0", "BINANCE.0", "README.md",
                 "BYBIT.ws.26.0", "BYBIT.ws.3.0", "notes.txt"):
        (tmp_path / name).write_bytes(b"")
    errors: list[RecordingError] = []
    found = discover(tmp_path, errors.append)
    assert [(f.venue, f.name) for f in found] == [
        ("binance", "binance.ws.2.0"), ("kraken", "Kraken.http.0.0"), ("bybit", "BYBIT.ws.3.0"),
        ("bybit", "BYBIT.ws.26.0"),
    ]
    assert len(errors) == 1
    assert "FOO.ws.1.0" in str(errors[0]) and "unknown venue 'FOO'" in str(errors[0])
    with pytest.raises(RecordingError, match="unknown venue"):
        discover(tmp_path)
    assert is_header("BINANCE.0") and not is_header("BINANCE.ws.1.0")


def test_discover_rejects_a_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(RecordingError, match="no such directory") as info:
        discover(tmp_path / "nope")
    assert "nope" in str(info.value)


# -- writing ----------------------------------------------------------------------------


def test_writer_produces_the_line_format_and_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "COINBASE.ws.1.0"
    with RecordingWriter(path) as writer:
        writer.opened("wss://ws-feed.example.com", 1618677816.8434298)
        writer.sent("wss://ws-feed.example.com", 1618677817.020616, '{"type":"subscribe"}')
        writer.received(1618677817.061845, b'{"type":"subscriptions"}')
        writer.received(1618677818, b"pong")
        writer.rest("https://api.example.com/a?b=1", 1618677819.5, b'{"x": [1, 2]}')
        writer.config(b'{"l2_book":["A-B"]}')
    assert path.read_bytes() == (
        b"wss://ws-feed.example.com <-> 1618677816.8434298\n"
        b'wss://ws-feed.example.com <- 1618677817.020616: {"type":"subscribe"}\n'
        b'1618677817.061845: {"type":"subscriptions"}\n'
        b"1618677818.0: pong\n"
        b'https://api.example.com/a?b=1 -> 1618677819.5: {"x": [1, 2]}\n'
        b'configuration: {"l2_book":["A-B"]}\n'
    )
    records = list(read_recording(path))
    assert records == [
        Opened("wss://ws-feed.example.com", 1618677816.8434298),
        Sent("wss://ws-feed.example.com", 1618677817.020616, b'{"type":"subscribe"}'),
        Received(1618677817.061845, b'{"type":"subscriptions"}'),
        Received(1618677818.0, b"pong"),
        Rest("https://api.example.com/a?b=1", 1618677819.5, b'{"x": [1, 2]}'),
        Config(b'{"l2_book":["A-B"]}'),
    ]
    copy = tmp_path / "copy"
    with RecordingWriter(copy) as writer:
        for record in records:
            writer.write(record)
    assert copy.read_bytes() == path.read_bytes()
    with RecordingWriter(copy, append=True) as writer:
        writer.received(2.0, b"more")
    assert list(read_recording(copy))[-1] == Received(2.0, b"more")


def test_writer_rejects_what_the_format_cannot_hold(tmp_path: Path) -> None:
    with RecordingWriter(tmp_path / "x") as writer:
        with pytest.raises(ValueError, match="line break"):
            writer.received(1.0, b"{\n}")
        with pytest.raises(ValueError, match="whitespace"):
            writer.opened("wss://a b", 1.0)
        with pytest.raises(ValueError, match="timestamp"):
            writer.received(float("nan"), b"{}")
        with pytest.raises(ValueError, match="timestamp"):
            writer.received(-1.0, b"{}")
