"""The harness's command line: counts and ranges are checked before anything runs."""

from __future__ import annotations

from pathlib import Path

import pytest
from picows import WSMsgType

from latency.__main__ import build_parser


def test_zero_skips_and_negative_counts_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    args = build_parser().parse_args(["--peer-runs", "0", "--capacity-steps", "0"])
    assert (args.peer_runs, args.capacity_steps) == (0, 0)
    for flag in ("--peer-runs", "--capacity-steps"):
        for bad in ("-1", "two"):
            with pytest.raises(SystemExit):
                build_parser().parse_args([flag, bad])
            assert flag in capsys.readouterr().err


def test_capacity_range_must_be_increasing(capsys: pytest.CaptureFixture[str]) -> None:
    assert build_parser().parse_args(["--capacity-range", "100,2000"]).capacity_range == (100.0, 2000.0)
    for bad in ("2000,100", "0,100", "100"):
        with pytest.raises(SystemExit):
            build_parser().parse_args(["--capacity-range", bad])
        assert "LO" in capsys.readouterr().err


def test_subscriber_window_defaults_to_the_clients(capsys: pytest.CaptureFixture[str]) -> None:
    from dragonfly.client.stream import DEFAULT_WINDOW_BYTES

    assert build_parser().parse_args([]).sub_window == DEFAULT_WINDOW_BYTES
    assert build_parser().parse_args(["--sub-window", "grpc"]).sub_window is None
    assert build_parser().parse_args(["--sub-window", "0"]).sub_window == 0
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--sub-window", "-1"])
    assert "--sub-window" in capsys.readouterr().err


def test_bench_window_prints_a_row_per_window(capsys: pytest.CaptureFixture[str]) -> None:
    from latency.bench_window import main

    args = ["--seconds", "0.6", "--rounds", "1", "--rate", "200", "--pause-ms", "50"]
    args += ["--windows", "2048,grpc"]
    assert main(args) == 0
    rows = capsys.readouterr().out.splitlines()[2:]
    assert [row.split()[0] for row in rows] == ["2048", "grpc"]
    assert all(int(row.split()[-1]) > 0 for row in rows)  # the fast reader got updates


