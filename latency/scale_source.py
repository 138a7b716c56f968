"""A fast venue source for :mod:`latency.scale`: the synthetic market, pre-generated, then replayed.

    python -m latency.scale_source --venues binance,okx --instruments ethbtc,btcusdt
        --period 0.006 --rounds 5000 [--seed 7] [--cache FILE]

The live simulator (:mod:`dragonfly.sim`) steps its market as it serves
(~0.1 ms of CPU per book step), so one process offers a few thousand
frames/s. This source does that work before serving: it builds the
simulator's own venue servers (:data:`dragonfly.sim.simulator.SERVERS`) on
a :class:`~dragonfly.sim.market.SyntheticMarket`, subscribes one capture
session per (venue, instrument) with the frames dragonfly's own client sends
on the venue's **diff channel** (``spec.diff.subscribe``), and steps the
market ``--rounds`` times, calling the servers' real ``publish`` after each
step: every frame a client would have got, byte for byte (in-band
snapshots, diff events, checksums, update ids) is kept per channel and round.

Then it serves with the same servers, started on loopback: connections,
upgrades, subscribe acks and errors, pings, REST (``exchangeInfo``, pairs
info) are theirs, unchanged. Only two things differ from the live simulator:

* the market never steps: one timer sends, every ``--period`` seconds, each
  subscribed channel's next pre-generated round (each channel has its own
  cursor, from its round 0 when it is first subscribed: its in-band
  snapshot, then every diff after it), so each diff stream is exactly the
  recorded one, ids continuous; a channel whose rounds run out stops (the
  frame rate drops: generate enough rounds for the window);
* a REST book snapshot (Binance ``/api/v3/depth``, Bitstamp
  ``order_book``) shows the book as it stood at the first round kept (one in
  ``STATE_EVERY``) at or after the channel's position, so it stitches onto
  the events that follow, as a live venue's snapshot does.

A channel subscribed a second time after its round 0 (a reconnect) cannot be
given a consistent in-band snapshot: it gets nothing, is counted as
``late`` and logged (the hub then shows it as a resync). Counters go to
stderr on exit (``source: ...`` JSON line).

Timestamps: venue stamps in the frames follow a virtual clock that starts
when generation starts and advances ``--period`` per round. Bitstamp's are
moved to the serving clock when the source starts (:data:`RESTAMPED`, with
the replay server's own restamping code), events and REST snapshots alike:
its ``microtimestamp`` is the book's position and its age is what proves a
Bitstamp book current (a book 60 s old is withdrawn). The others' stamps
(Binance ``E``, OKX/Bybit ``ts``, Kraken level times, Coinbase
``event_time``) are served as generated, possibly minutes old: dragonfly
orders their books by update ids and sequence numbers and dates them by its
own receive time, so nothing it measures reads them.

Cost: generation is the simulator's ~0.1 ms per book step, paid once
(``--cache`` keeps it in a file for the next scenario); serving is a dict
lookup and a socket write per frame (~4 µs, see ``sim_cpu_util`` in the
scale table).
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import dataclasses
import functools
import json
import multiprocessing
import pickle
import signal
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from dragonfly.sim.inband import InbandServer, Out
from dragonfly.sim.market import SyntheticMarket
from dragonfly.sim.replay import bitstamp as bitstamp_replay
from dragonfly.sim.server import BookState, VenueServer
from dragonfly.sim.simulator import SERVERS, venue_config
from dragonfly.venues import get_venue

PROG = "python -m latency.scale_source"
#: Keep a REST book state every this many rounds (a snapshot is at most this many rounds ahead).
STATE_EVERY = 50
#: Rounds sent at most per timer wake-up when the loop falls behind.
MAX_CATCHUP = 64
#: Period the servers' own publish loops run at (they publish nothing; the source's timer does).
_IDLE_PERIOD_S = 1.0

#: What one round of one channel sends: bytes (to each session) or in-band ``Out`` s.
Sent = tuple[Any, ...]


@dataclass
class VenueCapture:
    """One venue's pre-generated traffic: per channel key, what each round sent."""

    inband: bool
    #: Channel key -> instrument.
    keys: dict[str, str] = field(default_factory=dict)
    #: Channel key -> per round, the frames sent in it (empty tuple: the book did not change).
    rounds: dict[str, list[Sent]] = field(default_factory=dict)
    #: Instrument -> [(round, book state after it)], one every STATE_EVERY rounds (REST venues).
    states: dict[str, list[tuple[int, BookState]]] = field(default_factory=dict)
    #: The virtual clock at round 0, µs since the epoch.
    clock_us: int = 0


