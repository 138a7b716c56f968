"""A FIX venue's frames and settings: W decoding, control messages, requests, config and topology keys."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from dragonfly.core.errors import ConfigError, ParseError
from dragonfly.core.health import LivenessKind
from dragonfly.core.venue import ControlKind
from dragonfly.fix.codec import FieldValue, FixReader, encode, frame
from dragonfly.fix.venue import (
    FixVenue,
    control,
    fix_venue_spec,
    make_decoder,
    parse_endpoint,
    route,
    subscribe,
)
from dragonfly.serve.config import parse_config
from dragonfly.topology.file import parse_topology

HEAD: list[tuple[int, FieldValue]] = [(49, "DRAGONFLY"), (56, "ME"), (34, 7), (52, "20261204-05:00:00.000")]


def w(
    entries: Sequence[tuple[str, str, str]],
    req: str = "ethbtc",
    count: int | None = None,
    extra: Sequence[tuple[int, FieldValue]] = ((20001, 5),),
) -> bytes:
    """A W with ``(MDEntryType, MDEntryPx, MDEntrySize)`` entries in FIX's field order."""
    fields: list[tuple[int, FieldValue]] = [
        *HEAD,
        (262, req),
        (55, req),
        (268, len(entries) if count is None else count),
    ]
    for i, (kind, px, qty) in enumerate(entries):
        fields += [(269, kind), (270, px), (271, qty), (282, "binance"), (290, i + 1)]
    return encode("W", [*fields, *extra])


def test_a_full_refresh_is_read_into_float_levels_best_first_with_the_view_sequence() -> None:
    payload = w(
        [("0", "0.05123", "1.5"), ("0", "0.05122", "2"), ("1", "0.05125", "0.25"), ("1", "0.0513", "3")]
    )
    bids, asks, seq = make_decoder(10)(payload) or ((), (), -1)
    assert bids == ((0.05123, 1.5), (0.05122, 2.0))
    assert asks == ((0.05125, 0.25), (0.0513, 3.0))
    assert seq == 5


def test_entries_at_one_price_from_two_upstream_venues_are_one_level() -> None:
    payload = w([("0", "0.05", "1.25"), ("0", "0.05", "2"), ("0", "0.049", "1"), ("1", "0.051", "1")])
    bids, asks, _ = make_decoder(10)(payload) or ((), (), 0)
    assert bids == ((0.05, 3.25), (0.049, 1.0)) and asks == ((0.051, 1.0),)


def test_the_decoder_keeps_the_top_depth_levels() -> None:
    payload = w(
        [("0", f"0.0{50 - i}", "1") for i in range(5)] + [("1", f"0.0{51 + i}", "1") for i in range(5)]
    )
    bids, asks, _ = make_decoder(2)(payload) or ((), (), 0)
    assert bids == ((0.05, 1.0), (0.049, 1.0)) and asks == ((0.051, 1.0), (0.052, 1.0))


def test_fields_in_another_order_and_other_entry_types_take_the_general_read() -> None:
    fields: list[tuple[int, FieldValue]] = [*HEAD, (262, "ethbtc"), (268, 3)]
    fields += [(269, "0"), (271, "2"), (270, "0.05")]  # size before price
    fields += [(269, "2"), (270, "0.0505"), (271, "9")]  # a trade: not the book
    fields += [(269, "1"), (15, "BTC"), (270, "0.051"), (271, "1")]  # a Currency between
    bids, asks, seq = make_decoder(10)(encode("W", fields)) or ((), (), -1)
    assert bids == ((0.05, 2.0),) and asks == ((0.051, 1.0),) and seq == 0


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (w([("0", "0.05", "1")], count=2), "NoMDEntries=2 but carries 1"),
        (w([("0", "1e-2", "1")]), "decimal"),
        (w([("0", "nan", "1")]), "decimal"),
        (w([("0", "-0.05", "1")]), "decimal"),
        (w([("0", "0.0.5", "1")]), "not a decimal"),
        (w([("0", "0.05", "")]), "decimal"),
        (encode("W", [*HEAD, (262, "ethbtc"), (269, "0"), (270, "1"), (271, "1")]), "without NoMDEntries"),
        (encode("W", [*HEAD, (262, "ethbtc"), (268, "x")]), "NoMDEntries"),
        (encode("W", [*HEAD, (262, "ethbtc"), (268, 1), (270, "1"), (269, "0"), (271, "1")]), "before"),
    ],
)
def test_an_unreadable_full_refresh_is_a_parse_error_naming_what(payload: bytes, message: str) -> None:
    with pytest.raises(ParseError, match=message):
        make_decoder(10)(payload)