@pytest.mark.parametrize("bad", [["--windows", "2048,-1"], ["--seconds", "0.5"], ["--rate", "0"]])
def test_bench_window_refuses_bad_arguments(bad: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    from latency.bench_window import main

    with pytest.raises(SystemExit):
        main(bad)
    assert "error" in capsys.readouterr().err


def test_alternations_split_the_window_and_flip_the_order(capsys: pytest.CaptureFixture[str]) -> None:
    from latency.__main__ import plan

    argv = ["--rates", "500", "--subs", "1,2", "--window", "6", "--alternations", "2", "--paths", "grpc"]
    args = build_parser().parse_args(argv)
    cells = plan(args)
    assert [(c.system, c.subscribers) for c in cells] == [
        ("dragonfly", 1), ("relay", 1), ("relay", 1), ("dragonfly", 1),
        ("relay", 2), ("dragonfly", 2), ("dragonfly", 2), ("relay", 2),
    ]
    assert {c.window_s for c in cells} == {3.0}
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--alternations", "0"])
    assert "--alternations" in capsys.readouterr().err


def test_bench_idle_prints_the_three_modes(capsys: pytest.CaptureFixture[str]) -> None:
    from latency.bench_idle import main

    assert main(["--frames", "40", "--gap-ms", "0.05"]) == 0
    rows = capsys.readouterr().out.splitlines()
    assert [row[:12].strip() for row in rows] == ["back to back", "sleep", "spin"]
    for row in rows:
        assert row.count("p50") == 3 and row.count("p99") == 3  # decode, chain, relay
    with pytest.raises(SystemExit):
        main(["--frames", "5"])
    assert "--frames" in capsys.readouterr().err


def test_each_path_runs_against_its_own_null_relay(capsys: pytest.CaptureFixture[str]) -> None:
    from latency.__main__ import plan

    args = build_parser().parse_args(["--rates", "500", "--subs", "1,10"])
    cells = plan(args)
    assert [(c.system, c.subscribers, c.slow) for c in cells] == [
        ("dragonfly", 1, 0), ("relay", 1, 0), ("relay", 10, 1), ("dragonfly", 10, 1),
        ("dragonfly", 10, 0), ("relay", 10, 0),
        ("relay-fix", 1, 0), ("dragonfly-fix", 1, 0), ("dragonfly-fix", 10, 1), ("relay-fix", 10, 1),
        ("relay-fix", 10, 0), ("dragonfly-fix", 10, 0),
    ]  # fmt: skip
    assert build_parser().parse_args(["--paths", "fix,fix"]).paths == ("fix",)
    for bad in ("", "soap", "grpc,soap"):
        with pytest.raises(SystemExit):
            build_parser().parse_args(["--paths", bad])
        assert "--paths" in capsys.readouterr().err


def test_fix_subscribers_ask_for_the_cells_instrument(tmp_path: Path) -> None:
    from latency.cell import CellSpec, server_command, subscribers_command

    fix = subscribers_command(CellSpec("dragonfly-fix", 500, 10, 1), 9878, tmp_path / "o", "btcusdt")
    assert fix[1:3] == ["-m", "latency.fix_subscribers"]
    assert fix[fix.index("--instrument") + 1] == "btcusdt" and fix[fix.index("--port") + 1] == "9878"
    grpc = subscribers_command(CellSpec("dragonfly", 500, 10, 1), 50051, tmp_path / "o", "btcusdt")
    assert grpc[1:3] == ["-m", "latency.subscribers"] and "--instrument" not in grpc
    serve = server_command("dragonfly-fix", 9878, ["ethbtc"])
    assert serve[serve.index("--fix-port") + 1] == "9878" and serve[serve.index("--port") + 1] != "9878"
    assert server_command("relay-fix", 9878, [])[1:3] == ["-m", "latency.fix_relay"]


def test_the_decode_probes_run_a_decoding_relay_against_the_null_relay(tmp_path: Path) -> None:
    from latency.__main__ import plan
    from latency.cell import CellSpec, engine, server_command, subscribers_command

    args = build_parser().parse_args(["--rates", "500", "--subs", "1", "--paths", "fix-decode,grpc-decode"])
    assert [c.system for c in plan(args)] == ["relay-fix-decode", "relay-fix", "relay", "relay-decode"]
    assert build_parser().parse_args([]).paths == ("grpc", "fix")  # the probes run only when asked
    fix = server_command("relay-fix-decode", 9878, ["--endpoint", "binance=ws://x"])
    assert fix[1:3] == ["-m", "latency.fix_relay"] and "--decode" in fix
    grpc = server_command("relay-decode", 50051, [])
    assert grpc[1:3] == ["-m", "latency.relay"] and "--decode" in grpc
    assert "--decode" not in server_command("relay", 50051, []) + server_command("relay-fix", 9878, [])
    assert engine("relay-fix-decode") == engine("relay-decode") == "relay"
    assert engine("dragonfly-fix") == "dragonfly"
    sub = subscribers_command(CellSpec("relay-fix-decode", 500, 1, 0), 9878, tmp_path / "o")
    assert sub[1:3] == ["-m", "latency.fix_subscribers"]


class _Frame:
    """What a relay's feed reads of a picows text frame."""

    msg_type = WSMsgType.TEXT

    def __init__(self, payload: bytes) -> None:
        self.payload = payload

    def get_payload_as_bytes(self) -> bytes:
        return self.payload


def test_a_decoding_relay_decodes_every_data_frame_with_dragonflys_decoder() -> None:
    from latency.frames import binance_depth20
    from latency.relay import Feed, decoder

    published: list[int] = []
    decoded: list[object] = []
    decode = decoder("binance")

    class Sink:
        def publish(self, venue_field: bytes, frame: int, recv_ns: int) -> None:
            published.append(frame)

    def spy(payload: bytes) -> object:
        decoded.append(out := decode(payload))
        return out

    feed = Feed(Sink(), "binance", [], decode=spy)
    frames = [b'{"result":null,"id":1}', *binance_depth20(3), b'{"lastUpdateId":1,"bids":[["0.1","x']
    for f in frames:
        feed.on_ws_frame(None, _Frame(f))  # type: ignore[arg-type]
    assert published == [2, 3, 4, 5]  # the ack is not published; every data frame is, decoded or not
    assert len(decoded) == 3 and all(d is not None for d in decoded)  # the last one raised
    assert feed.undecoded == 1
    assert decoder("bitstamp") is not None
