from collections.abc import Callable, Iterable, Sequence

from sortedcontainers import SortedDict

from dragonfly.core.types import MergedBook, MergedLevel

def merge_side(
    runs: Sequence[tuple[str, Sequence[tuple[float, float]]]],
    depth: int,
    descending: bool,
    level_type: type[MergedLevel],
) -> tuple[MergedLevel, ...]: ...
def encode_summary(book: MergedBook, send_ns: int, clock: Callable[[], int] | None) -> bytes: ...
def read_levels(payload: bytes, start: int, depth: int) -> tuple[tuple[float, float], ...] | None: ...
def check_book(bids: Sequence[tuple[float, float]], asks: Sequence[tuple[float, float]]) -> str | None: ...
def apply_side(
    side: SortedDict[float, tuple[float, float]],
    levels: Iterable[tuple[float, float]],
    bids: bool,
    bound: float,
) -> bool: ...
def top_levels(side: SortedDict[float, tuple[float, float]], n: int) -> tuple[tuple[float, float], ...]: ...