def test_a_view_sequence_that_goes_back_is_refused() -> None:
    decode = make_decoder(10)
    decode(w([("0", "0.05", "1")], extra=[(20001, 9)]))
    with pytest.raises(ParseError, match="went back"):
        decode(w([("0", "0.05", "1")], extra=[(20001, 8)]))


def test_a_w_routes_by_its_mdreqid_and_anything_else_is_not_a_book() -> None:
    payload = w([("0", "0.05", "1")], req="btcusdt")
    assert route(payload) == (b"btcusdt", payload)
    assert route(encode("0", HEAD)) is None
    assert make_decoder(10)(encode("0", HEAD)) is None


def test_control_messages_are_classified() -> None:
    y = encode("Y", [*HEAD, (262, "xyzabc"), (281, "0"), (58, "unknown instrument 'xyzabc'")])
    assert control(y) == (
        ControlKind.REJECTED,
        "MarketDataRequestReject: unknown symbol (unknown instrument 'xyzabc')",
        "xyzabc",
    )
    assert control(encode("0", HEAD)).kind is ControlKind.HEARTBEAT
    assert control(encode("1", [*HEAD, (112, "T")])).kind is ControlKind.HEARTBEAT
    business = control(
        encode("j", [*HEAD, (372, "V"), (379, "ethbtc"), (380, 3), (58, "no market data here")])
    )
    assert business == (
        ControlKind.REJECTED,
        "BusinessMessageReject of the request: no market data here",
        "ethbtc",
    )
    session_reject = control(encode("3", [*HEAD, (45, 3), (373, 1), (58, "required tag 262 missing")]))
    assert session_reject.kind is ControlKind.ERROR and "required tag 262 missing" in session_reject.detail
    assert control(encode("X", [*HEAD, (262, "ethbtc"), (268, 0)])).kind is ControlKind.UNREADABLE
    assert control(encode("B", [*HEAD, (148, "news")])).kind is ControlKind.IGNORED


def test_one_market_data_request_per_symbol_that_our_reader_frames() -> None:
    frames = subscribe(["ethbtc", "ETH/USDT"], market_depth=10)
    assert len(frames) == 2
    reader = FixReader()
    reader.feed(frame(frames[1]))
    msg = reader.next()
    assert msg is not None and msg.msg_type == b"V"
    assert (msg.get(262), msg.get(263), msg.get(264), msg.get(265), msg.get(55)) == (
        b"ETH/USDT",
        b"1",
        b"10",
        b"0",
        b"ETH/USDT",
    )
    assert msg.group(267, 269, frozenset({269})) == [{269: b"0"}, {269: b"1"}]


def test_the_spec_of_a_fix_venue() -> None:
    spec = fix_venue_spec(
        FixVenue("upstream", "fix://127.0.0.1:9878", heartbeat=7, symbols={"ethbtc": "ETH/BTC"})
    )
    assert spec.name == "upstream" and spec.connection is not None and spec.acked_by_book
    assert spec.venue_symbol("ethbtc") == "ETH/BTC" and spec.venue_symbol("btcusdt") == "btcusdt"
    assert spec.snapshot is not None and spec.snapshot.multi_symbol
    assert spec.snapshot.liveness.kind is LivenessKind.HEARTBEAT
    assert spec.snapshot.liveness.stale_after == 14.0
    with pytest.raises(ValueError, match="no diff channel"):
        spec.channel("diff")


@pytest.mark.parametrize("url", ["ws://h:1", "fix://h", "fix://:9", "fix://h:99999", "fix://h:9/path", "h:9"])
def test_an_endpoint_that_is_not_fix_host_port_is_refused(url: str) -> None:
    with pytest.raises(ConfigError, match="expected fix://host:port"):
        parse_endpoint(url)
    assert parse_endpoint("fixs://example.com:9443") == ("example.com", 9443, True)


# -- configuration ---------------------------------------------------------------


