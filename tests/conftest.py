"""Suite-wide configuration: every async test runs on uvloop, as the server does."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping

# gRPC's fork handlers off for the suite, before anything imports grpc: tests start
# subprocesses (fork, then exec at once) while their own gRPC servers and channels are
# live, and grpcio 1.85 runs its handlers in such a child ("Other threads are currently
# calling into gRPC, skipping fork() handlers"); once one aborted the child before its
# exec (ev_epoll1_linux.cc "Check failed: next_worker->state == KICKED": exit -6 in
# test_client_cli_reports_a_full_server_in_one_line). gRPC's fork-support doc says to
# turn them off for programs that always exec right after fork, which the suite does.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")

import pytest
import uvloop


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> Mapping[str, Callable[[], object]]:
    return {"uvloop": uvloop.new_event_loop}


@pytest.fixture(params=["c", "python"])
def both_hot_paths(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test on the C speedups and again on the pure-Python hot path.

    Venue decoders choose when they are made: make them inside the test.

    The C run is skipped, with the reason, when the speedups are not built.
    """
    from dragonfly import accel
    from dragonfly.core import aggregator, bbo, book, liquidity, listener
    from dragonfly.serve import encode

    if request.param == "c":
        if accel.speedups is None:
            pytest.skip("C speedups not built (no C compiler at install) or DRAGONFLY_PURE_PYTHON set")
        monkeypatch.setattr(aggregator, "merge_side", accel.speedups.merge_side)
        monkeypatch.setattr(aggregator, "venue_states", accel.speedups.venue_states)
        monkeypatch.setattr(liquidity, "side_sums", accel.speedups.side_sums)
        monkeypatch.setattr(liquidity, "band_figures", accel.speedups.band_figures)
        monkeypatch.setattr(liquidity, "fill_figures", accel.speedups.fill_figures)
        monkeypatch.setattr(bbo, "bbo_quotes", accel.speedups.bbo_quotes)
        monkeypatch.setattr(listener, "check_book", accel.speedups.check_book)
        monkeypatch.setattr(encode, "speedups", accel.speedups)
        monkeypatch.setattr(book, "_apply_book", accel.speedups.apply_book)
        monkeypatch.setattr(book, "_top_levels", accel.speedups.top_levels)
        monkeypatch.setattr(book, "_apply_text_side", accel.speedups.apply_text_side)
    else:
        monkeypatch.setattr(aggregator, "merge_side", aggregator.merge_side_py)
        monkeypatch.setattr(aggregator, "venue_states", aggregator.venue_states_py)
        monkeypatch.setattr(liquidity, "side_sums", liquidity.side_sums_py)
        monkeypatch.setattr(liquidity, "band_figures", liquidity.band_figures_py)
        monkeypatch.setattr(liquidity, "fill_figures", liquidity.fill_figures_py)
        monkeypatch.setattr(bbo, "bbo_quotes", bbo.bbo_quotes_py)
        monkeypatch.setattr(listener, "check_book", listener.check_book_py)
        monkeypatch.setattr(encode, "speedups", None)
        monkeypatch.setattr(book, "_apply_book", None)
        monkeypatch.setattr(book, "_top_levels", None)
        monkeypatch.setattr(book, "_apply_text_side", None)
        monkeypatch.setattr(accel, "speedups", None)  # decoders made from here on
    return str(request.param)
