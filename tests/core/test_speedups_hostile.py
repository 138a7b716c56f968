"""The C speedups against hostile callers (issue 16), and the fuzz job that keeps them honest.

Each reproducer runs in a child process, so that a crash fails one test
instead of ending the run, under ``PYTHONMALLOC=debug``: freed memory is
overwritten there, so reading it goes wrong at once rather than by luck.
The child must return or raise, never crash, and the values it checks must
be right.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from dragonfly import accel

ROOT = Path(__file__).resolve().parents[2]
FUZZER = ROOT / "scripts" / "fuzz_speedups.py"

pytestmark = pytest.mark.skipif(
    accel.speedups is None,
    reason="C speedups not built (no C compiler at install) or DRAGONFLY_PURE_PYTHON set",
)

PRELUDE = """
import gc, os, sys, time
from dragonfly import accel
s = accel.speedups
assert s is not None, "the C speedups are not loaded"

class Clearing:
    '''A number whose __float__ empties lists first.'''
    def __init__(self, value, *victims):
        self.value, self.victims = value, victims
    def __float__(self):
        for victim in self.victims:
            victim.clear()
        return self.value

class Finalizer:
    '''Cyclic garbage that empties lists when the collector frees it.'''
    def __init__(self, *victims):
        self.victims, self.cycle = victims, self
    def __del__(self):
        for victim in self.victims:
            victim.clear()

class LaterClearing(Clearing):
    '''Leaves garbage that empties the lists at the C function's next allocation.'''
    def __float__(self):
        value = self.value
        Finalizer(*self.victims)
        return value

def outcome(fn, *args):
    try:
        return fn(*args)
    except Exception as exc:
        return type(exc)
