"""``python -m dragonfly.serve INSTRUMENT``: the merged-book gRPC server."""

from __future__ import annotations

import logging
import sys

from dragonfly.core.errors import ConfigError


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run the server on uvloop, return the exit code."""
    from dragonfly.serve.config import parse_config

    try:
        cfg = parse_config(argv)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from dragonfly.serve.logjson import configure

    configure(cfg.log_level, cfg.log_format)
    if cfg.log_level != "debug":
        # picows logs every connection at INFO; the feeds log what matters.
        logging.getLogger("picows").setLevel(logging.WARNING)
        logging.getLogger("dragonfly.ws").setLevel(logging.WARNING)
    import uvloop

    from dragonfly.serve.server import run_server

    try:
        return uvloop.run(run_server(cfg))
    except KeyboardInterrupt:  # a second Ctrl-C during shutdown
        return 0


if __name__ == "__main__":
    sys.exit(main())
