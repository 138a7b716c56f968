"""Errors of the serving layer."""

from __future__ import annotations

from dragonfly.core.errors import DragonflyError


class ServeError(DragonflyError):
    """The service cannot run; ``str()`` is one line fit for a user."""