"""


def run_child(code: str) -> str:
    """Run ``code`` after PRELUDE in a fresh interpreter; its stdout, or fail with what it printed."""
    env = {**os.environ, "PYTHONMALLOC": "debug", "PYTHONFAULTHANDLER": "1"}
    env.pop("DRAGONFLY_PURE_PYTHON", None)
    proc = subprocess.run(
        [sys.executable, "-c", PRELUDE + textwrap.dedent(code) + "\nprint('survived')"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=ROOT,
    )
    assert proc.returncode == 0, f"the child died with status {proc.returncode}:\n{proc.stderr[-3000:]}"
    assert proc.stdout.rstrip().endswith("survived"), proc.stdout
    return proc.stdout


# -- finding 1: the depth -------------------------------------------------------------


def test_read_levels_reads_any_depth_within_what_the_payload_holds() -> None:
    run_child("""
        side40 = b"[" + b",".join(b'["%d.5","%d"]' % (100 - i, i + 1) for i in range(40)) + b"]"
        want = tuple((100 - i + 0.5, float(i + 1)) for i in range(40))
        assert s.read_levels(b'[["1","2"]]', 0, 2**60) == ((1.0, 2.0),)
        for depth in (41, 257, 2**31, 2**32, 2**60, 2**61 + 8, 2**62, sys.maxsize):
            started = time.perf_counter()
            assert s.read_levels(side40, 0, depth) == want, depth
            assert time.perf_counter() - started < 1.0, "a huge depth allocated for itself"
        assert s.read_levels(side40, 0, 39) == want[:39]
        assert s.read_levels(side40[:-1], 0, sys.maxsize) is None  # cut short: not a side
        assert outcome(s.read_levels, side40, 0, 2**63) is OverflowError
        assert outcome(s.read_levels, side40, 0, -1) is ValueError
    """)


# -- finding 2: borrowed references across calls into Python ------------------------------


def test_merge_side_survives_a_level_that_empties_the_lists_it_reads() -> None:
    run_child("""
        from dragonfly.core.types import MergedLevel
        side = []
        side += [(Clearing(10.0, side), 1.0), (9.0, 1.0), (8.0, 2.0)]
        got = s.merge_side([("a", side), ("b", [(9.5, 1.0)])], 10, True, MergedLevel)
        assert [lv.exchange for lv in got] == ["a", "b"], got  # what was there when read
        runs = []
        runs += [("a", [(Clearing(10.0, runs), 1.0), (9.0, 1.0)]), ("b", [(9.5, 1.0)])]
        got = s.merge_side(runs, 10, True, MergedLevel)
        assert all(type(lv) is MergedLevel for lv in got)
        for _ in range(200):  # a collection at every allocation, emptying both
            side = [(float(100 - i), 1.0) for i in range(30)]
            runs = [("b", [(50.5, 1.0)])]
            side[0] = (LaterClearing(100.0, side, runs), 1.0)
            runs.insert(0, ("a", side))
            gc.set_threshold(1, 1, 1)
            outcome(s.merge_side, runs, 25, True, MergedLevel)
            gc.set_threshold(700, 10, 10)
    """)


def test_check_book_survives_a_level_that_empties_the_sides() -> None:
    run_child("""
        bids = []
        bids += [(Clearing(10.0, bids), 1.0), (9.0, 1.0), (8.0, 1.0)]
        assert s.check_book(bids, []) is None
        bids = [(Clearing(10.0), 1.0), (9.0, 1.0)]
        asks = [(11.0, 1.0), (12.0, 1.0)]
        bids[0] = (Clearing(10.0, bids, asks), 1.0)
        assert s.check_book(bids, asks) is None
        # The garbage is collected while the asks are copied (40 levels: an
        # allocation that collects): the copy must not read the emptied list.
        for _ in range(50):
            asks = [(float(11 + i), 1.0) for i in range(40)]
            bids = [(LaterClearing(10.0, asks), 1.0)]
            gc.set_threshold(1, 1, 1)
            assert s.check_book(bids, asks) is None
            gc.set_threshold(700, 10, 10)
    """)


def test_apply_side_survives_levels_emptied_by_their_numbers_or_the_book() -> None:
    run_child("""
        from sortedcontainers import SortedDict
        levels = []
        levels += [(Clearing(10.0, levels), 1.0), (9.0, 1.0), (8.0, 1.0)]
        side = SortedDict()
        assert s.apply_side(side, levels, False, 5.0) is False
        assert list(side) == [] or len(side) == 1

        class Meddling(SortedDict):
            def __setitem__(self, key, value):
                levels.clear()
                super().__setitem__(key, value)

        levels = [(float(i), 1.0) for i in range(1, 30)]
        book = Meddling()
        s.apply_side(book, levels, True, 0.0)
        assert list(book.values()) == [(1.0, 1.0)]  # the first level, then the list was empty
    """)


def test_top_levels_survives_keys_that_clear_the_key_lists() -> None:
    # Before the fix the freed key list was read; whether that crashed
    # depended on what reused its memory. ``python3 dev.py fuzz`` (ASan)
    # runs this same reproducer, and there it is caught every time.
    run_child("""
        from sortedcontainers import SortedDict

        side = None

        class Key(float):
            def __hash__(self):
                if side is not None:
                    for keys in side._list._lists:
                        keys.clear()
                    side._list._lists.clear()
                return float.__hash__(self)

        side = SortedDict({Key(p): (p, 1.0) for p in (1.0, 2.0, 3.0)})
        got = outcome(s.top_levels, side, 3)
        assert got is RuntimeError, got  # the keys went while they were read: said, not crashed
    """)


def test_encode_summary_survives_a_clock_that_empties_the_sides() -> None:
    run_child("""
        from dragonfly.core.types import MergedBook
        from dragonfly.serve.encode import encode_summary_pb
        def levels():  # made at run time, so that nothing else holds them once cleared
            return [("".join(["v"] * 100), float("1.5"), float("2.5")) for _ in range(3)]

        bids = levels()
        book = MergedBook("ethbtc", 0.1, bids, (), 1, 2, 3, "x", 4)
        want = encode_summary_pb(MergedBook("ethbtc", 0.1, tuple(levels()), (), 1, 2, 5, "x", 4))

        def clock():
            bids.clear()
            gc.collect()
            return 5

        assert s.encode_summary(book, 0, clock) == want  # the levels as read, before the clock
    """)


# -- finding 3: the level type ------------------------------------------------------------


def test_merge_side_makes_levels_of_plain_tuple_layouts_only() -> None:
    run_child("""
        from typing import NamedTuple
        from dragonfly.core.types import MergedLevel
        runs = [("a", [(1.0, 2.0)])]
        for bad in (time.struct_time, os.stat_result, type(sys.flags), type(os.times())):
            assert outcome(s.merge_side, runs, 3, True, bad) is TypeError, bad

        class Quote(NamedTuple):
            exchange: str
            price: float
            amount: float

        class SubQuote(Quote):
            __slots__ = ()

        class WithDict(tuple):
            pass

        for good in (MergedLevel, tuple, Quote, SubQuote, WithDict):
            got = s.merge_side(runs, 3, True, good)
            assert type(got[0]) is good and tuple(got[0]) == ("a", 1.0, 2.0), good
    """)


# -- where a depth enters -------------------------------------------------------------------


@pytest.mark.parametrize("depth", [0, -1, 5001, 2**60, 2**61 + 8, True, 2.0, "10"])
def test_every_entry_refuses_a_depth_out_of_bounds(depth: Any) -> None:
    from dragonfly.core.aggregator import Aggregator
    from dragonfly.core.engine import Engine
    from dragonfly.core.errors import ConfigError
    from dragonfly.core.feed import Feed
    from dragonfly.core.slots import SlotQueue
    from dragonfly.venues import get_venue

    with pytest.raises(ConfigError, match="depth must be"):
        Engine("ethbtc", [get_venue("binance")], depth=depth, channels={"binance": "diff"})
    with pytest.raises(ConfigError, match="depth must be"):
        Aggregator("ethbtc", ["a"], depth)
    queue: SlotQueue[Any] = SlotQueue(lambda: None)
    with pytest.raises(ConfigError, match="depth must be"):
        Feed(get_venue("binance"), {"ETHBTC": queue.producer("binance")}, depth=depth, channel="diff")


def test_the_deepest_depth_is_accepted() -> None:
    from dragonfly.core.engine import Engine
    from dragonfly.core.types import MAX_DEPTH
    from dragonfly.venues import get_venue

    engine = Engine("ethbtc", [get_venue("binance")], depth=MAX_DEPTH, channels={"binance": "diff"})
    assert engine.depth == MAX_DEPTH


def test_replay_cli_refuses_a_huge_depth(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "dragonfly.replay", str(tmp_path), "--depth", str(2**61)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert f"--depth must be between 1 and 5000, got {2**61}" in proc.stderr
    assert "Traceback" not in proc.stderr


# -- the fuzz job ------------------------------------------------------------------------


def load_fuzzer() -> ModuleType:
    """scripts/fuzz_speedups.py as a module (a fresh one each time: tests patch it)."""
    spec = importlib.util.spec_from_file_location("fuzz_speedups", FUZZER)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_the_fuzzer_has_a_target_for_every_c_function() -> None:
    fuzzer = load_fuzzer()
    module = accel.speedups
    functions = {n for n in dir(module) if not n.startswith("_") and callable(getattr(module, n))}
    assert set(fuzzer.TARGETS) == functions
    assert set(fuzzer.ROUND) == functions


def test_the_fuzzer_runs_clean_and_replays_a_case() -> None:
    """A short run here (on the normal build); the sanitized one is ``python3 dev.py fuzz``."""
    env = {k: v for k, v in os.environ.items() if k != "DRAGONFLY_PURE_PYTHON"}
    run = [sys.executable, str(FUZZER), "--seed", "16"]
    proc = subprocess.run([*run, "--seconds", "4"], capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "no mismatch" in proc.stdout
    for name in load_fuzzer().TARGETS:
        line = next(line for line in proc.stdout.splitlines() if line.strip().startswith(name + " "))
        assert int(line.split()[1].replace(",", "")) > 0, line
    proc = subprocess.run([*run, "--case", "3"], capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0 and "1 cases" in proc.stdout, proc.stdout + proc.stderr


def test_the_fuzzer_reports_a_c_function_that_disagrees_with_its_twin() -> None:
    """A read_levels that answers wrongly: found by the reproducers, and by a case (a child process)."""
    child = f"""
