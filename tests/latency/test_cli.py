"""The harness's command line: counts and ranges are checked before anything runs."""

from __future__ import annotations

import pytest

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
