"""The recording format: raw venue traffic, one line per event (standard library only).

A directory of recordings holds one file per WebSocket connection
(``VENUE.ws.N.M``), files of REST responses (``VENUE.http.N.M``) and optional
session headers (``VENUE.0``, REST lines too). Each line is one event::

    URL <-> TS               a WebSocket connection to URL opened
    URL <- TS: PAYLOAD       the client sent PAYLOAD on that connection
    TS: PAYLOAD              the client received PAYLOAD
    URL -> TS: BODY          a REST GET of URL answered BODY
    configuration: PAYLOAD   the capturing client's subscription config (headers)

``TS`` is the capturing client's clock in unix seconds (``1633998512.0633569``).
Payloads are kept as the exact bytes captured (no decoding, no re-encoding):
checksums and byte-level replays depend on that. A payload cannot hold a line
break. Empty lines are ignored.

Reading is lenient where asked: a malformed line becomes a :class:`RecordingError`
(``BINANCE.ws.1.0:17: expected 'TIMESTAMP: PAYLOAD'``) handed to ``on_error``
and reading continues with the next line; without ``on_error`` it is raised.

    for record in read_recording(path, on_error=errors.append):
        if isinstance(record, Received):
            ...
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

#: Venues whose recordings are recognised, by file name prefix (case-insensitive).
VENUES = ("binance", "bitstamp", "kraken", "okx", "coinbase", "bybit")

_TS = re.compile(rb"^[0-9]+(?:\.[0-9]+)?$")
_FILE = re.compile(r"^([A-Za-z][A-Za-z0-9_-]*)\.(ws|http)\.([0-9]+)\.([0-9]+)$")
_HEADER = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*\.[0-9]+$")
_CONFIG = b"configuration: "


class RecordingError(Exception):
    """A recording that cannot be read: a file (``line`` None) or one line of it."""

    def __init__(self, path: str | Path, line: int | None, reason: str) -> None:
        """Describe ``reason`` at ``path:line``."""
        self.path = Path(path)
        self.line = line
        self.reason = reason
        where = self.path.name if line is not None else str(self.path)
        super().__init__(f"{where}:{line}: {reason}" if line is not None else f"{where}: {reason}")


def shared_recordings() -> Path | None:
    """The shared recordings folder: ``$DRAGONFLY_RECORDINGS``, else ``../shared/recordings``
    beside the repository (``None`` if neither exists)."""
    env = os.environ.get("DRAGONFLY_RECORDINGS")
    path = Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "recordings"
    return path if path.is_dir() else None


def received_payloads(path: str | Path) -> Iterator[bytes]:
    """The payloads the capturing client received, in file order."""
    for record in read_recording(path):
        if isinstance(record, Received):
            yield record.payload


# -- records -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Opened:
    """A WebSocket connection to ``url`` opened at ``ts``."""

    url: str
    ts: float
    line: int = field(default=0, compare=False)


@dataclass(frozen=True, slots=True)
class Sent:
    """The client sent ``payload`` on the connection to ``url``."""

    url: str
    ts: float
    payload: bytes
    line: int = field(default=0, compare=False)


@dataclass(frozen=True, slots=True)
class Received:
    """The client received ``payload``."""

    ts: float
    payload: bytes
    line: int = field(default=0, compare=False)


@dataclass(frozen=True, slots=True)
class Config:
    """The capturing client's configuration (a ``configuration: {...}`` header line)."""

    payload: bytes
    line: int = field(default=0, compare=False)


@dataclass(frozen=True, slots=True)
class Rest:
    """A REST GET of ``url`` was answered with ``body``."""

    url: str
    ts: float
    body: bytes
    line: int = field(default=0, compare=False)


Record = Opened | Sent | Received | Rest | Config
OnError = Callable[[RecordingError], None]


def _raise(error: RecordingError) -> None:
    raise error


def _ts(text: bytes) -> float | None:
    return float(text) if _TS.match(text) else None


