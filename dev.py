#!/usr/bin/env python3
"""Set up and run dragonfly from a fresh clone, with nothing but Python 3.11+.

    python3 dev.py demo [CLIENT ARGS]   server on the simulated venues + a client printing the stream
    python3 dev.py test [PYTEST ARGS]   lint, type-check and run the test suite
    python3 dev.py setup                only create .venv and install
    python3 dev.py sanitize [PYTEST ARGS]
                                        the C speedups built with ASan and UBSan, under the
                                        tests that drive them (or the tests ARGS name)
    python3 dev.py fuzz [--seconds S] [--seed N] [--case I]
                                        that build fuzzed against the Python twins
                                        (scripts/fuzz_speedups.py; non-zero on any finding)
    python3 dev.py interop [PYTEST ARGS]
                                        the FIX gateway against QuickFIX (tests/interop): its
                                        wheel is built once (minutes) into ~/.cache/dragonfly/wheels

Each command creates ``.venv`` beside this file and installs the project into
it when needed (again whenever ``pyproject.toml``, ``setup.py`` or the C speedups change).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import venv
from collections.abc import Iterator
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
        ("mypy", [str(PY), "-m", "mypy", "dragonfly", "latency", "scripts", "dev.py"]),
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


#: Every test that runs the C speedups: their fuzz tests against the Python twins
#: (tests/core/test_accel.py), the hot-path tests run on both twins, the FIX
#: gateway's C entry writer (tests/fix/test_book_encoder.py), and the venues'
#: decoders on the recordings.
SANITIZE_TESTS = [
    "tests/core",
    "tests/serve/test_encode.py",
    "tests/fix/test_book_encoder.py",
    "tests/venues",
    "tests/replay",
]
SANITIZE_FLAGS = "-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer -g -O1"


@contextlib.contextmanager
def sanitized_tree() -> Iterator[tuple[Path, dict[str, str]] | None]:
    """A copy of the tree with the C speedups built with ASan and UBSan, and the environment to run it.

    Yields ``None`` after saying why when that cannot be done. In the
    environment any sanitizer report aborts the process (non-zero status).
    Leak detection is off: CPython keeps its interned objects until exit, by
    design.
    """
    runtimes = []
    for lib in ("libasan.so", "libubsan.so"):
        found = subprocess.run(["gcc", f"-print-file-name={lib}"], capture_output=True, text=True)
        path = found.stdout.strip()
        if not os.path.isabs(path):
            print(f"error: gcc has no {lib} (install gcc's sanitizer runtimes)", file=sys.stderr)
            yield None
            return
        runtimes.append(path)
    with tempfile.TemporaryDirectory(prefix="dragonfly-sanitize-") as tmp:
        tree = Path(tmp) / "tree"
        junk = (".venv", ".git", "build", "results", "*.so", "__pycache__", ".*_cache", "*.egg-info")
        shutil.copytree(ROOT, tree, ignore=shutil.ignore_patterns(*junk))
        build_env = {**os.environ, "CFLAGS": SANITIZE_FLAGS, "LDFLAGS": SANITIZE_FLAGS}
        print("== build: dragonfly/_speedups.c with " + SANITIZE_FLAGS, flush=True)
        built = subprocess.run([str(PY), "setup.py", "-q", "build_ext", "--inplace"], cwd=tree,
                               env=build_env, capture_output=True, text=True)
        if built.returncode != 0 or not list((tree / "dragonfly").glob("_speedups*.so")):
            print(built.stdout + built.stderr, file=sys.stderr)
            print("error: the sanitized build failed", file=sys.stderr)
            yield None
            return
        env = {
            **os.environ,
            "PYTHONPATH": str(tree),  # ahead of the editable install: the sanitized module
            "LD_PRELOAD": " ".join(runtimes),
            "ASAN_OPTIONS": "detect_leaks=0:abort_on_error=1:strict_string_checks=1",
            "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1",
            "PYTHONMALLOC": "malloc",  # so ASan sees the objects' memory, not pymalloc's arenas
        }
        env.pop("DRAGONFLY_PURE_PYTHON", None)
        recordings = ROOT.parent / "shared" / "recordings"
        if "DRAGONFLY_RECORDINGS" not in env and recordings.is_dir():
            env["DRAGONFLY_RECORDINGS"] = str(recordings)  # the copy is not beside ../shared
        check = ("import dragonfly.accel as a, sys; m = a.speedups; "
                 f"sys.exit(0 if m is not None and m.__file__.startswith({str(tree)!r}) else 1)")
        if subprocess.call([str(PY), "-c", check], cwd=tree, env=env) != 0:
            print("error: the sanitized module does not load", file=sys.stderr)
            yield None
            return
        yield tree, env


def sanitize(args: list[str]) -> int:
    """Run the tests that drive the C speedups on an ASan and UBSan build of them."""
    setup()
    with sanitized_tree() as built:
        if built is None:
            return 2
        tree, env = built
        print("== pytest on the sanitized speedups", flush=True)
        # The tests that drive the C functions, unless ARGS name tests of their own.
        named = any((tree / arg.split("::")[0]).exists() for arg in args if not arg.startswith("-"))
        tests = [] if named else SANITIZE_TESTS
        # --capture=sys: a sanitizer's report goes to fd 2 just before it aborts; keep it visible.
        return subprocess.call([str(PY), "-m", "pytest", "-p", "no:cacheprovider", "--capture=sys",
                                *args, *tests], cwd=tree, env=env)


def fuzz(args: list[str]) -> int:
    """Run scripts/fuzz_speedups.py (ARGS: its own) on an ASan and UBSan build of the C speedups."""
    setup()
    with sanitized_tree() as built:
        if built is None:
            return 2
        tree, env = built
        progress = tree / "fuzz.case"
        given = [a.split("=", 1)[1] if "=" in a else b for a, b in zip(args, [*args[1:], ""], strict=True)
                 if a == "--seed" or a.startswith("--seed=")]
        seed = given[-1] if given else str(int(time.time() * 1000) % 10**9)
        if not given:  # chosen here, so that a crash can be replayed
            args = [*args, "--seed", seed]
        print("== scripts/fuzz_speedups.py on the sanitized speedups", flush=True)
        status = subprocess.call([str(PY), "scripts/fuzz_speedups.py", "--progress", str(progress), *args],
                                 cwd=tree, env=env)
        if status not in (0, 1, 2) and progress.exists():
            # A sanitizer (or a signal) ended it mid-case: say which case to replay.
            case = progress.read_text().strip()
            if case == "regressions":
                where, replay = "the reproducers run first", "--seconds 0"
            else:
                where, replay = f"case {case}", f"--seed {seed} --case {case}"
            print(f"fuzzing died (status {status}) in {where}: replay it with\n"
                  f"  python3 dev.py fuzz {replay}", file=sys.stderr)
        return status


#: The QuickFIX/C++ binding the interop tests drive the FIX gateway with (an sdist: built here).
QUICKFIX = "quickfix==1.16.0"
QUICKFIX_CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "dragonfly" / "wheels"


def install_quickfix() -> bool:
    """Install QUICKFIX into .venv from a wheel cached outside the repo, building it once if missing.

    The cache is keyed by the pinned version (one folder per version); pip's
    wheel tags keep builds for different Pythons apart inside it.
    """
    probe = [str(PY), "-c", f"import importlib.metadata as m, sys; sys.exit(m.version('quickfix') != "
             f"{QUICKFIX.split('==')[1]!r})"]
    if subprocess.call(probe, cwd=ROOT, stderr=subprocess.DEVNULL) == 0:
        return True
    cache = QUICKFIX_CACHE / QUICKFIX.replace("==", "-")
    pip = [str(PY), "-m", "pip", "--disable-pip-version-check", "-q"]
    local = [*pip, "install", "--no-index", "--find-links", str(cache), QUICKFIX]
    if subprocess.call(local, cwd=ROOT, stderr=subprocess.DEVNULL) == 0:
        return True
    print(f"building {QUICKFIX} into {cache} (C++, several minutes; once per version)", file=sys.stderr,
          flush=True)
    cache.mkdir(parents=True, exist_ok=True)
    if subprocess.call([*pip, "wheel", "--no-deps", "-w", str(cache), QUICKFIX], cwd=ROOT) != 0:
        print(f"error: building {QUICKFIX} failed (see above)", file=sys.stderr)
        return False
    return subprocess.call(local, cwd=ROOT) == 0


def interop(args: list[str]) -> int:
    """Install QuickFIX (see :func:`install_quickfix`), then run the tests marked ``interop``."""
    if not install_quickfix():
        return 2
    named = any((ROOT / arg.split("::")[0]).exists() for arg in args if not arg.startswith("-"))
    tests = [] if named else ["tests/interop"]
    pytest = [str(PY), "-m", "pytest", "-p", "no:cacheprovider", "-m", "interop"]
    return subprocess.call([*pytest, *args, *tests], cwd=ROOT)


def main() -> int:
    if len(sys.argv) < 2 or sys.argv[1] not in ("demo", "test", "setup", "sanitize", "fuzz", "interop"):
        print(__doc__, file=sys.stderr)
        return 2
    command, rest = sys.argv[1], sys.argv[2:]
    setup()
    if command == "demo":
        return demo(rest)
    if command == "test":
        return test(rest)
    if command == "sanitize":
        return sanitize(rest)
    if command == "fuzz":
        return fuzz(rest)
    if command == "interop":
        return interop(rest)
    return 0


if __name__ == "__main__":
    sys.exit(main())
