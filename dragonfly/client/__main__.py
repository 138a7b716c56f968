"""Print a dragonfly server's merged book: ``python -m dragonfly.client``.

Exit status: 0 after ``--count`` updates, when the server ends the stream, on
Ctrl-C or a closed stdout pipe; 1 when the server cannot be reached, refuses
the stream (token, stream caps), the TLS handshake fails or the stream fails;
2 on bad arguments, including an unusable ``--ca-file`` or token.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import sys
from collections.abc import Callable

if __name__ == "__main__":
    # grpc's core prints lines of its own on stderr (a failed TLS handshake,
    # for one), while this client reports every failure in one line: quiet it
    # unless the user asks for it. grpc reads the variable once, when it is
    # imported (below); importing this module elsewhere changes nothing.
    os.environ.setdefault("GRPC_VERBOSITY", "NONE")

from dragonfly import __version__
from dragonfly.client.format import format_summary, summary_to_json
from dragonfly.client.stream import (
    DEFAULT_TARGET,
    DEFAULT_WINDOW_BYTES,
    TOKEN_ENV,
    ClientError,
    CredentialsError,
    channel_options,
    load_token,
    stream_summaries,
)

_DEFAULT_PORT = 50051
# host:port, host alone, [v6]:port or [v6] alone.
_TARGET = re.compile(r"(?P<host>\[[0-9A-Fa-f:.%\w]+\]|[^\s:\[\]]+)(?::(?P<port>\d{1,5}))?")


def parse_target(text: str) -> str:
    """Return the grpc target of ``HOST[:PORT]``; the port defaults to 50051."""
    match = _TARGET.fullmatch(text.strip())
    if match is None or not 0 < int(match["port"] or _DEFAULT_PORT) < 65536:
        raise argparse.ArgumentTypeError(f"not HOST:PORT: {text!r}")
    return f"{match['host']}:{match['port'] or _DEFAULT_PORT}"


def _positive(kind: Callable[[str], float]) -> Callable[[str], float]:
    """Return an argparse type that accepts ``kind(text) > 0``."""

    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be > 0: {text!r}")
        return value

    return parse


def parse_window(text: str) -> int | None:
    """Return the ``--window-bytes`` value: bytes, or ``None`` for ``grpc`` (its auto-tuned window)."""
    if text.strip().lower() == "grpc":
        return None
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a byte count or 'grpc': {text!r}") from None
    try:
        channel_options(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc).replace("window_bytes", "window")) from None
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m dragonfly.client",
        description="Stream the merged order book from a dragonfly server and print each update.",
    )
    parser.add_argument(
        "--server",
        type=parse_target,
        default=DEFAULT_TARGET,
        metavar="HOST:PORT",
        help=f"server address (default {DEFAULT_TARGET})",
    )
    parser.add_argument("--count", type=_positive(int), metavar="N", help="exit after N updates")
    shown = parser.add_mutually_exclusive_group()
    shown.add_argument("--json", action="store_true", help="print one JSON object per update per line")
    shown.add_argument(
        "--live",
        action="store_true",
        help="redraw the book in place in the terminal: venues coloured, spread, mid, venue states, "
        "updates/s",
    )
    parser.add_argument(
        "--timeout",
        type=_positive(float),
        default=5.0,
        metavar="S",
        help="keep trying to connect for S seconds (default 5)",
    )
    parser.add_argument(
        "--depth", type=_positive(int), default=10, metavar="D", help="levels per side shown (default 10)"
    )
    parser.add_argument(
        "--window-bytes",
        type=parse_window,
        default=DEFAULT_WINDOW_BYTES,
        metavar="N|grpc",
        help=f"HTTP/2 window: at most N bytes of updates wait unread, so a slow reader reads recent books "
        f"(default {DEFAULT_WINDOW_BYTES}, ~3 updates; 'grpc': grpc's auto-tuned window, MiBs)",
    )
    parser.add_argument(
        "--tls", action="store_true", help="connect with TLS, verifying the server against the system's CAs"
    )
    parser.add_argument(
        "--ca-file", metavar="PEM", help="verify the server against this CA certificate only (implies --tls)"
    )
    parser.add_argument(
        "--tls-server-name",
        metavar="NAME",
        help="the name the server's certificate must carry, when not HOST (implies --tls)",
    )
    parser.add_argument(
        "--token-file",
        metavar="PATH",
        help=f"send the bearer token in this file (or set {TOKEN_ENV}; the file wins if both are given)",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return parser


async def _run(args: argparse.Namespace, token: str | None) -> int:
    received = 0
    summaries_of = stream_summaries(
        args.server,
        timeout=args.timeout,
        window_bytes=args.window_bytes,
        tls=args.tls,
        ca_file=args.ca_file,
        server_name=args.tls_server_name,
        token=token,
    )
    async with contextlib.aclosing(summaries_of) as summaries:
        if args.live:
            from dragonfly.client.live import run_live

            received = await run_live(summaries, args.server, args.depth, args.count)
            if received == args.count:
                return 0
        async for summary in summaries:
            text = summary_to_json(summary) if args.json else format_summary(summary, args.depth) + "\n"
            sys.stdout.write(text + "\n")
            sys.stdout.flush()  # one update at a time, also through a pipe
            received += 1
            if received == args.count:
                return 0
    print(f"server at {args.server} ended the stream after {received} updates", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the client; return the exit status."""
    args = _parser().parse_args(argv)
    try:
        token = load_token(args.token_file)
        return asyncio.run(_run(args, token))
    except CredentialsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ClientError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`| head`): stop quietly, and point stdout at
        # /dev/null so the interpreter's final flush does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