def parse_line(line: bytes, number: int = 0, path: str | Path = "<recording>") -> Record:
    """Parse one line (without its line break); raise RecordingError if malformed."""
    if line[:1].isdigit():
        ts_text, sep, payload = line.partition(b": ")
        ts = _ts(ts_text)
        if not sep or ts is None:
            raise RecordingError(path, number, "expected 'TIMESTAMP: PAYLOAD'")
        return Received(ts, payload, number)
    if line.startswith(_CONFIG):
        return Config(line[len(_CONFIG):], number)
    url_bytes, sep, rest = line.partition(b" ")
    if not sep or not url_bytes:
        raise RecordingError(path, number, "expected 'URL <-> TIMESTAMP', 'URL <- TIMESTAMP: PAYLOAD',"
                             " 'URL -> TIMESTAMP: BODY' or 'TIMESTAMP: PAYLOAD'")
    try:
        url = url_bytes.decode("ascii")
    except UnicodeDecodeError:
        raise RecordingError(path, number, "URL is not ASCII") from None
    arrow, _, rest = rest.partition(b" ")
    if arrow == b"<->":
        ts = _ts(rest.rstrip())
        if ts is None:
            raise RecordingError(path, number, "expected 'URL <-> TIMESTAMP'")
        return Opened(url, ts, number)
    if arrow in (b"<-", b"->"):
        ts_text, sep, payload = rest.partition(b": ")
        ts = _ts(ts_text)
        if not sep or ts is None:
            shape = "URL <- TIMESTAMP: PAYLOAD" if arrow == b"<-" else "URL -> TIMESTAMP: BODY"
            raise RecordingError(path, number, f"expected '{shape}'")
        return Sent(url, ts, payload, number) if arrow == b"<-" else Rest(url, ts, payload, number)
    raise RecordingError(path, number, f"unknown direction {arrow.decode('latin-1')!r} after the URL"
                         " (expected '<->', '<-' or '->')")


def read_recording(path: str | Path, on_error: OnError | None = None) -> Iterator[Record]:
    """Open ``path`` and yield its records in file order.

    The file is opened before this returns, so an unreadable file raises
    RecordingError (naming the file) here, not at the first ``next()``. A
    malformed line is passed to ``on_error`` and skipped; with no ``on_error``
    it is raised.
    """
    file = Path(path)
    try:
        handle = file.open("rb")
    except OSError as exc:
        raise RecordingError(file, None, f"cannot read: {exc.strerror or exc}") from None
    return _records(handle, file, on_error or _raise)


def _records(handle: BinaryIO, path: Path, on_error: OnError) -> Iterator[Record]:
    with handle:
        number = 0
        try:
            for raw in handle:
                number += 1
                line = raw.rstrip(b"\r\n")
                if not line.strip():
                    continue
                try:
                    record = parse_line(line, number, path)
                except RecordingError as error:
                    on_error(error)
                    continue
                yield record
        except OSError as exc:
            raise RecordingError(path, number + 1, f"read failed: {exc.strerror or exc}") from None


# -- directories -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RecordedConnection:
    """A ``VENUE.ws.N.M`` file: one recorded WebSocket connection."""

    venue: str
    path: Path
    number: int
    part: int

    @property
    def name(self) -> str:
        """Return the file name (``BYBIT.ws.25.0``)."""
        return self.path.name

    @property
    def header(self) -> Path:
        """Return where the venue's session header (``VENUE.0``) would be."""
        return self.path.with_name(f"{self.path.name.split('.', 1)[0]}.0")


@dataclass(frozen=True, slots=True)
class RecordedRest:
    """A ``VENUE.http.N.M`` file: recorded REST responses."""

    venue: str
    path: Path
    number: int
    part: int

    @property
    def name(self) -> str:
        """Return the file name (``BINANCE.http.0.0``)."""
        return self.path.name


