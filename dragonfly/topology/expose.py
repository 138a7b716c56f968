"""What one service exposes of a hub: the aggregators it lists as inputs.

A topology file's service names the aggregators it serves (``inputs``); the
service sees the hub through an :class:`Exposed` catalog that answers only
for those: their instruments and kinds. A request for another venue subset
of an exposed kind builds that view on the hub (it costs nothing until read).
"""

from __future__ import annotations

from collections.abc import Sequence

from dragonfly.core.errors import ConfigError, NotFoundError
from dragonfly.core.symbols import normalise_instrument
from dragonfly.core.views import KINDS
from dragonfly.topology.hub import AggregatorSource, AggregatorSpec, Hub
from dragonfly.topology.source import InstrumentInfo


class Exposed:
    """A :class:`~dragonfly.topology.source.Catalog` of the ``inputs`` of ``hub`` (empty: all)."""

    def __init__(self, hub: Hub, inputs: Sequence[str] = ()) -> None:
        declared = {s.name: s for s in hub.specs}
        for name in inputs:
            if name not in declared:
                raise ConfigError(
                    f"a service input names no aggregator: {name!r} (declared: {', '.join(declared)})"
                )
        self.hub = hub
        self.specs: tuple[AggregatorSpec, ...] = tuple(declared[n] for n in inputs) if inputs else hub.specs
        covered = {i for s in self.specs for i in (s.instruments or hub.instruments)}
        self._instruments = tuple(i for i in hub.instruments if i in covered)

    @property
    def instruments(self) -> tuple[str, ...]:
        return self._instruments

    def kinds(self, instrument: str) -> tuple[str, ...]:
        """The view kinds exposed for ``instrument``, in the usual order."""
        have = {s.kind for s in self.specs if not s.instruments or instrument in s.instruments}
        return tuple(k for k in KINDS if k in have)

    def catalog(self) -> tuple[InstrumentInfo, ...]:
        return tuple(
            info._replace(kinds=self.kinds(info.instrument))
            for info in self.hub.catalog()
            if info.instrument in self._instruments
        )

    def source(self, instrument: str, kind: str, venues: Sequence[str] = ()) -> AggregatorSource:
        try:
            name = normalise_instrument(instrument)
        except ConfigError:
            name = ""
        if name not in self._instruments:
            raise NotFoundError(
                f"unknown instrument {instrument!r}: this server serves {', '.join(self._instruments)}"
            )
        kinds = self.kinds(name)
        if kind not in kinds:
            raise ConfigError(
                f"view kind {kind!r} is not served for {name}: this server serves {', '.join(kinds)}"
            )
        if not venues:
            for spec in self.specs:
                covers = not spec.instruments or name in spec.instruments
                if spec.kind == kind and not spec.venues and covers:
                    return self.hub.declared(spec.name, name)
        return self.hub.source(name, kind, venues)
