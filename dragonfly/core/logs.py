"""Rate-limited logging for events that can repeat per message (bad frames)."""

from __future__ import annotations

import logging
import time


class RateLimitedLog:
    """Log at most one record per ``interval`` seconds; count the rest.

    The first event is logged at once; later ones within the interval are
    only counted, and the next record that gets through says how many were
    suppressed. Calling it costs a clock read and a compare when suppressed.
    """

    __slots__ = ("_interval", "_logger", "_next", "_suppressed")

    def __init__(self, logger: logging.Logger, interval: float = 5.0) -> None:
        self._logger = logger
        self._interval = interval
        self._next = 0.0
        self._suppressed = 0

    def warning(self, msg: str, *args: object, exc_info: bool | BaseException = False) -> None:
        """Log a warning unless one was logged less than ``interval`` ago."""
        now = time.monotonic()
        if now < self._next:
            self._suppressed += 1
            return
        self._next = now + self._interval
        if self._suppressed:
            msg += " (%d similar suppressed)"
            args = (*args, self._suppressed)
            self._suppressed = 0
        self._logger.warning(msg, *args, exc_info=exc_info)


class RateLimitFilter(logging.Filter):
    """A logging filter that lets each message template through at most once per ``interval`` s.

    For loggers we do not write to ourselves (picows logs one line per
    protocol error, per connection): a venue that misbehaves on every
    connection cannot flood the log. Templates are few, so the table stays
    small; it is cleared if it ever grows past ``max_keys``.
    """

    def __init__(self, interval: float = 30.0, max_keys: int = 256) -> None:
        super().__init__()
        self._interval = interval
        self._max_keys = max_keys
        self._next: dict[tuple[str, str], float] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        """Return whether ``record`` may be emitted now."""
        key = (record.name, str(record.msg))
        now = time.monotonic()
        if now < self._next.get(key, 0.0):
            return False
        if len(self._next) >= self._max_keys:
            self._next.clear()
        self._next[key] = now + self._interval
        return True
