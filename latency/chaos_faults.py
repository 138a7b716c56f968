"""The chaos run's faults: every kind that applies to a venue's channel, drawn at random, logged.

Each venue has a deck of fault *plans*: one per kind that its channel can
show (``docs/faults.md``), shuffled, drawn in turn and reshuffled when empty,
so a long run meets every kind and the order stays random. A plan is one or
more fault specs applied at once, with parameters drawn fresh each time and
durations of a few seconds. Some kinds only act when something else happens
first, so their plan brings the trigger along:

* ``refuse``, ``stall`` and ``flap`` act on *new* connections: with a ``drop``;
* the ``rest-*`` kinds act on REST snapshot requests, which the engine makes
  on the diff channel only, when it (re)synchronises: with a fault that makes
  it resynchronise (Binance: ``skip``, a sequence gap; Bitstamp, whose diffs
  carry no sequence: a ``malformed`` diff frame).

Kinds per channel: ``zero`` changes snapshots only (the diff channel passes
it by), ``skip`` needs sequenced diffs (Binance), the ``rest-*`` kinds need
the diff channel. Sizes stay modest: ``oversized`` at most 5 MiB (the
engine's limit is 4 MiB, so some frames pass and some end the connection),
``fragments`` capped at 256 KiB-5 MiB.

Which faults can make a venue's *own* book wrong or late, so that a wrong or
stale book published under them is the venue's doing, not the server's, is
stated here too (:data:`LIES`, :data:`LOSSES`, :data:`LATE`) and applied by
:mod:`latency.chaos_report`.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Collection
from dataclasses import dataclass, field

#: Kinds whose frames carry levels that are wrong yet sound (ordered, positive,
#: uncrossed): prices 1000x off (``absurd``), an amount of 1e308 (``huge``), or a
#: snapshot stamped ahead of the stream (``rest-future``, after which the
#: stream's next changes are dropped as already in it). No check on a frame can
#: tell; the venue lied. (The other value kinds make a frame unsound, and must
#: be refused.)
LIES = frozenset({"absurd", "huge", "rest-future"})
#: Kinds that lose data on a live connection without a trace the protocol can
#: show, on channels with neither sequence numbers nor checksums (Bitstamp's
#: diffs): a ``silence`` shorter than ``stale_after`` drops diffs unseen.
LOSSES = frozenset({"silence"})
#: Kinds that deliver the venue's frames late: the book shown is as old as
#: the delay, and nothing on a Binance frame says so.
LATE = frozenset({"delay"})

KIB = 1024
MIB = 1024 * KIB


@dataclass(frozen=True)
class FaultPlan:
    """One fault to inject: its kind (for the report) and the specs applied together."""

    kind: str
    specs: tuple[str, ...]
    #: Seconds to wait for the plan to end by itself before cancelling it.
    cap_s: float = 20.0


@dataclass
class FaultEvent:
    """One injected fault, as it went.

    Times are wall ns (``time.time_ns``), comparable with the server's stamps.
    """

    phase: int
    venue: str
    channel: str
    kind: str
    specs: tuple[str, ...]
    start_ns: int
    end_ns: int = 0  #: when the last of its specs ended (0: not yet)
    applied: tuple[int, ...] = ()  #: units each spec hit (frames, connections, requests)
    cancelled: bool = False  #: still in force at its cap (or the phase end), so cancelled
    cut_short: bool = False  #: still in force when the phase ended: no recovery to measure
    error: str = ""  #: the simulator refused it (a bug of the catalogue)
    tags: frozenset[str] = field(default_factory=frozenset)  #: every kind among its specs

    @property
    def hit(self) -> bool:
        """Whether the fault did anything (its main spec hit at least one unit)."""
        return bool(self.applied) and self.applied[0] > 0


def _seconds(rng: random.Random, low: float = 1.0, high: float = 5.0) -> float:
    return round(rng.uniform(low, high), 1)


def _how_many(rng: random.Random, cheap: bool = True) -> str:
    """``count=N`` frames, or (for cheap frame faults) every frame ``for=S`` seconds."""
    if cheap and rng.random() < 0.3:
        return f"for={_seconds(rng, 0.5, 3.0)}"
    return f"count={rng.randint(1, 5)}"


Builder = Callable[[random.Random], FaultPlan]


def _connection() -> dict[str, Builder]:
    def drop(r: random.Random) -> FaultPlan:
        return FaultPlan("drop", ("drop" if r.random() < 0.7 else f"drop,for={_seconds(r, 1, 3)}",))

    def close(r: random.Random) -> FaultPlan:
        code = r.choice(["1000", "1001", "1008", "1011", "4000", "none"])
        reason = r.choice(["", ",reason=bye", ",reason=maintenance%2C%20reconnect"])
        return FaultPlan("close", (f"close,code={code}{reason if code != 'none' else ''}",))

    def refuse(r: random.Random) -> FaultPlan:
        status = r.choice([503, 429, 500, 403])
        return FaultPlan("refuse", (f"refuse,for={_seconds(r)},status={status}", "drop"))

    def stall(r: random.Random) -> FaultPlan:
        phase = r.choice(["open", "upgrade"])
        return FaultPlan("stall", (f"stall,count=1,phase={phase}", "drop"))

    def flap(r: random.Random) -> FaultPlan:
        return FaultPlan("flap", (f"flap,for={_seconds(r)},after={round(r.uniform(0.02, 0.5), 2)}", "drop"))

    def delay(r: random.Random) -> FaultPlan:
        # Mostly under the freshness limit, sometimes over it: late frames
        # carry books as old as the delay.
        ms = r.choice([r.randint(20, 500), r.randint(500, 1500), r.randint(1500, 4000)])
        return FaultPlan("delay", (f"delay,ms={ms},for={_seconds(r)}",))

    def notice(r: random.Random) -> FaultPlan:
        return FaultPlan("notice", (f"notice,grace={round(r.uniform(0.1, 3.0), 1)}",))

    return {
        "drop": drop,
        "close": close,
        "refuse": refuse,
        "stall": stall,
        "silence": lambda r: FaultPlan("silence", (f"silence,for={_seconds(r)}",)),
        "pause": lambda r: FaultPlan("pause", (f"pause,for={_seconds(r)}",)),
        "flap": flap,
        "delay": delay,
        "notice": notice,
    }


def _frames() -> dict[str, Builder]:
    def protocol(r: random.Random) -> FaultPlan:
        variant = r.choice(["masked", "opcode", "rsv", "ping", "close", "cont"])
        return FaultPlan("protocol", (f"protocol,variant={variant}",))

    def oversized(r: random.Random) -> FaultPlan:
        return FaultPlan("oversized", (f"oversized,count=1,bytes={r.choice([512 * KIB, 2 * MIB, 5 * MIB])}",))

    def fragments(r: random.Random) -> FaultPlan:
        return FaultPlan("fragments", (f"fragments,count=1,bytes={r.choice([256 * KIB, 1 * MIB, 5 * MIB])}",))

    return {
        "protocol": protocol,
        "malformed": lambda r: FaultPlan(
            "malformed", (f"malformed,after={r.randint(0, 25)},{_how_many(r)}",)
        ),
        "truncated": lambda r: FaultPlan("truncated", (f"truncated,{_how_many(r)}",)),
        "binary": lambda r: FaultPlan("binary", (f"binary,{_how_many(r)}",)),
        "oversized": oversized,
        "fragments": fragments,
        "repeat": lambda r: FaultPlan("repeat", (f"repeat,{_how_many(r)}",)),
    }


def _values(channel: str) -> dict[str, Builder]:
    def side(r: random.Random) -> str:
        return r.choice(["", ",side=bid", ",side=ask"])

    def wrong_types(r: random.Random) -> FaultPlan:
        kind = r.choice(["number", "string", "null", "object"])
        spec = f"wrong-types,as={kind},field={r.choice(['price', 'amount'])}{side(r)},{_how_many(r)}"
        return FaultPlan("wrong-types", (spec,))

    def field_fault(kind: str) -> Builder:
        def build(r: random.Random) -> FaultPlan:
            return FaultPlan(kind, (f"{kind},field={r.choice(['price', 'amount'])}{side(r)},{_how_many(r)}",))
        return build

    def absurd(r: random.Random) -> FaultPlan:
        return FaultPlan("absurd", (f"absurd,factor={r.choice(['1000', '0.001', '3'])},{_how_many(r)}",))

    builders: dict[str, Builder] = {
        "wrong-types": wrong_types,
        "nan": field_fault("nan"),
        "negative": field_fault("negative"),
        "huge": field_fault("huge"),
        "absurd": absurd,
        "crossed": lambda r: FaultPlan("crossed", (f"crossed,{_how_many(r)}",)),
    }
    if channel == "snapshot":
        builders["zero"] = lambda r: FaultPlan("zero", (f"zero{side(r)},{_how_many(r)}",))
    return builders


def _rest(venue: str) -> dict[str, Builder]:
    # The trigger that makes the engine fetch a snapshot now (module doc).
    trigger = "skip,count=1" if venue == "binance" else "malformed,count=1"

    def how_many(r: random.Random) -> str:
        return f"count={r.randint(1, 2)}" if r.random() < 0.6 else f"for={_seconds(r, 1, 4)}"

    def plan(kind: str, params: str, r: random.Random) -> FaultPlan:
        return FaultPlan(kind, (f"{kind}{params},{how_many(r)}", trigger))

    def error(r: random.Random) -> FaultPlan:
        status = r.choice([429, 418, 500, 503])
        retry = f",retry_after={r.randint(0, 3)}" if status in (429, 418) and r.random() < 0.8 else ""
        return plan("rest-error", f",status={status}{retry}", r)

    def future(r: random.Random) -> FaultPlan:
        # Binance: update ids ahead; Bitstamp: microseconds ahead.
        ahead = r.choice([1, 50, 2000]) if venue == "binance" else r.choice([1000, 150_000, 2_000_000])
        return plan("rest-future", f",ahead={ahead}", r)

    return {
        "rest-slow": lambda r: plan("rest-slow", f",delay={round(r.uniform(0.5, 4.0), 1)}", r),
        "rest-error": error,
        "rest-stale": lambda r: plan("rest-stale", f",age={round(r.uniform(0.5, 10.0), 1)}", r),
        "rest-future": future,
        "rest-headers": lambda r: plan("rest-headers", "", r),
    }


def catalogue(venue: str, channel: str) -> dict[str, Builder]:
    """Every fault kind that applies to ``venue`` on ``channel`` (``snapshot`` or ``diff``), by kind."""
    builders = {**_connection(), **_frames(), **_values(channel)}
    if channel == "diff":
        if venue == "binance":
            builders["skip"] = lambda r: FaultPlan("skip", (f"skip,count={r.randint(1, 3)}",))
        builders.update(_rest(venue))
    return builders


class FaultDeck:
    """Draw a venue's fault plans at random, every kind once per round (module doc)."""

    def __init__(self, venue: str, channel: str, rng: random.Random, kinds: Collection[str] = ()) -> None:
        """Deal the kinds that apply to ``venue`` on ``channel`` (only ``kinds`` among them, if given)."""
        self.builders = catalogue(venue, channel)
        if kinds:
            self.builders = {k: b for k, b in self.builders.items() if k in kinds}
        self.rng = rng
        self._deck: list[str] = []

    def draw(self) -> FaultPlan:
        """Return the next plan, its parameters drawn now."""
        if not self._deck:
            self._deck = sorted(self.builders)
            self.rng.shuffle(self._deck)
        return self.builders[self._deck.pop()](self.rng)
