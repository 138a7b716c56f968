"""Faults from the command line: ``--fault VENUE[@SECONDS]:SPEC`` and ``--fault-script FILE``.

Both CLIs (the simulator's and the replay server's) read every planned fault
before anything starts, so a bad spec is one error line and exit status 2,
then apply each one SECONDS after the servers listen, printing a line when it
does. A script has one fault per line, ``SECONDS VENUE SPEC``; ``#`` starts a
comment.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from dragonfly.sim.faults.active import ActiveFault
from dragonfly.sim.faults.spec import KINDS, Fault, parse_fault


@dataclass(frozen=True)
class Planned:
    """A fault to apply to ``venue`` ``at_s`` seconds after start."""

    at_s: float
    venue: str
    fault: Fault


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"bad delay {text!r}: expected seconds >= 0")
    return value


def parse_option(text: str) -> Planned:
    """Parse ``VENUE[@SECONDS]:SPEC``; ValueError naming what is wrong."""
    target, sep, spec = text.partition(":")
    if not sep or not target.strip():
        raise ValueError("expected VENUE[@SECONDS]:SPEC, e.g. binance@5:silence,for=10")
    venue, at, delay = target.partition("@")
    return Planned(_seconds(delay) if at else 0.0, venue.strip(), parse_fault(spec))


def read_script(path: Path) -> list[Planned]:
    """Read a fault script; ValueError ``FILE:LINE: reason`` for the first bad line."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise ValueError(f"{path}: {exc.strerror or exc}") from None
    plan = []
    for number, line in enumerate(text.splitlines(), start=1):
        content = line.partition("#")[0].strip()
        if not content:
            continue
        fields = content.split(None, 2)
        try:
            if len(fields) != 3:
                raise ValueError("expected SECONDS VENUE SPEC")
            plan.append(Planned(_seconds(fields[0]), fields[1], parse_fault(fields[2])))
        except ValueError as exc:
            raise ValueError(f"{path}:{number}: {exc}") from None
    return plan


def kinds_help() -> str:
    """Return the kinds, one a line, for a ``--help`` epilog."""
    width = max(map(len, KINDS))
    lines = [f"  {name:<{width}}  {summary}" for name, summary in KINDS.items()]
    return "fault kinds (KIND[,key=value]...; count=N or for=S; see docs/faults.md):\n" + "\n".join(lines)


def add_fault_args(parser: argparse.ArgumentParser) -> None:
    """Add ``--fault`` and ``--fault-script``; list the kinds in the epilog."""
    parser.add_argument("--fault", action="append", default=[], metavar="VENUE[@SECONDS]:SPEC",
                        help="apply a fault SECONDS (default 0) after start; repeatable")
    parser.add_argument("--fault-script", type=Path, default=None, metavar="FILE",
                        help="faults to apply, one a line: SECONDS VENUE SPEC (# comments)")
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = kinds_help()


def read_plan(parser: argparse.ArgumentParser, args: argparse.Namespace,
              check: Callable[[str, Fault], None]) -> list[Planned]:
    """Return every planned fault, or report the first bad one on one line (exit 2).

    ``check(venue, fault)`` raises ValueError for a venue not served or a fault
    it cannot show.
    """
    plan: list[Planned] = []
    for option in args.fault:
        try:
            planned = parse_option(option)
            check(planned.venue, planned.fault)
        except ValueError as exc:
            parser.error(f"--fault {option}: {exc}")
        plan.append(planned)
    if args.fault_script is not None:
        try:
            scripted = read_script(args.fault_script)
        except ValueError as exc:
            parser.error(f"--fault-script: {exc}")
        for planned in scripted:
            try:
                check(planned.venue, planned.fault)
            except ValueError as exc:
                parser.error(f"--fault-script: {args.fault_script}: {exc}")
        plan += scripted
    return plan


def schedule(plan: Iterable[Planned], apply: Callable[[str, Fault], ActiveFault]
             ) -> list[asyncio.TimerHandle]:
    """Apply each planned fault at its time (from now); print a line as each is applied."""
    loop = asyncio.get_running_loop()

    def fire(planned: Planned) -> None:
        try:
            active = apply(planned.venue, planned.fault)
        except ValueError as exc:
            print(f"fault {planned.venue} {planned.fault.spec}: error: {exc}", file=sys.stderr,
                  flush=True)
            return
        print(f"fault {planned.venue} {planned.fault.spec} applied (id {active.id})", flush=True)

    return [loop.call_later(p.at_s, fire, p) for p in plan]
