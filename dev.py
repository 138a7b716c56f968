#!/usr/bin/env python3
"""Set up and run dragonfly from a fresh clone, with nothing but Python 3.11+.

    python3 dev.py demo [CLIENT ARGS]   server on the simulated venues + a client printing the stream
    python3 dev.py test [PYTEST ARGS]   lint, type-check and run the test suite
    python3 dev.py setup                only create .venv and install

Each command creates ``.venv`` beside this file and installs the project into
it when needed (again whenever ``pyproject.toml``, ``setup.py`` or the C speedups change).
"""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import subprocess
import sys
import time
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
PY = VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
STAMP = VENV / ".dragonfly-installed"


def setup() -> None:
    """Create the virtualenv and install the project with its test and dev extras."""
    if sys.version_info < (3, 11):  # noqa: UP036 (dev.py may run on an older system Python)
        sys.exit(f"error: dragonfly needs Python 3.11 or newer, this is {sys.version.split()[0]}")
    # Reinstall when what the install builds changes (the C speedups included).
    built = ("pyproject.toml", "setup.py", "dragonfly/_speedups.c")
    want = hashlib.sha256(b"".join((ROOT / name).read_bytes() for name in built)).hexdigest()
    if PY.exists() and STAMP.exists() and STAMP.read_text() == want:
        return
    if not PY.exists():
        print(f"creating {VENV}", file=sys.stderr)
        venv.create(VENV, with_pip=True)
    print("installing dragonfly and its dependencies into .venv (first run only)", file=sys.stderr)
    pip = [str(PY), "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "install", "--upgrade", "pip"], check=True)
    subprocess.run([*pip, "install", "-e", f"{ROOT}[dev]"], check=True, cwd=ROOT)
    STAMP.write_text(want)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return True
        time.sleep(0.1)
    return False


def demo(args: list[str]) -> int:
    """Run the server on the simulator and a client printing the merged stream."""
    port = free_port()
    server = subprocess.Popen(
        [str(PY), "-m", "dragonfly.serve", "ethbtc", "--sim", "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT,
    )
    try:
        if not wait_for_port(port, server):
            print("error: the demo server did not start (see its log above)", file=sys.stderr)
            return 1
        client = [str(PY), "-m", "dragonfly.client", "--server", f"127.0.0.1:{port}", *args]
        return subprocess.call(client, cwd=ROOT)
    except KeyboardInterrupt:
        return 0
    finally:
        if server.poll() is None:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(10)
            except subprocess.TimeoutExpired:
                server.kill()


def test(args: list[str]) -> int:
    """Lint, type-check, then run pytest; non-zero if any step fails."""
    steps = [
        ("ruff", [str(PY), "-m", "ruff", "check", "."]),
        ("mypy", [str(PY), "-m", "mypy", "dragonfly", "latency"]),
        ("pytest", [str(PY), "-m", "pytest", *args]),
    ]
    failed = []
    for name, cmd in steps:
        print(f"== {name}", flush=True)
        if subprocess.call(cmd, cwd=ROOT) != 0:
            failed.append(name)
    if failed:
        print(f"FAILED: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


def main() -> int:
    if len(sys.argv) < 2 or sys.argv[1] not in ("demo", "test", "setup"):
        print(__doc__, file=sys.stderr)
        return 2
    command, rest = sys.argv[1], sys.argv[2:]
    setup()
    if command == "demo":
        return demo(rest)
    if command == "test":
        return test(rest)
    return 0


if __name__ == "__main__":
    sys.exit(main())
