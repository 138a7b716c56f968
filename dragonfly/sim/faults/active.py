"""A fault in force: what it has done so far, when it ends, and how to end it early."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Sequence
from typing import Any

from dragonfly.sim.faults.spec import Fault

_ids = itertools.count(1)


class ActiveFault:
    """One applied fault: ``applied`` counts the frames, connections or requests it hit.

    A fault ends by itself once its ``count`` is used up or its ``for=`` window
    closes, or when cancelled. A fault applied to several replayed connections
    at once is a group: it sums and cancels its parts.
    """

    def __init__(self, fault: Fault, parts: Sequence[ActiveFault] = ()) -> None:
        """Start counting ``fault`` (or group ``parts``); nothing is scheduled here."""
        self.fault = fault
        self.id = next(_ids)
        #: Units still to hit before the fault ends by itself (None: no limit).
        self.remaining = fault.count
        #: Kind-specific state kept by the fault's behaviour while it runs.
        self.state: Any = None
        self._applied = 0
        self._active = True
        self._parts = list(parts)
        self._parent: ActiveFault | None = None
        for part in self._parts:
            part._parent = self
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._on_end: list[Callable[[ActiveFault], None]] = []

    def __repr__(self) -> str:
        """Show the spec, id and progress."""
        state = "active" if self.active else "ended"
        return f"<ActiveFault {self.id} {self.fault.spec} applied={self.applied} {state}>"

    @property
    def applied(self) -> int:
        """Return how many frames, connections or requests the fault has hit so far."""
        return self._applied + sum(part.applied for part in self._parts)

    @property
    def active(self) -> bool:
        """Return True while the fault can still hit something."""
        if self._parts:
            return self._active and any(part.active for part in self._parts)
        return self._active

    def as_json(self) -> dict[str, Any]:
        """Return the fault as the control endpoint lists it."""
        return {"id": self.id, "kind": self.fault.kind, "spec": self.fault.spec,
                "applied": self.applied, "active": self.active}

    # -- used by the behaviours --------------------------------------------------

    def hit(self, units: int = 1) -> None:
        """Count ``units`` hit; end the fault when its count is used up."""
        self._applied += units
        if self.remaining is not None:
            self.remaining -= units
            if self.remaining <= 0:
                self.end()
        self._notify()

    def on_end(self, callback: Callable[[ActiveFault], None]) -> None:
        """Call ``callback(self)`` once when the fault ends (at once if it has)."""
        if self._active:
            self._on_end.append(callback)
        else:
            callback(self)

    def end(self) -> None:
        """End the fault (idempotent)."""
        if not self._active:
            return
        self._active = False
        callbacks, self._on_end = self._on_end, []
        for callback in callbacks:
            callback(self)
        self._notify()

    # -- public ------------------------------------------------------------------

    def cancel(self) -> None:
        """End the fault now, and every part of a group."""
        for part in self._parts:
            part.cancel()
        self.end()

    async def wait_applied(self, n: int = 1, timeout: float = 5.0) -> int:
        """Wait until the fault has hit ``n`` units; return ``applied``.

        Raise TimeoutError if that does not happen within ``timeout`` seconds.
        """
        if self.applied < n:
            future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters.append((n, future))
            try:
                await asyncio.wait_for(future, timeout)
            except TimeoutError:
                raise TimeoutError(f"fault {self.fault.spec!r} hit {self.applied} of {n} "
                                   f"within {timeout:g}s") from None
        return self.applied

    def _notify(self) -> None:
        applied = self.applied
        for n, future in self._waiters:
            if applied >= n and not future.done():
                future.set_result(None)
        self._waiters = [(n, f) for n, f in self._waiters if not f.done()]
        if self._parent is not None:
            self._parent._notify()