def test_a_fix_venue_on_the_command_line_is_the_only_venue_unless_others_are_named(tmp_path: Path) -> None:
    cfg = parse_config(["ethbtc", "--fix-venue", "upstream=fix://127.0.0.1:9878"], environ={})
    assert cfg.venues == ["upstream"]
    assert cfg.endpoints == {"upstream": "fix://127.0.0.1:9878"}
    fix = cfg.fix_venues["upstream"]
    assert (fix.sender_comp_id, fix.target_comp_id, fix.heartbeat, fix.password) == (
        "DRAGONFLY-FEED",
        "DRAGONFLY",
        5,
        None,
    )
    assert cfg.venue_spec("upstream").connection is not None
    assert cfg.venue_spec("binance").connection is None
    secret = tmp_path / "pw"
    secret.write_text("s3cret\n")
    cfg = parse_config(
        [
            "ethbtc",
            "--venues",
            "binance",
            "--sim",
            "--stale-after",
            "up=3",
            "--channel",
            "diff",
            "--fix-venue",
            f"UP=fix://h:1?sender=B&target=A&heartbeat=9&depth=10&username=u&password_file={secret}",
        ],
        environ={},
    )
    assert cfg.venues == ["binance", "up"]
    fix = cfg.fix_venues["up"]
    assert (fix.sender_comp_id, fix.target_comp_id, fix.heartbeat, fix.market_depth) == ("B", "A", 9, 10)
    assert (fix.username, fix.password) == ("u", "s3cret")
    assert cfg.stale_after == {"up": 3.0}
    assert cfg.channels == {"binance": "diff"}  # a channel for every venue leaves the FIX one be


