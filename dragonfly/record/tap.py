"""A :class:`~dragonfly.core.feed.FeedTap` that writes traffic in the recording format."""

from __future__ import annotations

import time
from pathlib import Path

from dragonfly.recording import RecordingWriter


def next_paths(outdir: Path, venue: str) -> tuple[Path, Path]:
    """The next free ``VENUE.ws.N.0`` / ``VENUE.http.N.0`` pair in ``outdir``."""
    outdir.mkdir(parents=True, exist_ok=True)
    prefix = venue.upper()
    n = 1
    while (outdir / f"{prefix}.ws.{n}.0").exists() or (outdir / f"{prefix}.http.{n}.0").exists():
        n += 1
    return outdir / f"{prefix}.ws.{n}.0", outdir / f"{prefix}.http.{n}.0"


class RecordingTap:
    """Write a feed's frames (both ways) and REST snapshots to two recording files."""

    def __init__(self, ws_path: Path, http_path: Path) -> None:
        self._ws = RecordingWriter(ws_path)
        self._http = RecordingWriter(http_path)
        self.frames = 0
        self.snapshots = 0

    def opened(self, url: str) -> None:
        self._ws.opened(url, time.time())

    def sent(self, url: str, payload: bytes) -> None:
        self._ws.sent(url, time.time(), payload)

    def received(self, payload: bytes, recv_ns: int) -> None:
        self.frames += 1
        self._ws.received(recv_ns / 1e9, payload)

    def rest(self, url: str, body: bytes) -> None:
        self.snapshots += 1
        self._http.rest(url, time.time(), body)

    def close(self) -> None:
        self._ws.close()
        self._http.close()