import importlib.util, sys
spec = importlib.util.spec_from_file_location("fuzz_speedups", {str(FUZZER)!r})
fuzzer = importlib.util.module_from_spec(spec)
sys.modules["fuzz_speedups"] = fuzzer
spec.loader.exec_module(fuzzer)
real = fuzzer.C.module

class Broken:
    def __getattr__(self, name):
        return getattr(real, name)
    def __dir__(self):
        return dir(real)
    @staticmethod
    def read_levels(payload, start, depth):
        real.read_levels(payload, start, depth)
        return "wrong"

fuzzer.C = fuzzer.Counting(Broken())
sys.exit(fuzzer.main(sys.argv[1:]))
"""
    env = {k: v for k, v in os.environ.items() if k != "DRAGONFLY_PURE_PYTHON"}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", child, *args], capture_output=True, text=True, timeout=120, env=env
        )

    proc = run("--seconds", "30", "--seed", "5")
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "MISMATCH in the reproducers: read_levels" in proc.stderr
    assert "replay: python3 dev.py fuzz --seconds 0" in proc.stderr
    case = load_fuzzer().ROUND.index("read_levels")  # the first case that reads levels
    proc = run("--seed", "5", "--case", str(case))
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert f"MISMATCH in case {case} of seed 5: read_levels" in proc.stderr
    assert f"replay: python3 dev.py fuzz --seed 5 --case {case}" in proc.stderr
