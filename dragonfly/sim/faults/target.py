"""What a fault needs of the server it runs on, and which kinds each venue supports."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from dragonfly.sim.faults.spec import REST_KINDS, Fault
from dragonfly.sim.http import HttpReply

if TYPE_CHECKING:
    from dragonfly.sim.peer import Peer


@dataclass(frozen=True)
class Capabilities:
    """What a venue's protocol has that some faults need."""

    venue: str
    #: Diff events carry sequence numbers a lost event breaks (``skip``).
    sequenced: bool = False
    #: Levels per side the venue's checksum covers (``checksum``), None without one.
    checksum_depth: int | None = None
    #: The venue has a reconnect or shutdown notice (``notice``).
    notice: bool = False
    #: The venue serves REST book snapshots (``rest-*``).
    rest_snapshots: bool = False


class FaultTarget(Protocol):
    """A venue server or replayed connection, as its faults see it."""

    @property
    def capabilities(self) -> Capabilities:
        """Return what the venue's protocol has."""
        ...

    @property
    def sessions(self) -> Collection[Peer]:
        """Return the connected clients."""
        ...

    @property
    def notice_grace_s(self) -> float:
        """Return the venue's delay between its notice and the close."""
        ...

    def notice_frame(self, peer: Peer) -> bytes | None:
        """Return the venue's reconnect notice for ``peer``, or None."""
        ...

    def snapshot_key(self, path: str, query: dict[str, str]) -> str | None:
        """Return the symbol a GET asks a book snapshot of, or None if it is no snapshot request."""
        ...

    def snapshot_reply(self, key: str, query: dict[str, str], age: float, ahead: int) -> HttpReply:
        """Answer a snapshot request with the book ``age`` seconds old, stamped ``ahead`` updates on."""
        ...

    def rest_error(self, status: int) -> HttpReply:
        """Return the venue's error answer with ``status``."""
        ...

    def history(self, symbol: str) -> Sequence[bytes]:
        """Return the book frames of ``symbol`` sent so far (replay), oldest first."""
        ...


def check_supported(fault: Fault, caps: Capabilities) -> None:
    """Raise ValueError if ``caps``' venue cannot show ``fault``."""
    kind, venue = fault.kind, caps.venue
    if kind == "skip" and not caps.sequenced:
        raise ValueError(f"skip: {venue} diff events carry no sequence numbers to skip")
    if kind == "checksum" and caps.checksum_depth is None:
        raise ValueError(f"checksum: {venue} sends no checksum")
    if kind == "notice" and not caps.notice:
        raise ValueError(f"notice: {venue} has no reconnect notice")
    if kind in REST_KINDS and not caps.rest_snapshots:
        raise ValueError(f"{kind}: {venue} serves no REST snapshots here")