def _serves_rest_snapshots(server: VenueServer[Any]) -> bool:
    return type(server).snapshot_key is not VenueServer.snapshot_key


def generate(venues: Sequence[str], instruments: Sequence[str], period: float, rounds: int,
             seed: int, log: Callable[[str], None] = lambda _: None, *,
             capture: Sequence[str] | None = None, start_ns: int | None = None) -> dict[str, VenueCapture]:
    """Step the synthetic market of ``venues`` ``rounds`` times; return what ``capture``'s channels sent.

    ``capture`` (default: every venue) lets processes share the work: each
    steps the whole market (so every venue quotes the same paths as in one
    process) and publishes only its venues.
    """
    clock = [time.time_ns() if start_ns is None else start_ns]
    step_ns = int(period * 1e9)

    def virtual_ns() -> int:
        return clock[0]

    market = SyntheticMarket(instruments, venues, seed, clock_ns=virtual_ns)
    captures: dict[str, VenueCapture] = {}
    # (capture, key, sink) of every capture session
    sinks: list[tuple[VenueCapture, str, list[Any]]] = []
    servers: list[VenueServer[Any]] = []
    for venue in venues if capture is None else capture:
        server = SERVERS[venue](market, venue_config(venue, period_s=period), "127.0.0.1")
        setattr(server, "record", lambda *_: None)  # noqa: B010 - last_sent is for tests, not kept here
        servers.append(server)
        inband = isinstance(server, InbandServer)
        cap = captures[venue] = VenueCapture(inband, clock_us=clock[0] // 1000)
        spec = get_venue(venue)
        assert spec.diff is not None, f"{venue} has no diff channel"
        by_session: dict[Any, list[Any]] = {}
        if inband:
            def send_out(session: Any, out: Out, by_session: dict[Any, list[Any]] = by_session) -> bool:
                by_session[session].append(out)
                return True

            setattr(server, "send_out", send_out)  # noqa: B010 - capture, instead of the socket write
        for instrument in instruments:
            session = server.open_session(server.ws_path, {})
            assert session is not None
            sink: list[Any] = []
            by_session[session] = sink
            setattr(session, "send", lambda data: True)  # noqa: B010 - acks are not kept
            setattr(session, "send_book", lambda data, sink=sink: sink.append(data) or True)  # noqa: B010
            server.attach(session)
            for payload in spec.diff.subscribe([spec.venue_symbol(instrument)]):
                server.on_message(session, payload)
            keys = [k for k in session.subs if not inband or k in server.feeds]  # type: ignore[attr-defined]
            if len(keys) != 1:
                raise RuntimeError(f"{venue} {instrument}: subscribed {list(session.subs)}, not one book")
            cap.keys[keys[0]] = instrument
            cap.rounds[keys[0]] = []
            sinks.append((cap, keys[0], sink))
    rest = {id(s): _serves_rest_snapshots(s) for s in servers}
    t0 = time.perf_counter()
    for r in range(rounds):
        clock[0] += step_ns
        market.step()
        for server in servers:
            server.publish(r)
        for cap, key, sink in sinks:
            cap.rounds[key].append(tuple(sink))
            sink.clear()
        if r % STATE_EVERY == 0 or r == rounds - 1:
            for server in servers:
                if rest[id(server)]:
                    cap = captures[server.name]
                    for instrument in instruments:
                        cap.states.setdefault(instrument, []).append((r, server.book_state(instrument)))
        if r and r % 1000 == 0:
            log(f"generated {r}/{rounds} rounds ({time.perf_counter() - t0:.0f} s)")
    return captures


def load_or_generate(cache: Path | None, venues: Sequence[str], instruments: Sequence[str],
                     period: float, rounds: int, seed: int, log: Callable[[str], None] = lambda _: None,
                     procs: int = 1) -> dict[str, VenueCapture]:
    """Return the captures from ``cache`` if it holds these parameters and enough rounds, else generate.

    ``procs`` processes share the generation, the venues dealt among them.
    """
    params = {"venues": list(venues), "instruments": list(instruments), "period": period, "seed": seed}
    if cache is not None and cache.exists():
        try:
            with cache.open("rb") as f:
                saved_params, saved_rounds, saved = pickle.load(f)  # our own file
        except (OSError, EOFError, ValueError, AttributeError, pickle.UnpicklingError) as exc:
            log(f"{cache}: not reused ({exc})")
        else:
            if saved_params == params and saved_rounds >= rounds:
                return cast(dict[str, VenueCapture], saved)
    start_ns = time.time_ns()
    groups = [list(venues[i::procs]) for i in range(min(procs, len(venues)))]
    if len(groups) == 1:
        captures = generate(venues, instruments, period, rounds, seed, log, start_ns=start_ns)
    else:
        with ProcessPoolExecutor(len(groups), mp_context=multiprocessing.get_context("fork")) as pool:
            parts = pool.map(functools.partial(_generate_part, venues, instruments, period, rounds, seed,
                                               start_ns), groups)
            merged: dict[str, VenueCapture] = {}
            for part in parts:
                merged.update(part)
        captures = {v: merged[v] for v in venues}
    if cache is not None:
        with cache.open("wb") as f:
            pickle.dump((params, rounds, captures), f, protocol=pickle.HIGHEST_PROTOCOL)
    return captures


def _generate_part(venues: Sequence[str], instruments: Sequence[str], period: float, rounds: int,
                   seed: int, start_ns: int, capture: Sequence[str]) -> dict[str, VenueCapture]:
    def log(text: str) -> None:
        print(f"source[{','.join(capture)}]: {text}", file=sys.stderr, flush=True)

    return generate(venues, instruments, period, rounds, seed, log, capture=capture, start_ns=start_ns)


def _restamp_bitstamp(data: bytes, shift_us: int) -> bytes:
    """Move a Bitstamp event's ``microtimestamp`` (and ``timestamp``) ``shift_us`` on."""
    match = bitstamp_replay._MICROS.search(data)
    if match is None:
        return data
    micros = int(match.group(1))
    data = bitstamp_replay._add(bitstamp_replay._MICROS, data, shift_us)
    return bitstamp_replay._add(bitstamp_replay._SECONDS, data,
                                (micros + shift_us) // 1_000_000 - micros // 1_000_000)


#: Venues whose client dates a book by the venue's stamps (Bitstamp's ``microtimestamp`` is its
#: position, and its age proves the book current): their stamps are moved to the serving clock.
RESTAMPED: dict[str, Callable[[bytes, int], bytes]] = {"bitstamp": _restamp_bitstamp}


class ReplayedVenues:
    """The venue servers, started on loopback, sending pre-generated rounds on one timer."""

    def __init__(self, captures: dict[str, VenueCapture], instruments: Sequence[str], period: float,
                 seed: int, host: str = "127.0.0.1") -> None:
        """Build (do not start) one server per captured venue on an unstepped market."""
        self.captures = captures
        self.period = period
        self.market = SyntheticMarket(instruments, list(captures), seed)
        self.servers: dict[str, VenueServer[Any]] = {}
        #: (venue, key) -> rounds sent so far on that channel.
        self.cursor: dict[tuple[str, str], int] = {}
        self.frames_sent = 0
        self.rounds = 0
        self.late = 0
        self.exhausted: set[tuple[str, str]] = set()
        #: µs added to the stamps of a venue that dates its books by them (set at start).
        self.shift_us = 0
        #: Venue -> channel key -> the rounds served (the captures', restamped where needed).
        self.served: dict[str, dict[str, list[Sent]]] = {v: c.rounds for v, c in captures.items()}
        self._task: asyncio.Task[None] | None = None
        for venue, cap in captures.items():
            server = SERVERS[venue](self.market, venue_config(venue, period_s=_IDLE_PERIOD_S), host)
            setattr(server, "publish", lambda tick: None)  # noqa: B010 - rounds come from the timer
            by_instrument = {i: k for k, i in cap.keys.items()}
            if cap.states:
                def book_state(instrument: str, age_s: float = 0.0, venue: str = venue,
                               by_instrument: dict[str, str] = by_instrument) -> BookState:
                    return self.state(venue, by_instrument[instrument], instrument)

                setattr(server, "book_state", book_state)  # noqa: B010 - the book at the stream's position
            self.servers[venue] = server

    def state(self, venue: str, key: str, instrument: str) -> BookState:
        """Return the kept book state of ``instrument`` at or after its channel's position."""
        states = self.captures[venue].states[instrument]
        position = max(self.cursor.get((venue, key), 0) - 1, 0)
        i = bisect.bisect_left(states, position, key=lambda rs: rs[0])
        state = states[min(i, len(states) - 1)][1]
        if venue in RESTAMPED and self.shift_us:
            state = dataclasses.replace(state, micros=state.micros + self.shift_us)
        return state

    async def start(self) -> None:
        """Restamp the venues dated by their stamps to now; bind every server and start the timer."""
        for venue, cap in self.captures.items():
            restamp = RESTAMPED.get(venue)
            if restamp is not None:
                # Round i's stamps are now + i periods: never ahead of its sending. A copy:
                # the captures stay as generated, for another source built from them.
                self.shift_us = time.time_ns() // 1000 - cap.clock_us
                self.served[venue] = {
                    key: [tuple(restamp(data, self.shift_us) for data in sent) for sent in rounds]
                    for key, rounds in cap.rounds.items()
                }
        for server in self.servers.values():
            await server.start()
        self._task = asyncio.create_task(self._drive())

    async def stop(self) -> None:
        """Stop the timer and every server."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await asyncio.gather(*(s.stop() for s in self.servers.values()))

    def stats(self) -> dict[str, Any]:
        """Return the counters: rounds, frames sent, late subscriptions, channels run out."""
        return {"rounds": self.rounds, "frames_sent": self.frames_sent, "late": self.late,
                "exhausted": len(self.exhausted)}

    async def _drive(self) -> None:
        loop = asyncio.get_running_loop()
        period = self.period
        start: float | None = None
        while True:
            if start is None:
                if not any(s.channels for s in self.servers.values()):
                    await asyncio.sleep(0.001)
                    continue
                start = loop.time()
            due = int((loop.time() - start) / period) + 1
            for _ in range(min(due - self.rounds, MAX_CATCHUP)):
                self._round()
            await asyncio.sleep(max(0.0, start + self.rounds * period - loop.time()))

    def _round(self) -> None:
        """Send every subscribed channel its next round."""
        self.rounds += 1
        now = time.monotonic()
        cursor = self.cursor
        for venue, server in self.servers.items():
            cap = self.captures[venue]
            served = self.served[venue]
            for key, sessions in server.channels.items():
                frames = served.get(key)
                if frames is None:
                    continue
                at = (venue, key)
                i = cursor.get(at, 0)
                if i >= len(frames):
                    if at not in self.exhausted:
                        self.exhausted.add(at)
                        print(f"source: {venue} {key}: all {len(frames)} rounds sent", file=sys.stderr)
                    continue
                cursor[at] = i + 1
                sent = frames[i]
                if cap.inband:
                    feed = server.feeds.get(key)  # type: ignore[attr-defined]
                    if feed is not None and feed.waiting:
                        if i:  # joined after round 0: no snapshot to give it
                            self.late += len(feed.waiting)
                            print(f"source: {venue} {key}: subscribed again at round {i}", file=sys.stderr)
                        feed.waiting.clear()
                    for out in sent:
                        for session in list(sessions):
                            if server.send_out(session, out):  # type: ignore[attr-defined]
                                session.last_data = now
                else:
                    for data in sent:
                        for session in list(sessions):
                            session.send_book(data)
                self.frames_sent += len(sent)


async def serve(args: argparse.Namespace) -> None:
    """Generate (or load), serve, print the URLs; run until SIGTERM/SIGINT."""
    def log(text: str) -> None:
        print(f"source: {text}", file=sys.stderr, flush=True)

    t0 = time.perf_counter()
    captures = load_or_generate(args.cache, args.venues, args.instruments, args.period, args.rounds,
                                args.seed, log, args.procs)
    log(f"ready in {time.perf_counter() - t0:.1f} s: {args.rounds} rounds x "
        f"{sum(len(c.keys) for c in captures.values())} channels")
    source = ReplayedVenues(captures, args.instruments, args.period, args.seed)
    await source.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        for venue, server in source.servers.items():
            print(f"{venue:<9} ws ws://127.0.0.1:{server.port}{server.ws_path}  rest {server.rest.url}",
                  flush=True)
        print(f"instruments: {', '.join(args.instruments)}", flush=True)
        await stop.wait()
    finally:
        print(f"source: {json.dumps(source.stats())}", file=sys.stderr, flush=True)
        await source.stop()


def _csv(text: str) -> list[str]:
    return [p.strip() for p in text.split(",") if p.strip()]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the source (see the module doc)."""
    p = argparse.ArgumentParser(prog=PROG, description="Pre-generated synthetic venues, replayed fast.")
    p.add_argument("--venues", type=_csv, required=True)
    p.add_argument("--instruments", type=_csv, required=True)
    p.add_argument("--period", type=float, required=True, help="seconds between rounds")
    p.add_argument("--rounds", type=int, required=True, help="rounds to pre-generate")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--cache", type=Path, default=None, help="pickle file to reuse or write")
    p.add_argument("--procs", type=int, default=1, help="processes generating (the venues dealt among them)")
    args = p.parse_args(argv)
    runner: Any = asyncio.run
    with contextlib.suppress(ImportError):
        import uvloop

        runner = uvloop.run
    runner(serve(args))
    return 0


if __name__ == "__main__":
    # Run the imported module's main, so that the cache pickles latency.scale_source classes
    # (not __main__ ones, which no other process could load).
    from latency.scale_source import main as _main

    sys.exit(_main())
