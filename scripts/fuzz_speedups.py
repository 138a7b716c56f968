"""Fuzz dragonfly's C speedups against their pure-Python twins, for a bounded time.

Usage::

    python3 dev.py fuzz [--seconds S] [--seed N] [--case I]   # under ASan and UBSan (the job)
    python scripts/fuzz_speedups.py [--seconds S] [--seed N] [--case I]   # the build at hand

``dev.py fuzz`` builds ``dragonfly/_speedups.c`` with AddressSanitizer and
UndefinedBehaviorSanitizer and runs this script on it; any sanitizer report
aborts the run with a non-zero status, and the runner prints the case to
replay. Run directly, this script fuzzes whatever module is built (it refuses
to run on pure Python: there would be nothing to fuzz).

What it calls, for each of the module's functions in turn:

* **venue bytes** (``read_levels``, and ``byte_sum`` on bytes, bytearrays and
  views of them): frames from the shared recordings
  (``$DRAGONFLY_RECORDINGS`` or ``../shared/recordings``; synthetic frames
  when absent), mutated (bytes flipped, inserted, deleted, duplicated,
  numbers swapped for extreme ones), and every truncation of some; starts at
  each nested array and anywhere; depths from 0 to ``sys.maxsize``, and
  values that are not depths at all;
* **books** (``merge_side``, ``check_book``, ``apply_side``,
  ``apply_text_side``, ``top_levels``, ``encode_summary``, ``fix_entries``): random books with the
  recordings' prices, extreme numbers (subnormals, 1e308, -0.0, infinities, NaN),
  short decimals and their neighbouring floats (the FIX writer's repr shortcut),
  extreme depths and integers, and unicode names;
* **liquidity sides** (``side_sums``): sides of the recordings' prices and
  extreme numbers, with a level that is not a float pair, sides that are not
  tuples, and truth values that raise: declined exactly where the twin must
  decide, else the twin's keys and sums bit for bit;
* **venue states** (``venue_states``): random venues in and out of the merge,
  flagged or not, with or without a book and a health record, statuses and
  stamps of every kind, and the inputs it must decline (33 venues, members
  outside [0, 2**64), books that are not plain tuples): declined exactly
  there, else the twin's states;
* **bbo quotes** (``bbo_quotes``): up to 40 venues' runs, sides empty or
  not, prices and amounts tied across venues, NaN, infinities and -0.0, names
  of any type, and what it must decline (a run or side that is not a plain
  tuple, a first level that is not a plain pair of exact floats, a struct
  sequence type): declined exactly there, else the twin's result, its very
  float and nan objects; runs of two lengths, types that are not tuple
  types, arguments that are not sequences or not five;
* **liquidity figures** (``band_figures``, ``fill_figures``): venue books
  on a shared tick grid (ties across venues; up to 200 levels a side, so
  that deep fills bisect ahead) read as the liquidity view reads them, or
  sides of any finite numbers (sums that overflow); quantities shallow, deep,
  at the books' total and beyond, zero, negative, repeated; bands and mids of
  any float; and what they must decline (a number that is not an exact
  finite float, keys out of order, lists of the wrong length, sides that are
  not tuples of float pairs, a best price of 0, more than 64 venues, struct
  sequence types, a fill type with its own indexing): declined exactly
  there, else the twin's figures bit for bit, its nan, quantity and band
  objects where it puts them; finalizers that empty every list mid-call
  (the result is then what they held when read), and arguments of the
  wrong type or count;
* **misbehaving objects**: a ``__float__`` that empties the list being read
  or raises, keys whose ``__hash__`` or ``__eq__`` clears the SortedDict's
  key lists or a venue dict being read, a clock that empties the book's sides, a health record
  whose reads empty the venue lists, raise, or compare by raising, garbage collection on
  every allocation with finalizers that do the same (for ``bbo_quotes``, at a
  chosen allocation of the call: the result is then what the runs held when
  copied), struct sequences and other wrong types. These must only return or raise.

Valid input must give the twin's result exactly: floats bit for bit, levels
of the same type; invalid input the same exception class where the twin
defines one. A mismatch ends the run with exit status 1 and the command that
replays it.

Case ``i`` of seed ``N`` draws everything from ``Random(f"{N}:{i}")``, so
``--seed N --case I`` replays exactly one case. A function added to the C
module without a fuzz target here fails the run at start (and the test suite).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import math
import os
import re
import struct
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from random import Random
from typing import Any, NamedTuple

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import msgspec  # noqa: E402
from sortedcontainers import SortedDict  # noqa: E402

from dragonfly import accel  # noqa: E402
from dragonfly.core import book as book_module  # noqa: E402
from dragonfly.core.aggregator import STATUS_CODES, merge_side_py, venue_states_py  # noqa: E402
from dragonfly.core.bbo import bbo_quotes_py  # noqa: E402
from dragonfly.core.book import L2Book  # noqa: E402
from dragonfly.core.checksum import crc32_digits_py, crc32_interleaved_py  # noqa: E402
from dragonfly.core.health import VenueStatus  # noqa: E402
from dragonfly.core.liquidity import (  # noqa: E402
    Band,
    Fill,
    SideCache,
    VenueAmount,
    band_figures_py,
    fill_figures_py,
    side_sums_py,
)
from dragonfly.core.listener import check_book_py  # noqa: E402
from dragonfly.core.types import MergedBook, MergedLevel, VenueBook, VenueState  # noqa: E402
from dragonfly.core.views import VenueBbo  # noqa: E402
from dragonfly.fix import mdcodec  # noqa: E402
from dragonfly.fix.codec import byte_sum_py  # noqa: E402
from dragonfly.recording import received_payloads, shared_recordings  # noqa: E402
from dragonfly.serve.encode import encode_summary_pb  # noqa: E402
from dragonfly.venues import bybit  # noqa: E402
from dragonfly.venues.bitstamp import _top_of_side  # noqa: E402


class Counting:
    """The C module, each call counted by function name."""

    def __init__(self, module: Any) -> None:
        self.module = module
        self.calls: Counter[str] = Counter()

    def __getattr__(self, name: str) -> Any:
        fn = getattr(self.module, name)
        calls = self.calls

        def counted(*args: Any) -> Any:
            calls[name] += 1
            return fn(*args)

        counted.__name__ = name
        return counted


C: Any = Counting(accel.speedups) if accel.speedups is not None else None


class MismatchError(Exception):
    """The C function and its twin disagree."""


# -- outcomes -----------------------------------------------------------------


def outcome(fn: Callable[..., Any], *args: Any) -> tuple[str, Any]:
    """``("ok", result)`` or ``("raise", exception class)``."""
    try:
        return "ok", fn(*args)
    except Exception as exc:
        return "raise", type(exc)


def same(a: Any, b: Any) -> bool:
    """Equal, with floats bit for bit and containers of the same type."""
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or struct.pack("<d", a) == struct.pack("<d", b)
    if isinstance(a, (tuple, list)) and isinstance(b, (tuple, list)):
        return type(a) is type(b) and len(a) == len(b) and all(map(same, a, b))
    return type(a) is type(b) and bool(a == b)


def expect_same(name: str, got: tuple[str, Any], want: tuple[str, Any], detail: str) -> None:
    if got[0] != want[0] or not (same(got[1], want[1]) if got[0] == "ok" else got[1] is want[1]):
        raise MismatchError(f"{name}: C gave {_short(got)}, the twin {_short(want)}; {detail}")


def _plain(x: object) -> object:
    return tuple(map(_plain, x)) if isinstance(x, tuple) else x


def _short(x: object, limit: int = 300) -> str:
    try:
        text = repr(x)
    except Exception:  # a NamedTuple of more items than fields (a type the call was given): as tuples
        text = repr(_plain(x))
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} chars)"


def survives(fn: Callable[..., Any], *args: Any) -> tuple[str, Any]:
    """Run a hostile call: it may return or raise; a crash is the sanitizers' to report."""
    return outcome(fn, *args)


@contextlib.contextmanager
def collecting_always() -> Iterator[None]:
    """Garbage collection on every allocation (finalizers run at any allocation in C)."""
    old = gc.get_threshold()
    gc.set_threshold(1, 1, 1)
    try:
        yield
    finally:
        gc.set_threshold(*old)


# -- the corpus -----------------------------------------------------------------


_NUMBER_TEXT = re.compile(rb'"(-?[0-9]+(?:\.[0-9]+)?)"')
_ANY_TEXT = re.compile(rb'"([^"\\]{0,40})"')
# fmt: off
EXTREME_TEXTS = [
    b"0", b"-0", b"0.0", b"-0.0", b"1", b"5e-324", b"4.9e-324", b"2.2250738585072014e-308", b"1e308",
    b"1.7976931348623157e308", b"1e309", b"-1e309", b"1e-400", b"9007199254740993", b"123456789012345",
    b"1234567890123456", b"0." + b"0" * 21 + b"1", b"0." + b"0" * 22 + b"1", b"1" + b"0" * 22, b"9" * 63,
    b"9" * 64, b"9" * 200, b"-" + b"9" * 62, b"1e5", b"1E+5", b"1.5e-7", b"0.1", b"2.675", b"NaN",
    b"Infinity", b"-", b".", b"1.", b".5", b"01", b"1e", b"1e+", b"--1", b"+1", b"1_0", b" 1", b"\\u0031",
    b"\xc3\xa9", b"\x00", b"",
]
TOKENS = [
    b'"', b"[", b"]", b",", b'","', b'"],["', b"[[", b"]]", b'["1","2"]', b'["1","2"],', b"\\", b"\x00",
    b"\xff", b" ", b"\n", b"e", b"-", b".", b"{", b"}", *EXTREME_TEXTS[:20],
]
# fmt: on


@dataclass
class Corpus:
    frames: list[bytes] = field(default_factory=list)
    prices: list[float] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    source: str = ""


def synthetic_frames(rng: Random) -> list[bytes]:
    frames = []
    for _ in range(60):
        n = rng.randint(0, 60)
        mid = rng.uniform(0.001, 60000)
        bids = ",".join(f'["{mid - i * 0.01:.8f}","{rng.uniform(0.001, 10):.8f}"]' for i in range(n))
        asks = ",".join(f'["{mid + (i + 1) * 0.01:.8f}","{rng.uniform(0.001, 10):.8f}"]' for i in range(n))
        frames.append(f'{{"lastUpdateId":{rng.randint(1, 2**40)},"bids":[{bids}],"asks":[{asks}]}}'.encode())
    return frames


