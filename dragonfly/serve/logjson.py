"""One JSON object a line: the server's logs for log shippers (``--log-format json``).

Each line has ``time`` (UTC, ISO 8601 with milliseconds), ``level``,
``logger``, ``message`` and, where the logger belongs to one venue
(``dragonfly.venue.<name>``) or a record carries them, ``venue`` and
``instrument``; an exception adds ``exception`` (its traceback as text).
What repeats per frame is rate-limited before it is logged, whatever the
format (:class:`~dragonfly.core.logs.RateLimitedLog`).
"""

from __future__ import annotations

import json
import logging
import time

_VENUE_LOGGER = "dragonfly.venue."


class JsonFormatter(logging.Formatter):
    """Format a record as one line of JSON (see the module doc)."""

    def format(self, record: logging.LogRecord) -> str:
        """Return ``record`` as one JSON object, no newline inside."""
        seconds = time.gmtime(record.created)
        out: dict[str, object] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", seconds) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        venue = getattr(record, "venue", None)
        if venue is None and record.name.startswith(_VENUE_LOGGER):
            venue = record.name[len(_VENUE_LOGGER) :]
        if venue:
            out["venue"] = venue
        instrument = getattr(record, "instrument", None)
        if instrument:
            out["instrument"] = instrument
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


def configure(level: str, fmt: str) -> None:
    """Log to stderr at ``level`` as ``text`` or ``json``."""
    handler = logging.StreamHandler()
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