def discover(directory: str | Path, on_error: OnError | None = None
             ) -> list[RecordedConnection | RecordedRest]:
    """List the recorded connections and REST files in ``directory``, sorted.

    Files are matched by name (``VENUE.ws.N.M``, ``VENUE.http.N.M``; the venue
    prefix is case-insensitive). Session headers (``VENUE.0``) and unrelated
    files are skipped. A recording of an unknown venue is reported to
    ``on_error`` (raised without one) and the others are still listed. A
    missing or unreadable directory raises RecordingError.
    """
    root = Path(directory)
    if not root.is_dir():
        reason = "no such directory" if not root.exists() else "not a directory"
        raise RecordingError(root, None, reason)
    try:
        names = sorted(p.name for p in root.iterdir())
    except OSError as exc:
        raise RecordingError(root, None, f"cannot list: {exc.strerror or exc}") from None
    report = on_error or _raise
    found: list[RecordedConnection | RecordedRest] = []
    for name in names:
        match = _FILE.match(name)
        if match is None:
            continue
        venue = match.group(1).lower()
        path = root / name
        if venue not in VENUES:
            report(RecordingError(path, None, f"unknown venue {match.group(1)!r} "
                                  f"(expected one of {', '.join(v.upper() for v in VENUES)})"))
            continue
        if not path.is_file():
            continue
        kind = RecordedConnection if match.group(2) == "ws" else RecordedRest
        found.append(kind(venue, path, int(match.group(3)), int(match.group(4))))
    found.sort(key=lambda f: (VENUES.index(f.venue), isinstance(f, RecordedRest), f.number, f.part))
    return found


def is_header(name: str) -> bool:
    """Return True for a session header file name (``BINANCE.0``)."""
    return bool(_HEADER.match(name))


# -- writing ---------------------------------------------------------------------


class RecordingWriter:
    """Write records in the recording format, one line each.

    The file is created (or truncated; appended to with ``append=True``) on
    construction. Payloads are written byte for byte; one containing a line
    break cannot be represented and raises ValueError.
    """

    def __init__(self, path: str | Path, *, append: bool = False) -> None:
        """Open ``path`` for writing."""
        self.path = Path(path)
        self._out: BinaryIO = self.path.open("ab" if append else "wb")

    def opened(self, url: str, ts: float) -> None:
        """Record a connection to ``url`` opened at ``ts``."""
        self._line(b"%s <-> %s" % (_url(url), _ts_text(ts)))

    def sent(self, url: str, ts: float, payload: bytes | str) -> None:
        """Record ``payload`` sent on the connection to ``url``."""
        self._line(b"%s <- %s: %s" % (_url(url), _ts_text(ts), _payload(payload)))

    def received(self, ts: float, payload: bytes | str) -> None:
        """Record ``payload`` received."""
        self._line(b"%s: %s" % (_ts_text(ts), _payload(payload)))

    def rest(self, url: str, ts: float, body: bytes | str) -> None:
        """Record a REST GET of ``url`` answered with ``body``."""
        self._line(b"%s -> %s: %s" % (_url(url), _ts_text(ts), _payload(body)))

    def config(self, payload: bytes | str) -> None:
        """Record the capturing client's configuration (header files)."""
        self._line(_CONFIG + _payload(payload))

    def write(self, record: Record) -> None:
        """Write any record."""
        if isinstance(record, Opened):
            self.opened(record.url, record.ts)
        elif isinstance(record, Sent):
            self.sent(record.url, record.ts, record.payload)
        elif isinstance(record, Received):
            self.received(record.ts, record.payload)
        elif isinstance(record, Rest):
            self.rest(record.url, record.ts, record.body)
        else:
            self.config(record.payload)

    def flush(self) -> None:
        """Flush buffered lines to the file."""
        self._out.flush()

    def close(self) -> None:
        """Flush and close the file."""
        self._out.close()

    def __enter__(self) -> RecordingWriter:
        """Return self."""
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        """Close."""
        self.close()

    def _line(self, line: bytes) -> None:
        self._out.write(line + b"\n")


def _ts_text(ts: float) -> bytes:
    value = float(ts)
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"timestamp must be a finite non-negative number, not {ts!r}")
    text = repr(value)
    if "e" in text:  # far outside unix time; keep the line format's plain decimal
        text = f"{value:.6f}"
    return text.encode()


def _url(url: str) -> bytes:
    if not url or any(c.isspace() for c in url):
        raise ValueError(f"URL must be non-empty and hold no whitespace: {url!r}")
    return url.encode("ascii")


def _payload(payload: bytes | str) -> bytes:
    data = payload.encode() if isinstance(payload, str) else bytes(payload)
    if b"\n" in data or b"\r" in data:
        raise ValueError("a payload cannot hold a line break in the recording format")
    return data
