from collections.abc import Callable, Iterable, Sequence
from typing import Any

from sortedcontainers import SortedDict

from dragonfly.core.liquidity import Band, Fill, VenueAmount
from dragonfly.core.types import MergedBook, MergedLevel, VenueState
from dragonfly.core.views import VenueBbo

def merge_side(
    runs: Sequence[tuple[str, Sequence[tuple[float, float]]]],
    depth: int,
    descending: bool,
    level_type: type[MergedLevel],
) -> tuple[MergedLevel, ...]: ...
def venue_states(
    state_type: type[VenueState],
    names: Sequence[str],
    books: Sequence[Any],
    healths: Sequence[Any],
    members: int,
    now: int,
    codes: tuple[int, int, int, int],
) -> tuple[VenueState, ...] | None: ...
def encode_summary(book: MergedBook, send_ns: int, clock: Callable[[], int] | None) -> bytes: ...
def read_levels(payload: bytes, start: int, depth: int) -> tuple[tuple[float, float], ...] | None: ...
def check_book(bids: Sequence[tuple[float, float]], asks: Sequence[tuple[float, float]]) -> str | None: ...
def apply_side(
    side: SortedDict[float, tuple[float, float]],
    levels: Iterable[tuple[float, float]],
    bids: bool,
    bound: float,
) -> bool: ...
def apply_book(
    bid_side: SortedDict[float, tuple[float, float]],
    ask_side: SortedDict[float, tuple[float, float]],
    bids: Iterable[tuple[float, float]],
    asks: Iterable[tuple[float, float]],
    bid_floor: float,
    ask_ceiling: float,
) -> int: ...
def apply_text_side(
    side: SortedDict[float, tuple[float, float]],
    text: dict[float, tuple[str, str]],
    levels: Iterable[Sequence[str]],
    bids: bool,
    bound: float,
) -> bool: ...
def top_levels(
    side: SortedDict[float, Any], n: int, values: dict[float, Any] | None = None
) -> tuple[Any, ...]: ...
def crc32_digits(first: Sequence[tuple[str, str]], second: Sequence[tuple[str, str]]) -> int: ...
def crc32_interleaved(bids: Sequence[tuple[str, str]], asks: Sequence[tuple[str, str]]) -> int: ...
def read_bybit_delta(
    payload: bytes,
) -> tuple[str, list[tuple[float, float]], list[tuple[float, float]], int, int, None] | None: ...
def fix_entries(
    levels: tuple[MergedLevel, ...], entry_type: bytes, venues: dict[str, bytes]
) -> tuple[bytes, int] | None: ...
def byte_sum(data: bytes | bytearray | memoryview) -> int: ...
def side_sums(
    side: tuple[tuple[float, float], ...], negate: bool
) -> tuple[Sequence[float], list[float], list[float]] | None: ...
def bbo_quotes(
    bid_runs: Sequence[tuple[str, Sequence[tuple[float, float]]]],
    ask_runs: Sequence[tuple[str, Sequence[tuple[float, float]]]],
    quote_type: type[VenueBbo],
    level_type: type[MergedLevel],
    nan: float,
) -> tuple[tuple[VenueBbo, ...], MergedLevel | None, MergedLevel | None] | None: ...
def band_figures(
    bid_names: Sequence[str],
    bid_keys: Sequence[Sequence[float]],
    bid_amounts: Sequence[Sequence[float]],
    ask_names: Sequence[str],
    ask_keys: Sequence[Sequence[float]],
    ask_amounts: Sequence[Sequence[float]],
    mid: float,
    bands: tuple[float, ...],
    band_type: type[Band],
    amount_type: type[VenueAmount],
) -> tuple[Band, ...] | None: ...
def fill_figures(
    names: Sequence[str],
    sides: Sequence[tuple[tuple[float, float], ...]],
    keys: Sequence[Sequence[float]],
    amounts: Sequence[Sequence[float]],
    notionals: Sequence[Sequence[float]],
    quantities: tuple[float, ...],
    sell: bool,
    fill_type: type[Fill],
    amount_type: type[VenueAmount],
    nan: float,
) -> tuple[Fill, ...] | None: ...