@pytest.mark.parametrize(
    ("flag", "message"),
    [
        ("upstream=ws://127.0.0.1:1", "expected fix://host:port"),
        ("upstream", "NAME=fix://host:port"),
        ("binance=fix://h:1", "built-in venue"),
        ("up=fix://h:1?colour=red", "unknown option 'colour'"),
        ("up=fix://h:1?heartbeat=0", "heartbeat: expected seconds from 1 to 3600"),
        ("up=fix://h:1?heartbeat=x", "whole numbers"),
        ("up=fix://h:1?sender=a b", "sender_comp_id"),
        ("up=fix://h:1?password_file=/nonexistent/pw", "cannot read"),
    ],
)
def test_a_bad_fix_venue_flag_is_one_clear_line(flag: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config(["ethbtc", "--fix-venue", flag], environ={})


def test_a_fix_venue_in_the_topology_file(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("pass\n")
    path = tmp_path / "topology.toml"
    path.write_text(
        'instruments = ["ethbtc", "btcusdt"]\n'
        "[venues.binance]\n"
        "[venues.upstream]\n"
        'kind = "fix"\nendpoint = "fix://127.0.0.1:9878"\nsender_comp_id = "B"\nheartbeat = 2\n'
        'username = "me"\npassword_file = "pw"\nmarket_depth = 5\nstale_after = 4\n'
        'symbols = { ethbtc = "ETH/BTC" }\n'
        '[aggregators.book]\nkind = "book"\nvenues = ["upstream"]\n'
    )
    cfg = parse_config(["--config", str(path)], environ={})
    assert cfg.venues == ["binance", "upstream"]
    fix = cfg.fix_venues["upstream"]
    assert (fix.endpoint, fix.sender_comp_id, fix.target_comp_id, fix.heartbeat) == (
        "fix://127.0.0.1:9878",
        "B",
        "DRAGONFLY",
        2,
    )
    assert (fix.username, fix.password, fix.market_depth, dict(fix.symbols)) == (
        "me",
        "pass",
        5,
        {"ethbtc": "ETH/BTC"},
    )
    assert cfg.stale_after == {"upstream": 4.0}
    assert cfg.endpoints["upstream"] == "fix://127.0.0.1:9878"


@pytest.mark.parametrize(
    ("table", "message"),
    [
        (
            'kind = "fix"\nendpoint = "ws://h:1"',
            "topology.toml: venues.up.endpoint: expected fix://host:port (or fixs://host:port), got 'ws://h:1'",
        ),
        (
            'kind = "fix"',
            "topology.toml: venues.up.endpoint: expected fix://host:port (or fixs://host:port), got None",
        ),
        (
            'kind = "fix"\nendpoint = "fix://h:1"\nheartbeat = 0',
            "topology.toml: venues.up.heartbeat: expected an integer from 1 to 3600, got 0",
        ),
        (
            'kind = "fix"\nendpoint = "fix://h:1"\nrest_endpoint = "http://h"',
            "topology.toml: venues.up.rest_endpoint: unknown key",
        ),
        (
            'kind = "fix"\nendpoint = "fix://h:1"\nchannel = "diff"',
            "topology.toml: venues.up.channel: expected one of",
        ),
        (
            'kind = "fix"\nendpoint = "fix://h:1"\ntarget_comp_id = "a b"',
            "topology.toml: venues.up.target_comp_id",
        ),
        (
            'kind = "fix"\nendpoint = "fix://h:1"\nsymbols = { ethbtc = 1 }',
            "topology.toml: venues.up.symbols",
        ),
        ('kind = "websocket"', "topology.toml: venues.up.kind: expected one of 'fix', got 'websocket'"),
        ('endpoint = "fix://h:1"', "venues.up: unknown venue"),
    ],
)
def test_a_bad_fix_venue_table_names_the_key(table: str, message: str) -> None:
    import tomllib

    data = tomllib.loads(f'instruments = ["ethbtc"]\n[venues.up]\n{table}\n')
    with pytest.raises(ConfigError) as info:
        parse_topology(data, "topology.toml")
    assert message in str(info.value)


def test_the_cost_bench_runs_and_its_two_reads_agree(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from latency import bench_fix_venue

    monkeypatch.setattr("sys.argv", ["bench_fix_venue", "--rounds", "1", "--n", "20"])
    bench_fix_venue.main()  # asserts the general read equals the fast one on the gateway's W
    out = capsys.readouterr().out
    assert "venue decode (fast)" in out and "whole path" in out


def test_a_lazy_reader_reads_and_refuses_exactly_what_the_eager_one_does() -> None:
    from dragonfly.fix.codec import FixError, FixMessage
    from latency.bench_fix_venue import make_w

    def raw_message(body: bytes) -> bytes:
        checksum = sum(b"8=FIX.4.4\x019=%d\x01" % len(body) + body) & 0xFF
        return b"8=FIX.4.4\x019=%d\x01%s10=%03d\x01" % (len(body), body, checksum)

    stream = [
        make_w(),
        encode("0", HEAD),
        encode("A", [*HEAD, (98, 0), (108, 5), (141, "Y")]),
        encode("W", [*HEAD, (262, "x"), (268, 2), (269, 0), (270, 1), (269, 1), (270, 2), (58, "")]),
        make_w()[:-4] + b"000\x01",  # a bad CheckSum
        raw_message(b"35=0\x0149=A\x01abc\x01"),  # a field that is not tag=value
        raw_message(b"35=0\x0149=A\x010=1\x01"),  # a tag with a leading zero
        raw_message(b"35=0\x011234567890=1\x01"),  # a tag too long
        raw_message(b"49=A\x0135=0\x01"),  # MsgType not third
        raw_message(b"35=\x0149=A\x01"),  # an empty MsgType
        raw_message(b"35=D\x0155=a=b\x01"),  # '=' inside a value
        encode("1", [*HEAD, (112, "T")]),
    ]
    data = b"".join(stream)

    def read_all(lazy: bool) -> list[object]:
        reader = FixReader(1 << 16, lazy=lazy)
        out: list[object] = []
        for at in range(0, len(data), 97):  # fed in pieces that split messages anywhere
            reader.feed(data[at : at + 97])
            while True:
                try:
                    msg = reader.next()
                except FixError as exc:
                    out.append((type(exc).__name__, exc.reason))
                    continue
                if msg is None:
                    break
                out.append(msg)
        return out

    eager, lazy = read_all(False), read_all(True)
    assert len(eager) == len(lazy) == len(stream)
    tags = (8, 9, 35, 34, 49, 52, 56, 58, 98, 108, 112, 141, 262, 268, 269, 270, 271, 20001, 20011, 55, 999)
    lazily_read = 0
    for e, z in zip(eager, lazy, strict=True):
        if not isinstance(e, FixMessage):
            assert e == z
            continue
        assert isinstance(z, FixMessage)
        lazily_read += z._fields is None
        assert (z.msg_type, z.raw, z.seq_num) == (e.msg_type, e.raw, e.seq_num)
        assert [z.get(t) for t in tags] == [e.get(t) for t in tags]
        assert [t in z for t in tags] == [t in e for t in tags]
        assert z.fields == e.fields  # split on first use
    assert lazily_read == 6
