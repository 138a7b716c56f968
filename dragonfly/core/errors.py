"""Error types of the core layers, one per layer, all under :class:`DragonflyError`."""

from __future__ import annotations


class DragonflyError(Exception):
    """Base of every error dragonfly raises on purpose."""


class ConfigError(DragonflyError, ValueError):
    """Bad user input: an unknown venue, a malformed endpoint, a bad depth (a ValueError too)."""


class ConnectError(DragonflyError):
    """Client/protocol layer: a venue endpoint could not be reached."""


class SubscribeError(DragonflyError):
    """Feed subscriber layer: a venue refused the subscription."""


class ParseError(DragonflyError):
    """Feed listener layer: a frame could not be read as the venue's protocol."""


class HttpError(DragonflyError):
    """A REST request failed below the HTTP status level (connect, TLS, framing)."""


class NotFoundError(ConfigError):
    """A request names what the topology does not have: an unknown instrument, venue or view."""
