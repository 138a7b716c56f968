from collections.abc import Callable, Sequence

from dragonfly.core.types import MergedBook, MergedLevel

def merge_side(
    runs: Sequence[tuple[str, Sequence[tuple[float, float]]]],
    depth: int,
    descending: bool,
    level_type: type[MergedLevel],
) -> tuple[MergedLevel, ...]: ...
def encode_summary(book: MergedBook, send_ns: int, clock: Callable[[], int] | None) -> bytes: ...
def read_levels(payload: bytes, start: int, depth: int) -> tuple[tuple[float, float], ...] | None: ...
