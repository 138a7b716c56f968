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

    def warning(self, msg: str, *args: object, exc_info: bool = False) -> None:
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
