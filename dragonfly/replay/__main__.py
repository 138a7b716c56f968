"""``python -m dragonfly.replay DIR``: replay recorded traffic through the real adapters.

Prints, with ``--final-books``, one JSON object per line for every (venue,
symbol) book synchronised, and a summary per venue on stderr. Levels are the
venue's decimal strings, or numbers for a numeric channel's books (see
:class:`dragonfly.core.diff.DiffChannel`).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from dragonfly import __version__
from dragonfly.core.errors import ConfigError, DragonflyError
from dragonfly.core.types import check_depth
from dragonfly.replay.run import ReplayError, ReplayResult, replay


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m dragonfly.replay",
        description="Replay a recording directory (the ../shared/recordings format) through the "
        "venue simulator's replay server and dragonfly's real venue adapters.",
    )
    p.add_argument("directory", type=Path, help="folder of VENUE.ws.N.M / VENUE.http.N.M files")
    p.add_argument("--venue", action="append", default=[], help="only this venue (repeatable)")
    p.add_argument("--depth", type=int, default=10, help="levels per side printed (default 10)")
    p.add_argument("--final-books", action="store_true", help="print every synchronised book as JSON lines")
    pace = p.add_mutually_exclusive_group()
    pace.add_argument("--recorded-pace", action="store_true", help="replay at the recorded pace")
    pace.add_argument(
        "--speed", type=float, default=None, metavar="X", help="replay X times the recorded pace"
    )
    p.add_argument("--log-level", default="error", choices=["debug", "info", "warning", "error"])
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return p


def print_result(result: ReplayResult, depth: int, final_books: bool) -> None:
    """Write the books (stdout) and the summary (stderr)."""
    if final_books:
        for venue, sync in sorted(result.books, key=lambda b: (b[0], b[1].symbol)):
            # A numeric book (a channel without checksums) prints numbers.
            book = sync.book
            bids, asks = book.top(depth) if book.numeric else book.top_text(depth)
            line = {"venue": venue, "symbol": sync.symbol, "bids": bids, "asks": asks}
            sys.stdout.write(json.dumps(line, separators=(",", ":")) + "\n")
    for error in result.errors:
        print(f"warning: {error}", file=sys.stderr)
    rate = result.messages / result.seconds if result.seconds > 0 else 0.0
    for venue, s in sorted(result.venues.items()):
        print(
            f"{venue}: messages={s.messages} applied={s.applied} books={s.books} gaps={s.gaps} "
            f"resyncs={s.resyncs} checksums_ok={s.checksums_ok} checksums_bad={s.checksums_bad} "
            f"malformed={s.malformed}" + (f" unsynced={','.join(s.unsynced)}" if s.unsynced else ""),
            file=sys.stderr,
        )
    print(
        f"replayed {result.messages} messages in {result.seconds:.2f}s ({rate:,.0f} msg/s)",
        file=sys.stderr,
    )


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    try:
        check_depth(args.depth, "--depth")
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    pace = 1.0 if args.recorded_pace else args.speed
    import uvloop

    try:
        result = uvloop.run(replay(args.directory, venues=args.venue or None, depth=args.depth, pace=pace))
    except ReplayError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except DragonflyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    print_result(result, args.depth, args.final_books)
    return 0


if __name__ == "__main__":
    sys.exit(main())
