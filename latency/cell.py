"""Run one measurement cell: a system (dragonfly or the relay) at one rate with K subscribers.

Processes: the generator runs in this (the harness) process, the server
(``python -m dragonfly.serve`` or ``python -m latency.relay``) and the
subscribers (``python -m latency.subscribers``) each in their own. The FIX
path is the same cell with the FIX gateway (``--fix-port``) or the null FIX
relay (``python -m latency.fix_relay``) as the server and FIX subscribers
(``python -m latency.fix_subscribers``). The cell
warms up, then measures a window of ``window_s`` seconds: CPU time of each
process across it, the server's peak RSS, every send time of the generator and
every message each subscriber received (analysed in :mod:`latency.stats`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pickle
import signal
import sys
import time
from array import array
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from dragonfly.client.stream import DEFAULT_WINDOW_BYTES
from dragonfly.core.errors import ConfigError
from dragonfly.recording import RecordingError
from latency.generator import INSTRUMENT, LoadGenerator
from latency.ports import free_port
from latency.replay_source import ReplaySource, ReplaySpec
from latency.subscribers import SubscriberLog

SYSTEMS = ("dragonfly", "relay", "dragonfly-fix", "relay-fix", "relay-decode", "relay-fix-decode")
#: Each measured system's floor: the null relay of the same transport (gRPC, FIX). The
#: ``-decode`` relays are probes of the floor (:mod:`latency.relay`): the null relay that
#: decodes every frame with dragonfly's decoder, against the null relay.
FLOOR = {
    "dragonfly": "relay", "dragonfly-fix": "relay-fix",
    "relay-decode": "relay", "relay-fix-decode": "relay-fix",
}  # fmt: skip
#: The transport each system serves on.
TRANSPORT = {
    "dragonfly": "grpc", "relay": "grpc", "relay-decode": "grpc",
    "dragonfly-fix": "fix", "relay-fix": "fix", "relay-fix-decode": "fix",
}  # fmt: skip
#: The harness path (``--paths``) of each measured system: its transport, or a probe of its floor.
PATH = {
    "dragonfly": "grpc", "relay": "grpc", "dragonfly-fix": "fix", "relay-fix": "fix",
    "relay-decode": "grpc-decode", "relay-fix-decode": "fix-decode",
}  # fmt: skip


def engine(system: str) -> str:
    """``dragonfly`` or ``relay``: what ``system`` runs, whatever its transport (a probe is a relay)."""
    return "dragonfly" if system.startswith("dragonfly") else "relay"


@dataclass(frozen=True)
class CellSpec:
    """What to run."""

    system: str
    rate: float  #: offered frames per second, all venues together
    subscribers: int
    slow: int
    venues: tuple[str, ...] = ("binance", "bitstamp")
    warmup_s: float = 1.0
    window_s: float = 3.0
    #: Replay this recording instead of the synthetic market (``rate`` is then
    #: 0: the recording sets it). The window runs from release to the last
    #: recorded frame, ``window_s`` at most, with no warm-up.
    replay: ReplaySpec | None = None
    #: Each subscriber's HTTP/2 window, bytes (``None``: grpc's auto-tuned one).
    sub_window: int | None = DEFAULT_WINDOW_BYTES


@dataclass
class CellRaw:
    """What one cell measured, before analysis."""

    spec: CellSpec
    t0: int  #: window start, wall ns
    t1: int  #: window end, wall ns
    send_logs: dict[str, array[int]]
    subscribers: list[SubscriberLog]
    cpu_s: dict[str, float] = field(default_factory=dict)  #: CPU seconds in the window, by process
    peak_rss: int = 0  #: server VmHWM, bytes
    rss_samples: list[tuple[float, int]] = field(default_factory=list)
    error: str = ""


def server_command(system: str, port: int, source_args: list[str]) -> list[str]:
    """The command line of ``system``'s server process (``source_args``: instrument, endpoints).

    ``port`` is where the subscribers connect: gRPC, or FIX for a ``-fix`` system
    (dragonfly's gRPC port is then another free one, unused).
    """
    if system == "dragonfly":
        return [
            sys.executable, "-m", "dragonfly.serve", "--host", "127.0.0.1", "--port", str(port),
            "--start-timeout", "20", *source_args,
        ]
    if system == "dragonfly-fix":
        return [
            sys.executable, "-m", "dragonfly.serve", "--host", "127.0.0.1", "--port", str(free_port()),
            "--fix-port", str(port), "--start-timeout", "20", *source_args,
        ]
    if system == "relay":
        return [sys.executable, "-m", "latency.relay", "--port", str(port), *source_args]
    if system == "relay-fix":
        return [sys.executable, "-m", "latency.fix_relay", "--port", str(port), *source_args]
    if system == "relay-decode":
        return [sys.executable, "-m", "latency.relay", "--port", str(port), "--decode", *source_args]
    if system == "relay-fix-decode":
        return [sys.executable, "-m", "latency.fix_relay", "--port", str(port), "--decode", *source_args]
    raise ValueError(f"unknown system {system!r}")


def subscribers_command(spec: CellSpec, port: int, out: Path, instrument: str = INSTRUMENT) -> list[str]:
    """The command line of the subscriber process of ``spec`` (gRPC or FIX by its system).

    FIX subscribers ask for ``instrument`` by name; gRPC ones read BookSummary (the server's first).
    """
    common = [
        "--count", str(spec.subscribers), "--slow", str(spec.slow), "--out", str(out),
        "--ready", "first" if spec.replay is None else "open",
    ]  # fmt: skip
    if TRANSPORT[spec.system] == "fix":
        return [
            sys.executable, "-m", "latency.fix_subscribers", "--port", str(port), "--instrument", instrument,
            *common,
        ]  # fmt: skip
    window = "grpc" if spec.sub_window is None else str(spec.sub_window)
    return [
        sys.executable, "-m", "latency.subscribers", "--target", f"127.0.0.1:{port}", *common,
        "--window-bytes", window,
    ]  # fmt: skip


def peak_rss(pid: int) -> int:
    """The peak resident set (VmHWM) of ``pid`` in bytes, or its current RSS where unknown."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    with contextlib.suppress(psutil.Error):
        return int(psutil.Process(pid).memory_info().rss)
    return 0


def _cpu(proc: psutil.Process) -> float:
    with contextlib.suppress(psutil.Error):
        t = proc.cpu_times()
        return float(t.user + t.system)
    return 0.0


async def wait_for_text(path: Path, text: str, proc: asyncio.subprocess.Process, timeout: float) -> None:
    """Return once ``path`` holds ``text``; RuntimeError with its tail if ``proc`` ends or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and text in path.read_text(errors="replace"):
            return
        if proc.returncode is not None:
            break
        await asyncio.sleep(0.05)
    tail = path.read_text(errors="replace")[-2000:] if path.exists() else ""
    raise RuntimeError(f"server did not print {text!r} within {timeout:g} s: {tail}")


async def run_cell(spec: CellSpec, workdir: Path, *, soak_sample_s: float = 0.0) -> CellRaw:
    """Run ``spec`` and return what it measured (see module doc)."""
    workdir.mkdir(parents=True, exist_ok=True)
    where = f"{spec.replay.venue}" if spec.replay is not None else f"{int(spec.rate)}"
    tag = f"{spec.system}-{where}-{spec.subscribers}-{spec.slow}"
    gen = ReplaySource(spec.replay) if spec.replay is not None else LoadGenerator(spec.venues, spec.rate)
    raw = CellRaw(spec, 0, 0, {}, [])
    try:
        await gen.start()
    except (ConfigError, RecordingError, OSError) as exc:
        raw.error = f"{type(exc).__name__}: {exc}"
        await gen.stop()
        return raw
    port = free_port()
    args = gen.server_args(engine(spec.system))
    log_path = workdir / f"{tag}.server.log"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with open(log_path, "wb") as log_fh:
        server = await asyncio.create_subprocess_exec(
            *server_command(spec.system, port, args), stdout=log_fh, stderr=log_fh, env=env
        )
    subs: asyncio.subprocess.Process | None = None
    try:
        await wait_for_text(log_path, "serving", server, 30)
        while gen.subscribed() < len(gen.venues):
            await asyncio.sleep(0.01)
        if spec.replay is None:
            gen.go()  # a replay waits for the subscribers: its recording is short
        out = workdir / f"{tag}.subs.pickle"
        instrument = gen.instrument if isinstance(gen, ReplaySource) else INSTRUMENT
        subs = await asyncio.create_subprocess_exec(
            *subscribers_command(spec, port, out, instrument),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, env=env,
        )
        assert subs.stdout is not None and subs.stdin is not None
        line = await asyncio.wait_for(subs.stdout.readline(), 60)
        if line.strip() != b"ready":
            raise RuntimeError(f"subscribers failed to start: {line!r}")
        procs = {
            "server": psutil.Process(server.pid),
            "subscribers": psutil.Process(subs.pid),
            "harness": psutil.Process(os.getpid()),
        }
        if spec.replay is None:
            await asyncio.sleep(spec.warmup_s)
        cpu0 = {k: _cpu(p) for k, p in procs.items()}
        raw.t0 = time.time_ns()
        if isinstance(gen, ReplaySource):  # released only now: see above
            gen.go()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(gen.done.wait(), spec.window_s)
        elif soak_sample_s > 0:
            start = time.monotonic()
            while time.monotonic() - start < spec.window_s:
                raw.rss_samples.append((time.monotonic() - start, procs["server"].memory_info().rss))
                await asyncio.sleep(min(soak_sample_s, spec.window_s))
        else:
            await asyncio.sleep(spec.window_s)
        raw.t1 = time.time_ns()
        cpu1 = {k: _cpu(p) for k, p in procs.items()}
        raw.cpu_s = {k: cpu1[k] - cpu0[k] for k in procs}
        raw.peak_rss = peak_rss(server.pid)
        await asyncio.sleep(0.3)  # let in-flight updates land
        subs.stdin.write(b"stop\n")
        await subs.stdin.drain()
        line = await asyncio.wait_for(subs.stdout.readline(), 60)
        if line.strip() != b"done":
            raise RuntimeError(f"subscribers failed: {line!r}")
        with open(out, "rb") as fh:
            raw.subscribers = [SubscriberLog(**d) for d in pickle.load(fh)]
        out.unlink()
        raw.send_logs = {v: gen.send_log(v) for v in gen.venues}
    except (RuntimeError, TimeoutError, OSError) as exc:
        raw.error = f"{type(exc).__name__}: {exc}"
    finally:
        await gen.stop()
        for proc in (subs, server):
            if proc is not None and proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM)
                try:
                    await asyncio.wait_for(proc.wait(), 5)
                except TimeoutError:
                    proc.kill()
                    await proc.wait()
    return raw