def load_corpus(per_file: int = 150) -> Corpus:
    """Frames holding nested arrays from every recording, spread over each file."""
    corpus = Corpus()
    folder = shared_recordings()
    if folder is not None:
        for path in sorted(folder.iterdir()):
            if ".ws." not in path.name and ".http." not in path.name:
                continue
            frames = [p for p in received_payloads(path) if b"[[" in p]
            step = max(1, len(frames) // per_file)
            corpus.frames += frames[::step][:per_file]
        corpus.source = f"{len(corpus.frames)} frames of {folder}"
    if not corpus.frames:
        corpus.frames = synthetic_frames(Random(0))
        corpus.source = f"{len(corpus.frames)} synthetic frames (no recordings found)"
    seen: set[float] = set()
    for frame in corpus.frames[::5]:
        for text in _NUMBER_TEXT.findall(frame)[:40]:
            value = float(text)
            if 0 < value < math.inf:
                seen.add(value)
    corpus.prices = sorted(seen) or [0.5, 1.0, 2.0]
    texts = {
        m.decode("utf-8", "replace") for frame in corpus.frames[::5] for m in _ANY_TEXT.findall(frame)[:40]
    }
    corpus.texts = sorted(texts) or ["0.5", "1.0"]
    return corpus


# -- values ---------------------------------------------------------------------


HUGE_DEPTHS = [2**31, 2**32, 2**60, 2**61 + 8, 2**62, sys.maxsize, sys.maxsize - 1]
BAD_DEPTHS: list[object] = [-1, -(2**63), 2**63, 2**64, 10**30, 1.5, "3", None, b"1", 3.0]


def draw_depth(rng: Random) -> object:
    r = rng.random()
    if r < 0.7:
        return rng.randint(0, 30)
    if r < 0.8:
        return rng.choice([63, 64, 65, 255, 256, 257, 512, 1000, 5000, True, False])
    if r < 0.95:
        return rng.choice(HUGE_DEPTHS) - rng.randrange(3)
    return rng.choice(BAD_DEPTHS)


# fmt: off
SPECIAL_FLOATS = [
    0.0, -0.0, 5e-324, 2.2250738585072014e-308, 1e-300, 1e308, 1.7976931348623157e308, math.inf, -math.inf,
    -1.0, 1e-8, 1e8,
]
# fmt: on


def draw_float(rng: Random, corpus: Corpus, special: float = 0.1) -> float:
    if rng.random() < special:
        return rng.choice(SPECIAL_FLOATS)
    return rng.choice(corpus.prices)


# fmt: off
NAMES = [
    "binance", "bitstamp", "kraken", "okx", "coinbase", "bybit", "", "é", "交易所", "\U0001f600", "a" * 300,
]
# fmt: on


class Quote(NamedTuple):
    exchange: str
    price: float
    amount: float


class PlainLevel(tuple):  # type: ignore[type-arg]
    __slots__ = ()


class DictLevel(tuple):  # type: ignore[type-arg]
    """A tuple subclass whose instances have a __dict__."""


class SubQuote(Quote):
    __slots__ = ()


#: Level types the Python merge also takes (it reads .price and .amount).
LEVEL_TYPES: list[type] = [MergedLevel, Quote, SubQuote]
#: All the level types the C merge takes.
ANY_LEVEL_TYPES: list[type] = [*LEVEL_TYPES, tuple, PlainLevel, DictLevel]
BAD_LEVEL_TYPES: list[object] = [
    time.struct_time,
    os.stat_result,
    type(sys.flags),
    type(sys.float_info),
    int,
    dict,
    list,
    5,
    None,
    str,
    type(os.times()),
]


# -- misbehaving objects ----------------------------------------------------------


class Clearing:
    """A number whose __float__ empties a list (or several) first."""

    def __init__(self, value: float, *victims: list[Any] | SortedDict[Any, Any]) -> None:
        self.value = value
        self.victims = victims

    def __float__(self) -> float:
        for victim in self.victims:
            victim.clear()
        return self.value


class LaterClearing(Clearing):
    """A number whose __float__ leaves garbage that empties the lists when collected.

    The collection comes at a later allocation inside the C function (with
    collecting_always, the next one), where no Python code is expected.
    """

    def __float__(self) -> float:
        value = self.value
        Finalizer(*self.victims)  # garbage at once; nothing is allocated after it
        return value


class Raising:
    def __float__(self) -> float:
        raise ArithmeticError("no value")


class NotFloat:
    def __float__(self) -> Any:
        return "1.0"


class Indexing:
    """A number only through __index__."""

    def __init__(self, value: int) -> None:
        self.value = value

    def __index__(self) -> int:
        return self.value


class HashClearing(float):
    """A price key whose __hash__ and __eq__ clear the SortedDict's key lists."""

    side: Any = None

    def __hash__(self) -> int:
        side = HashClearing.side
        if side is not None:
            for keys in side._list._lists:
                keys.clear()
            side._list._lists.clear()
        return float.__hash__(self)

    def __eq__(self, other: object) -> bool:
        side = HashClearing.side
        if side is not None:
            side._list._lists.clear()
        return float.__eq__(self, other)


class HashRaising(float):
    def __hash__(self) -> int:
        raise LookupError("no hash")

    __eq__ = float.__eq__


class Finalizer:
    """Cyclic garbage that empties lists when the collector frees it."""

    def __init__(self, *victims: list[Any]) -> None:
        self.victims = victims
        self.cycle = self

    def __del__(self) -> None:
        for victim in self.victims:
            victim.clear()


class Meddling(SortedDict):  # type: ignore[misc]
    """A SortedDict whose methods empty a list (the levels being applied)."""

    victim: list[Any] | None = None

    def __setitem__(self, key: Any, value: Any) -> None:
        if self.victim is not None:
            self.victim.clear()
        super().__setitem__(key, value)

    def pop(self, key: Any, default: Any = None) -> Any:
        if self.victim is not None:
            self.victim.clear()
        return super().pop(key, default)


def plant_finalizers(rng: Random, *victims: list[Any]) -> None:
    for _ in range(rng.randint(1, 20)):
        Finalizer(*victims)


def hostile_number(rng: Random, value: float, victims: list[Any]) -> object:
    makers: list[Callable[[], object]] = [
        lambda: Clearing(value, *victims),
        lambda: LaterClearing(value, *victims),
        lambda: LaterClearing(value, *victims),
        lambda: Raising(),
        lambda: NotFloat(),
        lambda: Indexing(int(value) if math.isfinite(value) else 1),
        lambda: 10**400,
        lambda: True,
        lambda: int(value) if math.isfinite(value) else 7,
        lambda: "1.5",
        lambda: None,
        lambda: float("nan"),
    ]
    return rng.choice(makers)()


# -- read_levels ------------------------------------------------------------------


_NUM = rb"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?"
_LEVEL = re.compile(rb'\["(' + _NUM + rb')","(' + _NUM + rb')"\]')
_SSIZE = (-(2**63), 2**63 - 1)


def _ssize(x: object) -> int:
    if not isinstance(x, int):
        raise TypeError("an integer is required")
    if not _SSIZE[0] <= x <= _SSIZE[1]:
        raise OverflowError("out of range")
    return x


def read_levels_twin(payload: object, start: object, depth: object) -> tuple[tuple[float, float], ...] | None:
    """read_levels' contract, written plainly: the grammar of the C reader."""
    if not isinstance(payload, bytes):
        raise TypeError("payload must be bytes")
    start, depth = _ssize(start), _ssize(depth)
    if depth < 0:
        raise ValueError("depth must not be negative")
    if not 0 <= start < len(payload) or payload[start] != ord("["):
        return None
    p = start + 1
    if depth == 0 or payload[p : p + 1] == b"]":
        return ()
    levels: list[tuple[float, float]] = []
    while True:
        m = _LEVEL.match(payload, p)
        if m is None or len(m.group(1)) >= 64 or len(m.group(2)) >= 64:
            return None
        price, amount = float(m.group(1)), float(m.group(2))
        if not (math.isfinite(price) and math.isfinite(amount)):
            return None
        levels.append((price, amount))
        p = m.end()
        after = payload[p : p + 1]
        if after == b"]" or (len(levels) == depth and after == b","):
            return tuple(levels)
        if after != b"," or len(levels) == depth:
            return None
        p += 1


def side_starts(payload: bytes) -> list[int]:
    return [m.start() for m in re.finditer(rb"\[(?=\[|\])", payload)]


def mutate(rng: Random, frame: bytes) -> bytes:
    data = bytearray(frame)
    for _ in range(rng.choice([0, 1, 1, 2, 3, 6])):
        if not data:
            data += rng.choice(TOKENS)
            continue
        at = rng.randrange(len(data) + 1)
        kind = rng.randrange(7)
        if kind == 0 and at < len(data):
            data[at] = rng.randrange(256)
        elif kind == 1 and at < len(data):
            data[at] = rng.choice(b'[]",.-+eE0123456789 \x00\xff')
        elif kind == 2:
            data[at:at] = rng.choice(TOKENS)
        elif kind == 3:
            del data[at : at + rng.randint(1, 40)]
        elif kind == 4:
            chunk = data[at : at + rng.randint(1, 200)]
            data[at:at] = chunk
        elif kind == 5:
            numbers = list(_NUMBER_TEXT.finditer(data))
            if numbers:
                m = rng.choice(numbers)
                data[m.start(1) : m.end(1)] = rng.choice(EXTREME_TEXTS)
        else:
            del data[at:]
    return bytes(data)


def check_read(payload: Any, start: Any, depth: Any) -> None:
    got = outcome(C.read_levels, payload, start, depth)
    want = outcome(read_levels_twin, payload, start, depth)
    where = f"payload={_short(payload, 160)} start={start!r} depth={depth!r}"
    expect_same("read_levels", got, want, where)
    if got[0] == "ok" and got[1] is not None and isinstance(depth, int) and 0 < depth <= 5000:
        # The venues' own (laxer, msgspec) scan reads the same levels: equal
        # as numbers (msgspec reads "-0" as +0.0; every check treats both alike).
        scanned = outcome(_top_of_side, payload, start, depth)
        if scanned != got:
            raise MismatchError(
                f"read_levels: C gave {_short(got)}, bitstamp._top_of_side {_short(scanned)}; {where}"
            )


#: How far past a side's "[" the truncation sweeps go (1000 levels of ~25 bytes).
SWEEP = 32 * 1024


def fuzz_read_levels(rng: Random, corpus: Corpus) -> None:
    frame = rng.choice(corpus.frames)
    if rng.random() < 0.08:
        # Every truncation of a frame from one of its sides on (the first
        # SWEEP bytes of it: no depth reads further in a REST snapshot).
        starts = side_starts(frame) or [0]
        first = rng.choice(starts)
        depth = rng.choice([1, 10, 1000, sys.maxsize, 2**61 + 8])
        for cut in range(first, min(len(frame), first + SWEEP) + 1):
            check_read(frame[:cut], first, depth)
        return
    payload: Any = mutate(rng, frame) if rng.random() < 0.8 else frame
    starts = side_starts(payload)
    r = rng.random()
    if starts and r < 0.8:
        start: Any = rng.choice(starts)
    elif r < 0.9:
        start = rng.randrange(len(payload) + 1)
    else:
        start = rng.choice([-1, -(2**63), len(payload), len(payload) + 1, 2**62, 2**63, 0.0, None])
    for _ in range(rng.randint(1, 4)):
        check_read(payload, start, draw_depth(rng))
    if rng.random() < 0.05:
        wrong = rng.choice([bytearray(payload), memoryview(payload), payload.decode("latin-1"), None, 5])
        check_read(wrong, start, 10)


# -- merge_side ---------------------------------------------------------------------


def draw_side(rng: Random, corpus: Corpus, descending: bool, n: int) -> list[tuple[float, float]]:
    prices = {draw_float(rng, corpus, special=0.05) for _ in range(n)}
    prices = {p for p in prices if not math.isnan(p)}
    if 0.0 in prices:  # 0.0 and -0.0 are one price
        prices.discard(-0.0)
        prices.add(0.0)
    amounts = [rng.choice([0.5, 1.0, 2.0]) if rng.random() < 0.5 else draw_float(rng, corpus) for _ in prices]
    return list(zip(sorted(prices, reverse=descending), amounts, strict=True))


def draw_runs(rng: Random, corpus: Corpus, descending: bool) -> list[tuple[str, Any]]:
    k = rng.choice([0, 1, 2, 3, 6, rng.randint(0, 40)])
    names = sorted(rng.sample(NAMES, min(k, len(NAMES)))) + [
        f"v{i:02d}" for i in range(max(0, k - len(NAMES)))
    ]
    runs: list[tuple[str, Any]] = []
    for name in names:
        side = draw_side(rng, corpus, descending, rng.choice([0, 1, 5, 10, 20, rng.randint(0, 100)]))
        runs.append((name, tuple(side) if rng.random() < 0.7 else side))
    return runs


def fuzz_merge_side(rng: Random, corpus: Corpus) -> None:
    descending = rng.random() < 0.5
    runs = draw_runs(rng, corpus, descending)
    if rng.random() < 0.6:
        for _ in range(rng.randint(1, 8)):  # depths and level types for the same runs
            valid_type = rng.choice(LEVEL_TYPES)
            depth = draw_depth(rng)
            got = outcome(C.merge_side, runs, depth, descending, valid_type)
            checked = outcome(_ssize, depth)  # the C function reads the depth first
            if checked[0] == "raise":
                want = checked
            elif checked[1] < 0:
                want = ("raise", ValueError)
            else:
                want = outcome(merge_side_py, runs, depth, descending, valid_type)
            expect_same("merge_side", got, want, f"runs={_short(runs)} depth={depth!r} desc={descending}")
        return
    # Hostile: the same call with one thing broken.
    runs_list: list[Any] = list(runs)
    victims: list[Any] = [runs_list]
    level_type: Any = rng.choice(ANY_LEVEL_TYPES)
    kind = rng.randrange(6)
    if kind == 0 and runs_list:  # a level whose number empties lists when read
        i = rng.randrange(len(runs_list))
        name, side = runs_list[i]
        side = list(side)
        victims.append(side)
        if side:
            j = rng.randrange(len(side))
            p, a = side[j]
            bad = hostile_number(rng, p, rng.sample(victims, rng.randint(1, len(victims))))
            side[j] = (bad, a) if rng.random() < 0.5 else (p, bad)
        runs_list[i] = (name, side)
    elif kind == 1:  # wrong shapes
        shapes = [
            ("x", [[1.0, 2.0]]),
            ("x", ((1.0,),)),
            ("x",),
            ["x", ()],
            ("x", 5),
            ("x", ((1.0, 2.0, 3.0),)),
        ]
        runs_list.insert(rng.randint(0, len(runs_list)), rng.choice(shapes))
    elif kind == 2:  # a side that is an iterator, emptying the runs when walked

        def walk() -> Iterator[tuple[float, float]]:
            runs_list.clear()
            yield (1.0, 1.0)

        runs_list.insert(rng.randint(0, len(runs_list)), ("gen", walk()))
    elif kind == 3:
        level_type = rng.choice(BAD_LEVEL_TYPES)
    elif kind == 4:
        plant_finalizers(rng, *(list(s) if isinstance(s, tuple) else s for _, s in runs_list), runs_list)
    else:
        runs_arg: Any = rng.choice([iter(runs_list), None, 5, "ab", {"a": ()}])
        survives(C.merge_side, runs_arg, 10, descending, level_type)
        return
    with collecting_always():
        result = survives(C.merge_side, runs_list, draw_depth(rng), descending, level_type)
    if result[0] == "ok" and not all(type(level) is level_type for level in result[1]):
        raise MismatchError(f"merge_side: levels not of {level_type}: {_short(result[1])}")


# -- check_book -----------------------------------------------------------------------


def fuzz_check_book(rng: Random, corpus: Corpus) -> None:
    def side(descending: bool) -> list[tuple[float, float]]:
        levels = draw_side(rng, corpus, descending, rng.choice([0, 1, 3, 10, 25, 40]))
        if levels and rng.random() < 0.3:  # out of order, or a bad number
            i = rng.randrange(len(levels))
            levels[i] = (
                (rng.choice([*SPECIAL_FLOATS, math.nan]), levels[i][1])
                if rng.random() < 0.5
                else (levels[i][0], rng.choice([*SPECIAL_FLOATS, math.nan]))
            )
        if rng.random() < 0.1:
            rng.shuffle(levels)
        return levels

    bids, asks = side(True), side(False)
    if bids and asks and rng.random() < 0.3:  # cross the book
        asks[0] = (bids[0][0] * rng.choice([0.5, 1.0]), asks[0][1])
    if rng.random() < 0.7:
        b: Any = tuple(bids) if rng.random() < 0.8 else bids
        a: Any = tuple(asks) if rng.random() < 0.8 else asks
        expect_same(
            "check_book",
            outcome(C.check_book, b, a),
            outcome(check_book_py, b, a),
            f"bids={_short(b)} asks={_short(a)}",
        )
        return
    victims: list[Any] = [bids, asks]
    target: list[Any] = bids if rng.random() < 0.5 or not asks else asks
    if target:
        j = rng.randrange(len(target))
        p, q = target[j]
        bad = hostile_number(rng, p, rng.sample(victims, rng.randint(1, 2)))
        target[j] = (bad, q) if rng.random() < 0.5 else (p, bad)
    if rng.random() < 0.2:
        target.insert(0, rng.choice([[1.0, 1.0], (1.0,), 5, None]))
    if rng.random() < 0.3:
        plant_finalizers(rng, bids, asks)
    with collecting_always():
        survives(C.check_book, bids, asks)
    if rng.random() < 0.05:
        survives(C.check_book, iter(bids), 5)


# -- apply_side / top_levels -------------------------------------------------------------


def _changes(rng: Random, corpus: Corpus, grid: list[float], n: int) -> list[tuple[Any, Any]]:
    return [(rng.choice(grid), rng.choice([0.0, 0.0, 1.0, 2.5, draw_float(rng, corpus)])) for _ in range(n)]


def _twin_books(load: int) -> tuple[L2Book, L2Book]:
    books = L2Book(numeric=True), L2Book(numeric=True)
    for b in books:
        b.bids._list._reset(load)
        b.asks._list._reset(load)
    return books


def _apply_book_by_sides(
    bid_side: SortedDict[float, Any],
    ask_side: SortedDict[float, Any],
    bids: Any,
    asks: Any,
    floor: float,
    ceiling: float,
) -> int:
    """apply_book's contract through two apply_side calls (so both C entries meet the same batches)."""
    hit = 1 if C.apply_side(bid_side, bids, True, floor) else 0
    return hit | (2 if C.apply_side(ask_side, asks, False, ceiling) else 0)


def fuzz_apply_side(rng: Random, corpus: Corpus) -> None:
    """apply_book (or apply_side twice) and top_levels against L2Book's own Python loops, batch by batch."""
    grid = sorted(rng.sample(corpus.prices, min(len(corpus.prices), rng.choice([5, 20, 200]))))
    load = rng.choice([4, 5, 8, 1000])
    c_book, py_book = _twin_books(load)
    c_twins = (C.apply_book if rng.random() < 0.5 else _apply_book_by_sides), C.top_levels
    for _ in range(rng.randint(1, 30)):
        bids = _changes(rng, corpus, grid, rng.randint(0, 40))
        asks = _changes(rng, corpus, grid, rng.randint(0, 40))
        floor, ceiling = rng.choice(grid), rng.choice(grid)
        book_module._apply_book, book_module._top_levels = c_twins
        try:
            c_hit = c_book.update_numeric(bids, asks, floor, ceiling)
            ns = [rng.choice([0, 1, 10, load, 3 * load, 5000, sys.maxsize]) for _ in range(3)]
            c_top = [c_book.top(n) for n in ns]
        finally:
            book_module._apply_book, book_module._top_levels = None, None
        try:
            py_hit = py_book.update_numeric(bids, asks, floor, ceiling)
            py_top = [py_book.top(n) for n in ns]
        finally:
            book_module._apply_book, book_module._top_levels = C.module.apply_book, C.module.top_levels
        where = f"bids={_short(bids)} asks={_short(asks)} load={load}"
        expect_same("apply_side (hit)", ("ok", c_hit), ("ok", py_hit), where)
        expect_same("top_levels", ("ok", tuple(c_top)), ("ok", tuple(py_top)), where)
        if list(c_book.bids.items()) != list(py_book.bids.items()) or list(c_book.asks.items()) != list(
            py_book.asks.items()
        ):
            raise MismatchError(f"apply_side: the books differ after {where}")
        check_key_lists("apply_side", c_book, py_book, where)


def check_key_lists(name: str, c_book: L2Book, py_book: L2Book, where: str) -> None:
    """The SortedDicts' internal key lists as sortedcontainers' own code leaves them."""
    for c_side, py_side in ((c_book.bids, py_book.bids), (c_book.asks, py_book.asks)):
        c_list, py_list = c_side._list, py_side._list
        if (c_list._lists, c_list._maxes, c_list._len) != (py_list._lists, py_list._maxes, py_list._len):
            raise MismatchError(f"{name}: the SortedDicts' key lists differ after {where}")
        c_list._check()  # sortedcontainers' own invariants (the index rebuilt as needed)


# -- apply_text_side ---------------------------------------------------------------------


def _text_changes(rng: Random, corpus: Corpus, grid: list[str], n: int, bad: float) -> list[Any]:
    """(price, amount) strings: the venue's own, often zero, sometimes anything."""
    out: list[Any] = []
    for _ in range(n):
        price = rng.choice(grid) if rng.random() >= bad else draw_text(rng, corpus)
        r = rng.random()
        if r < bad:
            amount = draw_text(rng, corpus)
        else:
            amount = "0" if r < 0.4 else rng.choice(["0.000", "1", "2.5", rng.choice(grid)])
        # A tuple pair, or the venue's own array (OKX: [px, sz, "0", count]).
        out.append(rng.choice([(price, amount), (price, amount), [price, amount], [price, amount, "0", "1"]]))
    return out


def fuzz_apply_text_side(rng: Random, corpus: Corpus) -> None:
    """apply_text_side against L2Book.update's own Python loops, batch by batch; then hostile calls."""
    grid = sorted({t for t in corpus.texts if _positive(t)})
    grid = rng.sample(grid, min(len(grid), rng.choice([5, 20, 200])))
    load = rng.choice([4, 5, 8, 1000])
    c_book, py_book = L2Book(), L2Book()
    for b in (c_book, py_book):
        b.bids._list._reset(load)
        b.asks._list._reset(load)
    bad = rng.choice([0.0, 0.0, 0.02, 0.3])
    for _ in range(rng.randint(1, 30)):
        bids = _text_changes(rng, corpus, grid, rng.randint(0, 40), bad)
        asks = _text_changes(rng, corpus, grid, rng.randint(0, 40), bad)
        floor, ceiling = float(rng.choice(grid)), float(rng.choice(grid))
        book_module._apply_text_side = C.apply_text_side
        try:
            got = outcome(c_book.update, bids, asks, floor, ceiling)
        finally:
            book_module._apply_text_side = None
        try:
            want = outcome(py_book.update, bids, asks, floor, ceiling)
        finally:
            book_module._apply_text_side = C.apply_text_side  # as imported: C is built
        where = f"bids={_short(bids)} asks={_short(asks)} load={load}"
        expect_same("apply_text_side", got, want, where)
        for c_side, py_side in (
            (c_book.bids, py_book.bids),
            (c_book.asks, py_book.asks),
            (c_book.bid_text, py_book.bid_text),
            (c_book.ask_text, py_book.ask_text),
        ):
            if list(c_side.items()) != list(py_side.items()):
                raise MismatchError(f"apply_text_side: the books differ after {where}")
        check_key_lists("apply_text_side", c_book, py_book, where)
        n = rng.choice([0, 1, 10, 25, load, 3 * load])
        got = outcome(c_book.top_text, n)
        expect_same("top_levels (text)", got, outcome(_top_text_py, py_book, n), where)
    # Hostile calls: only return or raise.
    side: SortedDict[Any, Any] = c_book.bids if rng.random() < 0.5 else Meddling(c_book.bids)
    text: Any = c_book.bid_text
    levels: list[Any] = _text_changes(rng, corpus, grid, rng.randint(1, 30), 0.1)
    kind = rng.randrange(5)
    with collecting_always():
        if kind == 0:  # levels of the wrong shape or type
            levels.insert(
                rng.randint(0, len(levels)),
                rng.choice([("1",), ("1", "2", "3"), (1.0, "2"), ("1", 2.0), (b"1", "2"), None, 5, "12"]),
            )
        elif kind == 1:  # finalizers that empty the levels and the key lists mid-call
            plant_finalizers(rng, levels, *c_book.bids._list._lists)
        elif kind == 2:  # the SortedDict's own methods empty the levels
            side = Meddling(c_book.bids)
            side.victim = levels
        elif kind == 3:  # not a book, not a dict
            side = rng.choice([{}, [], None, SortedDict()])
            text = rng.choice([{}, [], None, SortedDict()])
        else:  # wrong arguments
            survives(C.apply_text_side, side, text, levels)
            not_levels: Any = rng.choice([None, 5, iter(levels), "ab"])
            levels = not_levels
        flag, bound = rng.choice([True, None, Raising()]), rng.choice([0.0, 1.0, "x", Raising()])
        survives(C.apply_text_side, side, text, levels, flag, bound)
        survives(C.top_levels, side, rng.choice([1, 10, 100]), text)


def _positive(text: str) -> bool:
    try:
        return 0.0 < float(text) < math.inf
    except ValueError:
        return False


def _top_text_py(book: L2Book, n: int) -> tuple[list[Any], list[Any]]:
    saved = book_module._top_levels
    book_module._top_levels = None
    try:
        return book.top_text(n)
    finally:
        book_module._top_levels = saved


def hostile_apply(rng: Random, side: Any, levels: Any, bids: Any, bound: Any) -> None:
    """apply_side, or apply_book with ``side`` as either side (and the other side empty or hostile too)."""
    if rng.random() < 0.5:
        survives(C.apply_side, side, levels, bids, bound)
        return
    other: Any = SortedDict() if rng.random() < 0.8 else side
    if rng.random() < 0.5:
        survives(C.apply_book, side, other, levels, rng.choice([[], levels]), bound, 0.0)
    else:
        survives(C.apply_book, other, side, rng.choice([[], levels]), levels, 0.0, bound)


def fuzz_top_levels(rng: Random, corpus: Corpus) -> None:
    """Hostile books for apply_side, apply_book and top_levels (their valid use is fuzz_apply_side's)."""
    side: SortedDict[Any, Any] = SortedDict()
    side._list._reset(rng.choice([4, 8, 1000]))
    grid = sorted(rng.sample(corpus.prices, min(len(corpus.prices), 30)))
    for price in grid:
        side[price] = (price, 1.0)
    kind = rng.randrange(7)
    levels: list[Any]
    with collecting_always():
        if kind == 0:  # keys that clear the key lists when hashed or compared
            HashClearing.side = side
            try:
                keys: list[Any] = [
                    (HashClearing(rng.choice(grid)), rng.choice([0.0, 1.0]))
                    for _ in range(rng.randint(1, 10))
                ]
                hostile_apply(rng, side, keys, False, rng.choice(grid))
                side2: SortedDict[Any, Any] = SortedDict({HashClearing(p): (p, 1.0) for p in grid})
                HashClearing.side = side2
                survives(C.top_levels, side2, rng.choice([1, 5, 100]))
            finally:
                HashClearing.side = None
        elif kind == 1:  # levels whose numbers empty the levels list or the book
            levels = _changes(rng, corpus, grid, rng.randint(1, 20))
            j = rng.randrange(len(levels))
            p, q = levels[j]
            bad = hostile_number(rng, p, [levels] if rng.random() < 0.5 else [levels, side])
            levels[j] = (bad, q) if rng.random() < 0.5 else (p, bad)
            hostile_apply(rng, side, levels, rng.random() < 0.5, rng.choice(grid))
        elif kind == 2:  # keys that cannot be hashed
            hostile_apply(rng, side, [(HashRaising(grid[0]), 1.0)], False, 0.0)
        elif kind == 3:  # not a SortedDict, or one whose insides are wrong
            plain: Any = rng.choice([{}, {1.0: (1.0, 1.0)}, [], None, SortedDict])
            hostile_apply(rng, plain, _changes(rng, corpus, grid, 5), True, 0.0)
            survives(C.top_levels, plain, 5)
            broken = SortedDict(side)
            broken._list._lists = rng.choice([None, (), [None], [(1.0,)], [[HashRaising(1.0)]], [[2.0**70]]])
            survives(C.top_levels, broken, rng.choice([1, 5, 100]))
        elif kind == 4:  # finalizers that empty the levels list mid-call
            levels = _changes(rng, corpus, grid, rng.randint(5, 40))
            plant_finalizers(rng, levels, *side._list._lists)
            hostile_apply(rng, side, levels, rng.random() < 0.5, rng.choice(grid))
            plant_finalizers(rng, *side._list._lists, side._list._lists)
            survives(C.top_levels, side, rng.choice([1, 5, 100]))
        elif kind == 5:  # wrong arguments
            survives(
                C.apply_book,
                rng.choice([side, None, {}]),
                rng.choice([SortedDict(), 5]),
                rng.choice([None, 5, [[1.0, 1.0]], [(1.0,)], iter([(1.0, 0.0)])]),
                [],
                rng.choice([0.0, "x", Raising()]),
                rng.choice([0.0, None]),
            )
            survives(
                C.apply_side,
                side,
                rng.choice([None, 5, [[1.0, 1.0]], [(1.0,)], iter([(1.0, 0.0)])]),
                rng.choice([True, None, Raising()]),
                rng.choice([0.0, "x", Raising()]),
            )
            survives(C.top_levels, side, rng.choice([-1, 2**63, 1.5, None, Indexing(3), True]))
        else:  # the levels list shrinks under the SortedDict's own methods
            meddling = Meddling(side)
            levels = _changes(rng, corpus, grid + [g * 1.5 for g in grid], rng.randint(1, 20))
            meddling.victim = levels
            hostile_apply(rng, meddling, levels, rng.random() < 0.5, 0.0)
            survives(C.top_levels, meddling, 10)


# -- encode_summary ----------------------------------------------------------------------


INT_EDGES = [0, 1, 127, 128, 2**32, 2**53 + 1, 2**63 - 1, 2**64 - 1, -1, -(2**63), 2**63, 2**64, -(2**63) - 1]


SIGNED_EDGES = [v for v in INT_EDGES if -(2**63) <= v < 2**63]
UNSIGNED_EDGES = [v for v in INT_EDGES if 0 <= v < 2**64]


def draw_int(rng: Random, signed: bool) -> int:
    """An int64 (signed) or uint64 value, edges often."""
    if rng.random() < 0.3:
        return rng.choice(SIGNED_EDGES if signed else UNSIGNED_EDGES)
    return rng.randrange(-(2**63), 2**63) if signed else rng.randrange(2**64)


def draw_levels(rng: Random, corpus: Corpus) -> list[Any]:
    n = rng.choice([0, 1, 10, 64, 65, rng.randint(0, 300)])
    level: Callable[[str, float, float], Any] = rng.choice([MergedLevel, lambda e, p, a: (e, p, a)])
    return [
        level(rng.choice(NAMES), draw_float(rng, corpus, 0.3), draw_float(rng, corpus, 0.3)) for _ in range(n)
    ]


def draw_book(rng: Random, corpus: Corpus) -> MergedBook:
    return MergedBook(
        rng.choice(["ethbtc", "", "BTC/USDT", "é" * rng.randint(0, 200)]),
        draw_float(rng, corpus, 0.5),
        tuple(draw_levels(rng, corpus)),
        tuple(draw_levels(rng, corpus)),
        draw_int(rng, False),
        draw_int(rng, True),
        draw_int(rng, True),
        rng.choice(NAMES),
        draw_int(rng, False),
    )


def fuzz_encode_summary(rng: Random, corpus: Corpus) -> None:
    book = draw_book(rng, corpus)
    send_ns = draw_int(rng, True)
    if rng.random() < 0.6:
        if rng.random() < 0.5:
            got = outcome(C.encode_summary, book, send_ns, None)
            want = outcome(encode_summary_pb, book, send_ns)
        else:
            stamp = draw_int(rng, True)
            got = outcome(C.encode_summary, book, send_ns, lambda: stamp)
            want = outcome(encode_summary_pb, book._replace(publish_ns=stamp), send_ns)
        expect_same("encode_summary", got, want, f"book={_short(book)} send_ns={send_ns}")
        return
    bids: list[Any] = list(book.bids)
    asks: list[Any] = list(book.asks)
    kind = rng.randrange(6)
    clock: Any = None
    fields: list[Any] = list(book)
    if kind == 0:  # a clock that empties the sides it was given as lists

        def clock() -> int:
            bids.clear()
            asks.clear()
            gc.collect()
            return 5

        fields[2], fields[3] = bids, asks
    elif kind == 1:  # numbers that empty the lists when read
        fields[2], fields[3] = bids, asks
        target = bids if bids else asks
        if target:
            j = rng.randrange(len(target))
            e, p, a = target[j]
            bad = hostile_number(rng, p, [bids, asks])
            target[j] = (e, bad, a) if rng.random() < 0.5 else (e, p, bad)
    elif kind == 2:  # fields out of range or of the wrong type
        i = rng.randrange(len(fields))
        fields[i] = rng.choice([2**64, -(2**63) - 1, -1, 1.5, None, b"x", "\ud800", Raising(), 10**400])
    elif kind == 3:  # names and levels of the wrong shape
        target = bids if bids or not asks else asks
        target.insert(
            rng.randint(0, len(target)),
            rng.choice(
                [
                    ("\ud800", 1.0, 1.0),
                    (b"x", 1.0, 1.0),
                    ("x", 1.0),
                    ("x", 1.0, 1.0, 1.0),
                    ["x", 1.0, 1.0],
                    None,
                ]
            ),
        )
        fields[2], fields[3] = tuple(bids), tuple(asks)
    elif kind == 4:  # clocks that fail
        clock = rng.choice(
            [lambda: 1 // 0, lambda: 2**64, lambda: -(2**63) - 1, lambda: "5", lambda: None, 5]
        )
    else:  # not a book at all
        fields = rng.choice([fields[:8], [*fields, (), ()], []])
    value: Any = tuple(fields) if rng.random() < 0.9 else fields
    with collecting_always():
        survives(C.encode_summary, value, rng.choice([send_ns, 2**63, None]), clock)


# -- fix_entries ---------------------------------------------------------------------------


def draw_fix_float(rng: Random, corpus: Corpus) -> float:
    """A price or size: the recordings', a short decimal or a float next to one, or an extreme."""
    r = rng.random()
    if r < 0.3:
        return draw_float(rng, corpus, 0.2)
    x: float = rng.randint(1, 10 ** rng.randint(1, 17)) / 10 ** rng.randint(0, 22)
    if r < 0.6:
        return x
    if r < 0.8:
        return math.nextafter(x, rng.choice((0.0, math.inf)))
    edges = [1e-4, math.nextafter(1e-4, 0.0), 1e16, math.nextafter(1e16, 0.0), 2.0**53, 2.0**53 + 2]
    return rng.choice(edges)


class EqMeddling(str):
    """A venue-dict key whose __eq__ (called on a hash collision) empties the dict being read."""

    victim: dict[Any, Any] | None = None

    def __hash__(self) -> int:
        return str.__hash__(str(self))

    def __eq__(self, other: object) -> bool:
        victim = EqMeddling.victim
        if victim is not None:
            victim.clear()
            gc.collect()
        return str.__eq__(self, other)


def fuzz_fix_entries(rng: Random, corpus: Corpus) -> None:
    names = rng.sample(NAMES, rng.randint(1, len(NAMES)))
    venues: dict[Any, Any] = {name: mdcodec._venue(name) for name in names}
    level: Callable[[Any, Any, Any], Any] = rng.choice(
        [MergedLevel, lambda e, p, a: (e, p, a), lambda e, p, a: PlainLevel((e, p, a))]
    )
    n = rng.choice([0, 1, 10, 20, rng.randint(0, 300)])
    side = [
        level(rng.choice(names), draw_fix_float(rng, corpus), draw_fix_float(rng, corpus)) for _ in range(n)
    ]
    entry_type = rng.choice([mdcodec.BID, mdcodec.OFFER, b"", b"x" * rng.randint(0, 300)])
    if rng.random() < 0.7:
        got = outcome(C.fix_entries, tuple(side), entry_type, venues)
        want = outcome(mdcodec.fix_entries_py, tuple(side), entry_type, venues)
        expect_same("fix_entries", got, want, f"levels={_short(side)} entry_type={entry_type!r}")
        if got[0] == "ok" and got[1] is not None and entry_type in (mdcodec.BID, mdcodec.OFFER):
            parts: list[bytes] = []
            count = mdcodec._levels(parts, entry_type, tuple(side))
            expect_same("fix_entries", got, ("ok", (b"".join(parts), count)), "against _levels")
        return
    kind = rng.randrange(4)
    if kind == 0 and side:  # a level of the wrong shape or with wrong types
        j = rng.randrange(len(side))
        e, p, a = side[j]
        side[j] = rng.choice(
            [(e, p), (e, p, a, 1), [e, p, a], None, (e, 10**400, a), (e, p, Raising()), (b"x", p, a),
             (e, HashClearing(p), a), (e, True, a), ("\ud800", p, a)]
        )
    elif kind == 1:  # fields that are not bytes, keys that are not strings
        venues[rng.choice(names)] = rng.choice(["282=x", None, 5, bytearray(b"282=x\x01")])
        venues[rng.choice([5, 1.5, (1, 2), b"binance"])] = b"282=?\x01"
    elif kind == 2 and side:  # a key whose __eq__ (the venue's lookup calls it) empties the dict
        e = side[0][0]
        EqMeddling.victim = venues
        venues.pop(e, None)
        venues[EqMeddling(e)] = b"282=meddled\x01"
    else:  # not a tuple, not bytes, not a dict
        args: list[Any] = [tuple(side), entry_type, venues]
        i = rng.randrange(3)
        args[i] = rng.choice([side, None, "0", 5, [], bytearray(b"0")])
        with collecting_always():
            survives(C.fix_entries, *args)
        return
    try:
        with collecting_always():
            survives(C.fix_entries, tuple(side), entry_type, venues)
    finally:
        EqMeddling.victim = None


# -- byte_sum --------------------------------------------------------------------------------


def fuzz_byte_sum(rng: Random, corpus: Corpus) -> None:
    r = rng.random()
    if r < 0.4:
        data: Any = rng.choice(corpus.frames) if corpus.frames else b""
        if rng.random() < 0.5:
            data = data[rng.randint(0, len(data)) :]
    else:
        size = rng.choice([0, 1, 255, 256, 257, rng.randint(0, 5000), rng.randint(0, 300000)])
        data = rng.randbytes(size) if rng.random() < 0.7 else bytes([rng.choice((0, 255))]) * size
    cut = rng.randint(0, len(data))
    data = rng.choice([data, bytearray(data), memoryview(data), memoryview(data)[cut:]])
    if rng.random() < 0.1:  # no buffer, or not a contiguous one
        data = rng.choice(["text", 5, None, [1, 2], memoryview(bytes(data))[:: rng.randint(2, 5)], 1.5])
    got = outcome(C.byte_sum, data)
    want = outcome(byte_sum_py, data)
    expect_same("byte_sum", got, want, f"data={_short(data)}")
    if got[0] == "ok":
        expect_same("byte_sum", got, ("ok", sum(bytes(data))), "against sum()")


# -- crc32_digits / crc32_interleaved ------------------------------------------------------


def draw_text(rng: Random, corpus: Corpus) -> str:
    r = rng.random()
    if r < 0.6:
        return rng.choice(corpus.texts)
    if r < 0.8:  # the stripping rule's edges: zeros, points, nothing
        return "".join(rng.choice("0.0.01") for _ in range(rng.randint(0, 12)))
    return rng.choice(["", ".", "0", "00.000", "é", "交易所", "\U0001f600", "1" * 300, "-0.5", " 1", "1e5"])


def draw_text_side(rng: Random, corpus: Corpus) -> list[tuple[str, str]]:
    n = rng.choice([0, 1, 10, 25, rng.randint(0, 200)])
    return [(draw_text(rng, corpus), draw_text(rng, corpus)) for _ in range(n)]


def fuzz_checksums(rng: Random, corpus: Corpus) -> None:
    """Both CRC32 rules against their Python twins, on the venues' own strings and worse."""
    first, second = draw_text_side(rng, corpus), draw_text_side(rng, corpus)
    if rng.random() < 0.7:
        a: Any = tuple(first) if rng.random() < 0.5 else first
        b: Any = tuple(second) if rng.random() < 0.5 else second
        where = f"first={_short(a)} second={_short(b)}"
        expect_same("crc32_digits", outcome(C.crc32_digits, a, b), outcome(crc32_digits_py, a, b), where)
        expect_same(
            "crc32_interleaved",
            outcome(C.crc32_interleaved, a, b),
            outcome(crc32_interleaved_py, a, b),
            where,
        )
        return
    target: list[Any] = first if first or not second else second
    bad = rng.choice([("1", 2), ("1",), ("1", "2", "3"), ["1", "2"], 5, None, ("\ud800", "1"), (b"1", "2")])
    target.insert(rng.randint(0, len(target)), bad)

    def walk() -> Iterator[tuple[str, str]]:
        second.clear()
        yield ("1", "2")

    side: Any = rng.choice([first, iter(first), walk(), None, 5, "ab"])
    for fn in (C.crc32_digits, C.crc32_interleaved):
        survives(fn, side, second)
        survives(fn, second, side)


# -- read_bybit_delta ---------------------------------------------------------------------

_bybit_decode = msgspec.json.Decoder(bybit._Message, strict=False).decode
_BYBIT_NAMES = ["BTCUSDT", "ETHBTC", "X", "", "a.b", "é", "a\\u0041", "A" * 80]


def read_bybit_delta_twin(payload: Any) -> tuple[Any, ...] | None:
    """What bybit's msgspec decoder reads from a delta (None: no delta, or no frame msgspec accepts)."""
    try:
        msg = _bybit_decode(payload)
    except (msgspec.DecodeError, TypeError):
        return None
    if msg.type != "delta" or not msg.topic.startswith("orderbook."):
        return None
    d = msg.data
    return (d.s, d.b, d.a, d.u, d.u, None)


def bybit_delta_frame(rng: Random, corpus: Corpus) -> bytes:
    """A delta as Bybit writes it: numbers the recordings hold (and worse), optional fields left out."""

    def number() -> str:
        r = rng.random()
        if r < 0.9:
            return f"{rng.choice(corpus.prices):.{rng.randint(0, 6)}f}"
        if r < 0.95:
            return rng.choice(corpus.texts)
        if r < 0.98:
            return rng.choice(["0", "0.0", "1", "00.1", "1.", ".5", "-1", "1e3", "0." + "0" * 21 + "1"])
        return rng.choice(EXTREME_TEXTS).decode("latin-1")

    def side() -> str:
        return ",".join(f'["{number()}","{number()}"]' for _ in range(rng.choice([0, 1, 2, 3, 5, 10, 60])))

    name = rng.choice(_BYBIT_NAMES) if rng.random() < 0.3 else "BTCUSDT"
    kind = rng.choice(["delta"] * 8 + ["snapshot", "Delta"])
    u = rng.choice([1, 7, 2**40, 10**17, 10**18 - 1, 10**18, 2**63, 0])
    parts = [f'{{"topic":"orderbook.50.{name}","type":"{kind}"']
    if rng.random() < 0.9:
        parts.append(f',"ts":{rng.randint(0, 2**41)}')
    parts.append(f',"data":{{"s":"{name}","b":[{side()}],"a":[{side()}],"u":{u}')
    if rng.random() < 0.9:
        parts.append(f',"seq":{rng.randint(0, 2**40)}')
    parts.append("}")
    if rng.random() < 0.9:
        parts.append(f',"cts":{rng.randint(0, 2**41)}')
    parts.append("}")
    return "".join(parts).encode("utf-8", "surrogatepass")


def fuzz_read_bybit_delta(rng: Random, corpus: Corpus) -> None:
    """read_bybit_delta against bybit's msgspec decoder: it reads the same, or leaves the frame to msgspec.

    It may leave (None) a frame msgspec reads; it must never read one that
    msgspec refuses, nor read a value msgspec reads differently.
    """
    frame = bybit_delta_frame(rng, corpus)
    for _ in range(rng.randint(1, 4)):
        payload: Any = mutate(rng, frame) if rng.random() < 0.7 else frame
        if rng.random() < 0.02:
            payload = rng.choice([bytearray(payload), payload.decode("latin-1"), None, memoryview(payload)])
        got = outcome(C.read_bybit_delta, payload)
        if not isinstance(payload, bytes):
            expect_same("read_bybit_delta", got, ("raise", TypeError), f"payload={_short(payload, 160)}")
            continue
        if got[0] != "ok":
            raise MismatchError(f"read_bybit_delta raised {got[1]}; payload={_short(payload, 300)}")
        if got[1] is None:
            continue
        want = read_bybit_delta_twin(payload)
        if want is None or not same_fields(got[1], want):
            raise MismatchError(
                f"read_bybit_delta: C read {_short(got[1])}, msgspec {_short(want)}; "
                f"payload={_short(payload, 300)}"
            )


def same_fields(got: tuple[Any, ...], want: tuple[Any, ...]) -> bool:
    """The delta's fields equal, the level lists as lists of float tuples, bit for bit."""
    if len(got) != 6 or got[0] != want[0] or type(got[0]) is not str or got[3:] != want[3:]:
        return False
    return all(
        type(g) is list and len(g) == len(w) and all(map(same, g, map(tuple, w)))
        for g, w in zip(got[1:3], want[1:3], strict=True)
    )


# -- venue_states --------------------------------------------------------------------------


class FuzzHealth:
    """A health record whose reads may meddle: empty the caller's lists, leave garbage, raise."""

    def __init__(self, data_ns: Any, status: Any, victims: list[list[Any]], mode: int) -> None:
        self._data_ns = data_ns
        self._status = status
        self.victims = victims
        self.mode = mode

    @property
    def data_ns(self) -> Any:
        if self.mode == 1:
            for victim in self.victims:
                victim.clear()
        elif self.mode == 2:
            Finalizer(*self.victims)  # the lists emptied at a later allocation, inside C
        elif self.mode == 3:
            raise LookupError("no data_ns")
        return self._data_ns

    @property
    def status(self) -> Any:
        if self.mode == 4:
            raise LookupError("no status")
        return self._status


class EqRaising(int):
    def __eq__(self, other: object) -> bool:
        raise ArithmeticError("no compare")

    __hash__ = int.__hash__


class EqAlways:
    """Not an int, yet equal to anything: to the live code too (a live venue out of the merge is stale)."""

    def __eq__(self, other: object) -> bool:
        return True

    __hash__ = object.__hash__


def _draw_states_args(rng: Random) -> list[Any]:
    """One venue_states call's arguments (fresh lists: a meddling health empties them)."""
    n = rng.choice([0, 1, 2, 6, rng.randint(0, 12), 32, 33])
    names: list[Any] = [rng.choice(NAMES) for _ in range(n)]
    books: list[Any] = []
    healths: list[Any] = []
    meddle = rng.random() < 0.2
    for i in range(n):
        r = rng.random()
        if r < 0.3:
            books.append(None)
        elif r < 0.97:
            stamp = rng.choice([0, 1, 2**62, 2**70, -5, rng.getrandbits(64)])
            books.append(VenueBook(names[i], (), (), stamp, 1, rng.choice([0, 7, 2**65, -1])))
        else:  # a plain tuple (taken) or not a VenueBook (declined)
            books.append(rng.choice([
                ("x", (), (), 5, 1, 2), ("x", (), (), 5, 1, 2, 3), ("x", 1), ["x", (), (), 5, 1, 2],
                PlainLevel(("x", (), (), 5, 1, 2)), Quote("x", 1.0, 2.0), 5,
            ]))  # fmt: skip
        if rng.random() < 0.3:
            healths.append(None)
            continue
        data_ns = rng.choice([0, 1, 2**62, 2**70, -3, 0.0, 2.5, None, "x", rng.getrandbits(63)])
        status = rng.choice([
            *list(VenueStatus), *STATUS_CODES, 99, "live", None, EqRaising(1), EqAlways(), True,
        ])  # fmt: skip
        mode = rng.choice([1, 2, 3, 4]) if meddle and rng.random() < 0.5 else 0
        healths.append(FuzzHealth(data_ns, status, [names, books, healths], mode))
    top = 2 * n
    if rng.random() < 0.85:
        members: Any = rng.choice([rng.getrandbits(top) if top else 0, (1 << n) - 1, 0])
    else:  # not an int in [0, 2**64): declined, and the twin's
        members = rng.choice([-1, 2**64, 2**64 - 1, True, 1.5])
    now = rng.choice([0, 2**62, rng.getrandbits(63), -(2**70), 1.5])
    return [VenueState, names, books, healths, members, now, STATUS_CODES]


def _declines(args: list[Any]) -> bool:
    """Whether C must leave the call to its twin (see venue_states in _speedups.c)."""
    names, books, members = args[1], args[2], args[4]
    if len(names) > 32 or type(members) is not int or not 0 <= members < 2**64:
        return True
    def plain(b: Any) -> bool:
        return isinstance(b, tuple) and len(b) >= 6 and type(b).__getitem__ is tuple.__getitem__

    return any(b is not None and not plain(b) for b in books)


def fuzz_venue_states(rng: Random, corpus: Corpus) -> None:
    seed = rng.getrandbits(32)
    args = _draw_states_args(Random(seed))
    declines = _declines(args)
    with collecting_always():
        got = outcome(C.venue_states, *args)
    want = outcome(venue_states_py, *_draw_states_args(Random(seed)))
    where = f"seed={seed} n={len(args[1])} members={_short(args[4])}"
    if got == ("ok", None):
        if not declines:
            raise MismatchError(f"venue_states: C declined a call it must take; {where}")
        return
    if declines and got[0] == "ok":
        raise MismatchError(f"venue_states: C took a call it must decline; {where}")
    expect_same("venue_states", got, want, where)
    if rng.random() < 0.05:  # not a state type, not a codes tuple, not sequences
        bad = list(args)
        i = rng.choice([0, 1, 2, 3, 6])
        bad[i] = rng.choice([*BAD_LEVEL_TYPES, (1, 2), None, 5, [1, 2, 3, 4]])
        with collecting_always():
            survives(C.venue_states, *bad)


# -- side_sums -------------------------------------------------------------------------------


class FloatChild(float):
    """A float of another type: side_sums must decline it (the twin's arithmetic may differ)."""


def _sums_declines(side: object) -> bool:
    """Whether C must decline ``side``: anything but a non-empty tuple of exact (float, float) tuples."""
    if type(side) is not tuple or not side:
        return True
    return not all(
        type(level) is tuple and len(level) == 2 and type(level[0]) is float and type(level[1]) is float
        for level in side
    )


def fuzz_side_sums(rng: Random, corpus: Corpus) -> None:
    """A liquidity side's keys and running sums against the twin; declined exactly where it must."""
    n = rng.choice([0, 1, 2, 10, 50, 100, rng.randint(0, 400)])
    levels: list[Any] = [(draw_float(rng, corpus, 0.2), draw_float(rng, corpus, 0.2)) for _ in range(n)]
    if levels and rng.random() < 0.2:  # one level that is not a float pair
        i = rng.randrange(len(levels))
        levels[i] = rng.choice([
            (1, 2.0), (1.0, 2), (FloatChild(1.0), 2.0), (1.0, 2.0, 3.0), (1.0,), [1.0, 2.0],
            PlainLevel((1.0, 2.0)), Quote("v", 1.0, 2.0), None, 1.0, "ab", (True, 2.0), (2**70, 1.0),
        ])
    side: Any = tuple(levels)
    if rng.random() < 0.05:
        side = rng.choice([levels, PlainLevel(levels), iter(levels), None, b"ab", *BAD_LEVEL_TYPES])
    negate: Any = rng.random() < 0.5
    if rng.random() < 0.05:
        negate = rng.choice([0, 1, "", "x", None, [], [0], Raising()])
    where = f"n={n} negate={_short(negate)} side={_short(side)}"
    with collecting_always():
        got = outcome(C.side_sums, side, negate)
    if got[0] == "raise":  # only a truth value that raises may make it raise
        want_raise = outcome(bool, negate)
        expect_same("side_sums", got, want_raise, where)
        return
    if got[1] is None:
        if not _sums_declines(side):
            raise MismatchError(f"side_sums: C declined a side it must take; {where}")
        survives(side_sums_py, side, bool(negate))
        return
    if _sums_declines(side):
        raise MismatchError(f"side_sums: C took a side it must decline; {where}")
    expect_same("side_sums", got, outcome(side_sums_py, side, bool(negate)), where)


# -- bbo_quotes -------------------------------------------------------------------------------


class BboRun(NamedTuple):
    """A run of the right shape but not a plain tuple: bbo_quotes must decline it."""

    name: str
    side: tuple[tuple[float, float], ...]


class Relay:
    """Cyclic garbage that leaves its successor when collected; the last one empties the lists.

    Under collecting_always, relay k meddles at about the k-th allocation of
    the call: the runs' copies, the quotes, a best level, the result.
    """

    def __init__(self, k: int, *victims: list[Any]) -> None:
        self.k = k
        self.victims = victims
        self.cycle = self

    def __del__(self) -> None:
        if self.k > 0:
            Relay(self.k - 1, *self.victims)
            return
        for victim in self.victims:
            victim.clear()


def _fresh_float(x: float) -> float:
    """A new float object of x's bits: the quotes must hold the levels' own objects."""
    return float(struct.unpack("<d", struct.pack("<d", x))[0])


#: Level shapes bbo_quotes declines when one is a side's first level.
BAD_BBO_LEVELS: list[Any] = [
    (1, 2.0), (1.0, 2), (FloatChild(1.0), 2.0), (1.0, FloatChild(2.0)), (1.0, 2.0, 3.0), (1.0,),
    [1.0, 2.0], PlainLevel((1.0, 2.0)), Quote("v", 1.0, 2.0), None, 1.0, "ab", (True, 2.0), (2**70, 1.0),
    (Raising(), 1.0),
]  # fmt: skip


def _draw_bbo_args(rng: Random, corpus: Corpus) -> list[Any]:
    """One bbo_quotes call's arguments (fresh lists and floats: a meddler may empty the lists)."""
    n = rng.choice([0, 1, 2, 6, rng.randint(0, 40)])
    # A few values for the whole call: ties in price and in amount across venues.
    pool = [draw_float(rng, corpus, 0.3) for _ in range(3)] + [math.nan, -0.0]

    def number() -> float:
        return _fresh_float(rng.choice(pool) if rng.random() < 0.6 else draw_float(rng, corpus, 0.3))

    def side() -> Any:
        if rng.random() < 0.3:
            return ()
        return tuple((number(), number()) for _ in range(rng.choice([1, 1, 2, 10, rng.randint(1, 30)])))

    bid_runs: list[Any] = []
    ask_runs: list[Any] = []
    for _ in range(n):
        name = rng.choice(NAMES) if rng.random() < 0.9 else rng.choice([5, None, b"x", ("t",), 1.5])
        bid_runs.append((name, side()))
        ask_runs.append((name if rng.random() < 0.8 else "other", side()))  # the twin reads the bid's name
    if n and rng.random() < 0.2:  # one thing C must decline, or past what it reads
        runs = rng.choice([bid_runs, ask_runs])
        i = rng.randrange(n)
        name, levels = runs[i]
        kind = rng.randrange(7)
        if kind == 0:
            shapes = [[name, levels], BboRun(name, levels), (name, levels, 3), (name,), None, "ab", 5]
            runs[i] = rng.choice(shapes)
        elif kind == 1:
            runs[i] = (name, rng.choice([list(levels), PlainLevel(levels), None, 5, "ab", iter(levels)]))
        elif kind in (2, 3, 4):  # the first level
            runs[i] = (name, (rng.choice(BAD_BBO_LEVELS), *levels[1:]))
        else:  # a later level: never read
            runs[i] = (name, (*(levels[:1] or ((1.0, 2.0),)), rng.choice(BAD_BBO_LEVELS)))
    if rng.random() < 0.03:  # one run more on one side
        rng.choice([bid_runs, ask_runs]).append(("extra", ()))
    types: tuple[Any, Any] = (VenueBbo, MergedLevel)
    r = rng.random()
    if r < 0.1:
        types = (rng.choice(ANY_LEVEL_TYPES), rng.choice(ANY_LEVEL_TYPES))
    elif r < 0.13:  # a struct sequence (declined) or not a tuple type at all (TypeError)
        bad = rng.choice(BAD_LEVEL_TYPES)
        types = (bad, MergedLevel) if rng.random() < 0.5 else (VenueBbo, bad)
    nan: Any = float("nan") if rng.random() < 0.95 else rng.choice([None, 0.0, "nan", -math.inf])
    bids: Any = tuple(bid_runs) if rng.random() < 0.3 else bid_runs
    asks: Any = tuple(ask_runs) if rng.random() < 0.3 else ask_runs
    return [bids, asks, *types, nan]


def _tuple_type(t: object) -> bool:
    return isinstance(t, type) and issubclass(t, tuple)


def _bbo_declines(bid_runs: Any, ask_runs: Any, quote_type: type, level_type: type) -> bool:
    """Whether C must leave the call to its twin (see bbo_quotes in _speedups.c).

    For tuple types and runs of one length: a struct sequence type, a run that
    is not a plain 2-tuple whose side is a plain tuple, or a non-empty side
    whose first level is not a plain 2-tuple of exact floats.
    """
    if hasattr(quote_type, "n_sequence_fields") or hasattr(level_type, "n_sequence_fields"):
        return True

    def taken(run: object) -> bool:
        if type(run) is not tuple or len(run) != 2 or type(run[1]) is not tuple:
            return False
        if not run[1]:
            return True
        level = run[1][0]
        return type(level) is tuple and len(level) == 2 and all(type(x) is float for x in level)

    return not all(map(taken, [*bid_runs, *ask_runs]))


def _bbo_want(args: list[Any]) -> tuple[str, Any]:
    """What C must give for ``args`` (sequences): its errors, None where it declines, else the twin's."""
    bid_runs, ask_runs, quote_type, level_type, _ = args
    if not _tuple_type(quote_type) or not _tuple_type(level_type):
        return "raise", TypeError
    if len(bid_runs) != len(ask_runs):
        return "raise", ValueError
    if _bbo_declines(bid_runs, ask_runs, quote_type, level_type):
        return "ok", None
    return outcome(bbo_quotes_py, *args)


def _bbo_same_objects(got: Any, want: Any, nan: object) -> bool:
    """The twin's very objects (names, floats, nan), the types too; the C's own 0.0 for an empty side."""
    quotes, want_quotes = got[0], want[0]
    if type(quotes) is not tuple or len(quotes) != len(want_quotes):
        return False
    for quote, twin in zip(quotes, want_quotes, strict=True):
        if type(quote) is not type(twin) or len(quote) != 5:
            return False
        for i, (g, w) in enumerate(zip(quote, twin, strict=True)):
            empty_amount = i in (2, 4) and twin[i - 1] is nan
            if not (same(g, w) and type(g) is float if empty_amount else g is w):
                return False
    for g, w in zip(got[1:], want[1:], strict=True):
        if w is None:
            if g is not None:
                return False
        elif type(g) is not type(w) or len(g) != 3 or not all(a is b for a, b in zip(g, w, strict=True)):
            return False
    return True


def fuzz_bbo_quotes(rng: Random, corpus: Corpus) -> None:
    """Each venue's quote and the best of each side against the twin; declined exactly where it must."""
    seed = rng.getrandbits(32)
    args = _draw_bbo_args(Random(seed), corpus)
    where = f"seed={seed} n={len(args[0])},{len(args[1])} types={args[2]!r},{args[3]!r}"
    r = rng.random()
    if r < 0.8:
        want = _bbo_want(args)
        with collecting_always():  # nothing to collect but what the call makes
            got = outcome(C.bbo_quotes, *args)
        if got == ("ok", None) and want != got:
            raise MismatchError(f"bbo_quotes: C declined a call it must take; {where}")
        if want == ("ok", None) and got != want:
            raise MismatchError(f"bbo_quotes: C took a call it must decline; {where}")
        expect_same("bbo_quotes", got, want, where)
        if got[0] == "ok" and got[1] is not None and not _bbo_same_objects(got[1], want[1], args[4]):
            raise MismatchError(
                f"bbo_quotes: not the twin's objects: C {_short(got)}, twin {_short(want)}; {where}"
            )
        return
    if r < 0.95:  # garbage whose finalizer empties the runs at some allocation of the call
        bids, asks = list(args[0]), list(args[1])
        want = _bbo_want(args)  # on the runs as drawn (the lists are copies: the twin left them be)
        empty = _bbo_want([[], [], *args[2:]])
        Relay(rng.choice([0, 1, 2, 3, rng.randint(0, 40)]), bids, asks)
        with collecting_always():
            got = outcome(C.bbo_quotes, bids, asks, *args[2:])
        # What the lists held when copied: as drawn, both empty, or one of each (lengths differ).
        if not (got in (want, empty, ("raise", ValueError)) or same(got, want)):
            raise MismatchError(f"bbo_quotes: with a meddling finalizer C gave {_short(got)}; {where}")
        return
    # Not sequences, not types, not five arguments: it returns or raises.
    bad = list(args)
    i = rng.randrange(5)
    bad[i] = rng.choice([None, 5, "ab", {"a": ()}, iter(args[i]) if i < 2 else (1, 2), *BAD_LEVEL_TYPES])
    if rng.random() < 0.2:
        bad = bad[: rng.randrange(5)] if rng.random() < 0.5 else [*bad, None]
    plant_finalizers(rng, *(x for x in bad[:2] if isinstance(x, list)))
    with collecting_always():
        got = survives(C.bbo_quotes, *bad)
    if len(bad) != 5 and got != ("raise", TypeError):
        raise MismatchError(f"bbo_quotes: {len(bad)} arguments gave {_short(got)}; {where}")


# -- band_figures and fill_figures ---------------------------------------------------------


class SlicedFill(Fill):
    """A fill type whose indexing is its own: fill_figures must decline it (the twin slices a fill)."""

    def __getitem__(self, i: Any) -> Any:
        return tuple.__getitem__(self, i)


#: Numbers the figures must decline where a float is read (or, for mid and bands, take).
BAD_LIQ_NUMBERS: list[Any] = [
    math.nan, math.inf, -math.inf, FloatChild(1.0), 1, True, None, "1.0", 2**70,
]  # fmt: skip


def _liq_runs(rng: Random, corpus: Corpus) -> tuple[list[Any], list[Any]]:
    """Venue books as the merge's runs: 0-10 venues on a shared tick grid (ties across venues), or garbage.

    Garbage: sides of any finite numbers, unsorted, with huge ones (sums that overflow).
    """
    count = rng.choice([0, 1, 2, 3, 6, 8, rng.randint(0, 10)])
    names = sorted(rng.sample(NAMES, min(count, len(NAMES))))
    base = rng.choice(corpus.prices)
    tick = base * rng.choice([1e-5, 1e-4, 1e-3, 1e-2])
    pool = [rng.choice([0.001, 0.1, 0.5, 1.0, 2.5]), draw_float(rng, corpus, 0.0), rng.uniform(0.0001, 10)]
    garbage = rng.random() < 0.1
    bid_runs: list[Any] = []
    ask_runs: list[Any] = []
    for name in names:
        sides = []
        for bid in (True, False):
            n = rng.choice([0, 1, 2, 10, 50, 120, rng.randint(1, 200)])
            if garbage:
                # Distinct prices best first (keys increase: taken); amounts of any sign and size.
                distinct = {draw_float(rng, corpus, 0.3) * rng.choice([1, -1]) for _ in range(n)}
                levels = [(p, draw_float(rng, corpus, 0.3) * rng.choice([1, 1, -1, 0])) for p in distinct]
                side = sorted((p, a) for p, a in levels if math.isfinite(p) and math.isfinite(a))
                sides.append(tuple(side[::-1] if bid else side))
                continue
            ticks = sorted(rng.sample(range(int(n * rng.choice([1.0, 1.5, 4.0])) + 1), n))
            amounts = [rng.choice(pool) if rng.random() < 0.6 else draw_float(rng, corpus, 0) for _ in ticks]
            prices = [base - t * tick if bid else base + tick + t * tick for t in ticks]
            sides.append(tuple(zip(prices, amounts, strict=True)))
        bid_runs.append((name, sides[0]))
        ask_runs.append((name, sides[1]))
    return bid_runs, ask_runs


def _liq_read(runs: list[Any], bids: bool) -> list[list[Any]]:
    """[names, sides, keys, amounts, notionals] of the runs, as SideCache reads them (fresh lists)."""
    venues = SideCache(bids=bids).read(runs)
    return [venues.names, venues.sides, venues.keys, venues.amounts, venues.notionals]


def _liq_quantities(rng: Random, corpus: Corpus, total: float) -> Any:
    """Quantities: shallow, deep, at the books' total and beyond, tiny, repeated; at times not floats."""
    scale = total if math.isfinite(total) and total > 0 else 1.0

    def one() -> float:
        r = rng.random()
        if r < 0.4:
            return scale * rng.random()
        if r < 0.6:
            return rng.choice([scale, scale * (1 - 1e-13), scale * (1 + 1e-13), scale * 2, 1e-12, 5e-324])
        if r < 0.9:
            return rng.choice([0.5, 1.0, 10.0, 100.0]) * rng.choice([1e-3, 1.0, 1e3])
        return rng.choice([0.0, -0.0, -1.0, 1e308, -1e308, draw_float(rng, corpus, 0.3)])

    quantities: list[Any] = [one() for _ in range(rng.choice([0, 1, 3, 5, rng.randint(0, 40)]))]
    if quantities and rng.random() < 0.3:
        quantities += rng.choices(quantities, k=rng.randint(1, 4))  # repeats
        rng.shuffle(quantities)
    if quantities and rng.random() < 0.05:
        quantities[rng.randrange(len(quantities))] = rng.choice(BAD_LIQ_NUMBERS)
    if rng.random() < 0.03:
        return rng.choice([quantities, iter(quantities), None, 5.0, PlainLevel(quantities)])
    return tuple(quantities)


def _liq_spoil(rng: Random, corpus: Corpus, lists: list[Any], fills: bool) -> None:
    """Break (or not quite) one thing of a side's [names, (sides,) keys, amounts, (notionals)] in place."""
    names = lists[0]
    if not names:
        return
    v = rng.randrange(len(names))
    kind = rng.randrange(9)
    j = rng.choice([2, 3, 4] if fills else [1, 2])  # keys, amounts(, notionals)
    seq = list(lists[j][v])
    if kind == 0:  # a number: not a float, not finite, or another finite value
        i = rng.randrange(len(seq))
        seq[i] = rng.choice([*BAD_LIQ_NUMBERS, draw_float(rng, corpus, 0.5), -seq[i], 0.0, 1e308])
    elif kind == 1:  # one too many, or too few
        if rng.random() < 0.5:
            seq.append(seq[-1])
        else:
            seq.pop()
    elif kind == 2 and len(seq) > 1:  # keys out of order, or equal
        i = rng.randrange(len(seq) - 1)
        seq[i + 1] = seq[i] if rng.random() < 0.5 else seq[i] - 1.0
    elif kind == 3:
        lists[j][v] = rng.choice([tuple(seq), iter(seq), None, PlainLevel(seq), "ab"])
        return
    elif kind == 4 and fills:  # the side: its type, a level's shape or numbers
        side = list(lists[1][v])
        i = rng.randrange(len(side))
        side[i] = rng.choice([
            (side[i][0], rng.choice(BAD_LIQ_NUMBERS)), (rng.choice(BAD_LIQ_NUMBERS), side[i][1]),
            list(side[i]),
            (*side[i], 1.0), side[i][:1], PlainLevel(side[i]), Quote("v", *side[i]), None,
            (side[i][0], -side[i][1]),
        ])  # fmt: skip
        lists[1][v] = tuple(side) if rng.random() < 0.9 else side
        return
    elif kind == 5:  # a container of another length, or not a list
        k = rng.randrange(len(lists))
        if rng.random() < 0.6:
            lists[k] = rng.choice([lists[k][:-1], [*lists[k], lists[k][0]], tuple(lists[k])])
        else:
            lists[k] = rng.choice([iter(lists[k]), None, PlainLevel(lists[k]), {}])
        return
    elif kind == 6:  # names of any type (only referenced)
        names[v] = rng.choice([None, 5, b"x", ("t",), 1.5, math.nan])
        return
    elif kind == 7:  # a best price of 0 (the twin divides by it), or a key of 0 further in
        seq[0 if rng.random() < 0.5 else -1] = rng.choice([0.0, -0.0])
    else:  # a venue without levels
        empties: list[Any] = [(), [], [0.0], [0.0]] if fills else [[], [0.0]]
        for k, empty in enumerate(empties, 1):
            lists[k][v] = empty
        return
    lists[j][v] = seq


def _liq_floats(seq: Any, n: int, increasing: bool = False) -> bool:
    if type(seq) not in (list, tuple) or len(seq) != n:
        return False
    if not all(type(x) is float and math.isfinite(x) for x in seq):
        return False
    return not increasing or all(a < b for a, b in pairwise(seq))


def _liq_taken(names: Any, keys: Any, amounts: Any, *fills: Any) -> bool:
    """Rule 3 of band_figures / fill_figures in _speedups.c: one side's venues as C takes them.

    ``fills``: the fills' notionals and sides (none for the bands).
    """
    notionals, sides = fills if fills else (None, None)
    seqs = [names, keys, amounts, *fills]
    if any(type(s) not in (list, tuple) for s in seqs) or len({len(s) for s in seqs}) != 1 or len(names) > 64:
        return False
    for v in range(len(names)):
        if type(keys[v]) not in (list, tuple) or not keys[v]:
            return False
        n = len(keys[v])
        if not _liq_floats(keys[v], n, increasing=True) or not _liq_floats(amounts[v], n + 1):
            return False
        if fills:
            side = sides[v]
            if not _liq_floats(notionals[v], n + 1) or type(side) is not tuple or len(side) != n:
                return False
            if not all(type(level) is tuple and _liq_floats(level, 2) for level in side):
                return False
    return True


def _liq_plain(*types: Any) -> bool:
    """plain_tuple_type of tuple types (rule 1): not a struct sequence."""
    return not any(hasattr(t, "n_sequence_fields") for t in types)


def _fill_declines(args: list[Any]) -> bool:
    """Whether C must leave fill_figures(*args) to its twin, past its errors (rules 1-4 in _speedups.c)."""
    names, sides, keys, amounts, notionals, quantities, _, fill_type, amount_type, _ = args
    if not _liq_plain(fill_type, amount_type) or fill_type.__getitem__ is not tuple.__getitem__:
        return True
    if type(quantities) is not tuple or not all(type(q) is float and math.isfinite(q) for q in quantities):
        return True
    if not quantities:
        return False
    if not _liq_taken(names, keys, amounts, notionals, sides):
        return True
    return bool(keys) and min(k[0] for k in keys) == 0.0


def _fill_want(args: list[Any]) -> tuple[str, Any]:
    """What C must give for fill_figures(*args): its errors, None where it declines, else the twin's."""
    if len(args) != 10:
        return "raise", TypeError
    truth = outcome(bool, args[6])  # sell is read first
    if truth[0] == "raise":
        return truth
    if not _tuple_type(args[7]) or not _tuple_type(args[8]):
        return "raise", TypeError
    if _fill_declines(args):
        return "ok", None
    if not args[5]:
        return "ok", ()
    return outcome(fill_figures_py, *args[:6], truth[1], *args[7:])


def _band_declines(args: list[Any]) -> bool:
    """Whether C must leave band_figures(*args) to its twin, past its errors (rules 1-3 in _speedups.c)."""
    mid, bands = args[6], args[7]
    if not _liq_plain(args[8], args[9]) or type(mid) is not float or type(bands) is not tuple:
        return True
    if not all(type(b) is float for b in bands):
        return True
    return bool(bands) and not (_liq_taken(*args[0:3]) and _liq_taken(*args[3:6]))


def _band_want(args: list[Any]) -> tuple[str, Any]:
    if len(args) != 10 or not _tuple_type(args[8]) or not _tuple_type(args[9]):
        return "raise", TypeError
    if _band_declines(args):
        return "ok", None
    if not args[7]:
        return "ok", ()
    return outcome(band_figures_py, *args)


def _liq_same_objects(got: Any, want: Any, nan: object) -> bool:
    """The twin's nan object exactly where the twin puts it, and nowhere else."""
    if (got is nan) != (want is nan):
        return False
    if type(want) is not float and isinstance(want, tuple) and not isinstance(want, str):
        return all(_liq_same_objects(g, w, nan) for g, w in zip(got, want, strict=True))
    return True


def _liq_check(name: str, got: tuple[str, Any], want: tuple[str, Any], nan: object, where: str) -> None:
    if got == ("ok", None) and want != got:
        raise MismatchError(f"{name}: C declined a call it must take; {where}")
    if want == ("ok", None) and got != want:
        raise MismatchError(f"{name}: C took a call it must decline: {_short(got)}; {where}")
    expect_same(name, got, want, where)
    if got[0] == "ok" and got[1] is not None and not _liq_same_objects(got[1], want[1], nan):
        detail = f"C {_short(got)}, the twin {_short(want)}; {where}"
        raise MismatchError(f"{name}: its nan not where the twin puts it: {detail}")


def _liq_types(rng: Random, figure: type, amount: type) -> tuple[Any, Any]:
    r = rng.random()
    if r < 0.9:
        return figure, amount
    if r < 0.95:
        return rng.choice([figure, *ANY_LEVEL_TYPES]), rng.choice(ANY_LEVEL_TYPES)
    bad = rng.choice([*BAD_LEVEL_TYPES, SlicedFill])
    return (bad, amount) if rng.random() < 0.5 else (figure, bad)


def _liq_meddle(
    rng: Random, name: str, fn: Callable[..., Any], args: list[Any], lists: list[Any],
    want_of: Callable[[list[Any]], tuple[str, Any]], where: str,
) -> None:  # fmt: skip
    """Garbage whose finalizer empties the lists at some allocation of the call (or of the caller's).

    C reads every list before it allocates, so it gives what is due for the
    lists as drawn, or, when the finalizer ran before the call reached it, for
    the lists as the finalizer left them.
    """
    want = want_of(args)
    Relay(rng.choice([0, 1, 2, 3, rng.randint(0, 60)]), *lists)
    with collecting_always():
        got = outcome(fn, *args)
    gc.collect()  # the rest of the relay, if any: the lists as the finalizer leaves them
    for twin in (want, want_of(args)):
        if got[0] == twin[0] and (same(got[1], twin[1]) if got[0] == "ok" else got[1] is twin[1]):
            return
    raise MismatchError(f"{name}: meddled with, C gave {_short(got)}, the twin {_short(want)}; {where}")


def _liq_hostile(rng: Random, name: str, fn: Callable[..., Any], args: list[Any], where: str) -> None:
    """Not sequences, not types, not ten arguments: it returns or raises (TypeError for a wrong count)."""
    bad = list(args)
    i = rng.randrange(10)
    bad[i] = rng.choice([None, 5, "ab", {"a": ()}, iter([1.0]), [[1.0]], math.nan, *BAD_LEVEL_TYPES])
    if rng.random() < 0.3:
        bad = bad[: rng.randrange(10)] if rng.random() < 0.5 else [*bad, None]
    plant_finalizers(rng, *(x for x in bad if isinstance(x, list)))
    with collecting_always():
        got = survives(fn, *bad)
    if len(bad) != 10 and got != ("raise", TypeError):
        raise MismatchError(f"{name}: {len(bad)} arguments gave {_short(got)}; {where}")


def _draw_fill_args(rng: Random, corpus: Corpus) -> tuple[list[Any], list[Any]]:
    """fill_figures' arguments and the lists a finalizer may empty (fresh ones: drawn again to replay)."""
    bid_runs, ask_runs = _liq_runs(rng, corpus)
    sell = rng.random() < 0.5
    lists = _liq_read(bid_runs if sell else ask_runs, sell)
    total = sum(a[-1] for a in lists[3])
    if rng.random() < 0.25:
        _liq_spoil(rng, corpus, lists, fills=True)
    quantities = _liq_quantities(rng, corpus, total)
    flag: Any = sell
    if rng.random() < 0.05:
        truthy: list[Any] = [1, "x", [0], Raising()] if sell else [0, "", None, [], Raising()]
        flag = rng.choice(truthy)
    fill_type, amount_type = _liq_types(rng, Fill, VenueAmount)
    nan: Any = float("nan") if rng.random() < 0.9 else rng.choice([None, "nan", _fresh_float(0.0), -math.inf])
    victims = [x for x in lists if isinstance(x, list)]
    victims += [x for seqs in lists[2:] if isinstance(seqs, list) for x in seqs if isinstance(x, list)]
    return [*lists, quantities, flag, fill_type, amount_type, nan], victims


def fuzz_fill_figures(rng: Random, corpus: Corpus) -> None:
    """Each quantity's fill across the venues against the twin, bit for bit; declined exactly where due."""
    seed = rng.getrandbits(32)
    args, victims = _draw_fill_args(Random(seed), corpus)
    n = len(args[0]) if isinstance(args[0], list | tuple) else -1
    where = f"seed={seed} venues={n} quantities={_short(args[5], 120)} sell={_short(args[6])}"
    r = rng.random()
    if r < 0.8:
        want = _fill_want(args)
        with collecting_always():  # nothing to collect but what the call makes
            got = outcome(C.fill_figures, *args)
        _liq_check("fill_figures", got, want, args[9], where)
        if got[0] == "ok" and got[1] and not all(
            fill[1] is q for fill, q in zip(got[1], args[5], strict=True)
        ):
            raise MismatchError(f"fill_figures: not the quantity objects; {where}")
        return
    if r < 0.93:
        _liq_meddle(rng, "fill_figures", C.fill_figures, args, victims, _fill_want, where)
        return
    _liq_hostile(rng, "fill_figures", C.fill_figures, args, where)


def _draw_band_args(rng: Random, corpus: Corpus) -> tuple[list[Any], list[Any]]:
    bid_runs, ask_runs = _liq_runs(rng, corpus)
    bid_lists, ask_lists = _liq_read(bid_runs, True), _liq_read(ask_runs, False)
    bids = [bid_lists[0], *bid_lists[2:4]]
    asks = [ask_lists[0], *ask_lists[2:4]]
    if bids[1] and asks[1]:
        mid = (min(k[0] for k in asks[1]) - min(k[0] for k in bids[1])) * 0.5
    else:
        mid = rng.choice(corpus.prices)
    if rng.random() < 0.2:
        mid = rng.choice([mid * rng.uniform(0.9, 1.1), draw_float(rng, corpus, 0.5), math.nan, -mid])
    for lists in (bids, asks):
        if rng.random() < 0.15:
            _liq_spoil(rng, corpus, lists, fills=False)
    widths = [0.25, 1.0, 5.0, 10.0, 25.0, 50.0, 100.0, 333.3, 1000.0, 1e4]
    bands: Any = tuple(sorted(rng.sample(widths, rng.randint(0, 6))))
    if rng.random() < 0.1:
        bands = (*bands, rng.choice([math.nan, math.inf, -5.0, 0.0, 1e300, draw_float(rng, corpus, 0.5)]))
    if rng.random() < 0.05:
        bands = rng.choice([list(bands), (*bands, rng.choice(BAD_LIQ_NUMBERS)), None, PlainLevel(bands)])
    if rng.random() < 0.03:
        mid = rng.choice(BAD_LIQ_NUMBERS)
    band_type, amount_type = _liq_types(rng, Band, VenueAmount)
    victims = [x for x in (*bids, *asks) if isinstance(x, list)]
    inner = [seqs for seqs in (*bids[1:], *asks[1:]) if isinstance(seqs, list)]
    victims += [x for seqs in inner for x in seqs if isinstance(x, list)]
    return [*bids, *asks, mid, bands, band_type, amount_type], victims


def fuzz_band_figures(rng: Random, corpus: Corpus) -> None:
    """What the venues hold within each band around the mid against the twin; declined exactly where due."""
    seed = rng.getrandbits(32)
    args, victims = _draw_band_args(Random(seed), corpus)
    where = f"seed={seed} mid={_short(args[6])} bands={_short(args[7], 120)}"
    r = rng.random()
    if r < 0.8:
        want = _band_want(args)
        with collecting_always():
            got = outcome(C.band_figures, *args)
        _liq_check("band_figures", got, want, None, where)
        if got[0] == "ok" and got[1] and not all(b[0] is bps for b, bps in zip(got[1], args[7], strict=True)):
            raise MismatchError(f"band_figures: not the bands' objects; {where}")
        return
    if r < 0.93:
        _liq_meddle(rng, "band_figures", C.band_figures, args, victims, _band_want, where)
        return
    _liq_hostile(rng, "band_figures", C.band_figures, args, where)


# -- the run -------------------------------------------------------------------------------


TARGETS: dict[str, Callable[[Random, Corpus], None]] = {
    "read_levels": fuzz_read_levels,
    "merge_side": fuzz_merge_side,
    "check_book": fuzz_check_book,
    "apply_side": fuzz_apply_side,
    "apply_book": fuzz_apply_side,
    "read_bybit_delta": fuzz_read_bybit_delta,
    "apply_text_side": fuzz_apply_text_side,
    "top_levels": fuzz_top_levels,
    "encode_summary": fuzz_encode_summary,
    "fix_entries": fuzz_fix_entries,
    "byte_sum": fuzz_byte_sum,
    "venue_states": fuzz_venue_states,
    "side_sums": fuzz_side_sums,
    "bbo_quotes": fuzz_bbo_quotes,
    "band_figures": fuzz_band_figures,
    "fill_figures": fuzz_fill_figures,
    "crc32_digits": fuzz_checksums,
    "crc32_interleaved": fuzz_checksums,
}
#: Venue bytes reach read_levels: it gets three turns in each round.
ROUND = [
    "crc32_digits",
    "crc32_interleaved",
    "read_levels",
    "merge_side",
    "read_levels",
    "check_book",
    "apply_side",
    "read_levels",
    "apply_text_side",
    "top_levels",
    "encode_summary",
    "read_bybit_delta",
    "apply_book",
    "fix_entries",
    "byte_sum",
    "venue_states",
    "side_sums",
    "bbo_quotes",
    "band_figures",
    "fill_figures",
]


def regressions() -> None:
    """The reproducers of issue 16's findings: each returns or raises, and the values are right."""
    side40 = b"[" + b",".join(b'["%d.5","%d"]' % (100 - i, i + 1) for i in range(40)) + b"]"
    expect_same(
        "read_levels", outcome(C.read_levels, b'[["1","2"]]', 0, 2**60), ("ok", ((1.0, 2.0),)), "2**60"
    )
    for depth in (2**61 + 8, 2**31, sys.maxsize):
        expect_same(
            "read_levels",
            outcome(C.read_levels, side40, 0, depth),
            outcome(read_levels_twin, side40, 0, 40),
            f"depth {depth}",
        )
    levels: list[Any] = []
    levels += [(Clearing(10.0, levels), 1.0), (9.0, 1.0), (8.0, 2.0)]
    survives(C.merge_side, [("a", levels), ("b", [(9.5, 1.0)])], 10, True, MergedLevel)
    levels = []
    levels += [(Clearing(10.0, levels), 1.0), (9.0, 1.0), (8.0, 1.0)]
    survives(C.check_book, levels, [])
    levels = []
    levels += [(Clearing(10.0, levels), 1.0), (9.0, 1.0), (8.0, 1.0)]
    survives(C.apply_side, SortedDict(), levels, False, 5.0)
    side: SortedDict[Any, Any] = SortedDict({HashClearing(p): (p, 1.0) for p in (1.0, 2.0, 3.0)})
    HashClearing.side = side
    try:
        survives(C.top_levels, side, 3)
    finally:
        HashClearing.side = None
    names = [("v" * 100, 1.0, 2.0)] * 3

    def clock() -> int:
        names.clear()
        return 5

    book = MergedBook("ethbtc", 0.1, names, (), 1, 2, 3, "x", 4)  # type: ignore[arg-type]
    survives(C.encode_summary, book, 0, clock)
    for bad in (time.struct_time, os.stat_result):
        expect_same(
            "merge_side",
            outcome(C.merge_side, [("a", [(1.0, 1.0)])], 3, True, bad),
            ("raise", TypeError),
            f"level_type {bad}",
        )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--seconds", type=float, default=60.0, help="how long to fuzz (default 60; 0: the reproducers only)"
    )
    p.add_argument("--seed", type=int, default=None, help="the run's seed (default: from the clock, printed)")
    p.add_argument("--case", type=int, default=None, help="run only this case of the seed (a replay)")
    p.add_argument(
        "--progress",
        type=Path,
        default=None,
        help="write each case's number here before it runs (the runner reads it after a crash)",
    )
    args = p.parse_args(argv)
    if C is None:
        print(
            "error: dragonfly._speedups is not built (or DRAGONFLY_PURE_PYTHON is set): nothing to fuzz",
            file=sys.stderr,
        )
        return 2
    functions = sorted(n for n in dir(C.module) if not n.startswith("_") and callable(getattr(C.module, n)))
    if functions != sorted(TARGETS):
        print(
            f"error: the C module has {functions}, the fuzzer targets {sorted(TARGETS)}: "
            "give every C function a fuzz target",
            file=sys.stderr,
        )
        return 2
    seed = args.seed if args.seed is not None else int(time.time() * 1000) % 10**9
    corpus = load_corpus()
    print(
        f"fuzzing {C.module.__file__}\n  seed {seed}, corpus: {corpus.source}, {len(corpus.prices)} prices",
        flush=True,
    )
    progress = os.open(args.progress, os.O_WRONLY | os.O_CREAT | os.O_TRUNC) if args.progress else None
    cases = dict.fromkeys(TARGETS, 0)
    started = time.monotonic()
    first, last = (args.case, args.case + 1) if args.case is not None else (0, None)
    case = first
    try:
        if args.case is None:
            if progress is not None:
                os.pwrite(progress, b"regressions\n", 0)
            case = -1
            regressions()
            case = first
        while (last is None and time.monotonic() - started < args.seconds) or (
            last is not None and case < last
        ):
            if progress is not None:
                os.pwrite(progress, f"{case:<20d}\n".encode(), 0)
            name = ROUND[case % len(ROUND)]
            TARGETS[name](Random(f"{seed}:{case}"), corpus)
            cases[name] += 1
            case += 1
    except MismatchError as exc:
        if case < 0:
            print(f"MISMATCH in the reproducers: {exc}", file=sys.stderr)
            print("replay: python3 dev.py fuzz --seconds 0", file=sys.stderr)
        else:
            print(f"MISMATCH in case {case} of seed {seed}: {exc}", file=sys.stderr)
            print(f"replay: python3 dev.py fuzz --seed {seed} --case {case}", file=sys.stderr)
        return 1
    elapsed = time.monotonic() - started
    print(f"{case - first} cases, {sum(C.calls.values()):,} calls in {elapsed:.0f} s, no mismatch")
    for name in TARGETS:
        print(f"  {name:15s} {C.calls[name]:11,d} calls ({cases[name]:,} cases led by it)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
