"""The package as pip sees it: its name, version, licence, console scripts and typing marker."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from importlib.metadata import entry_points, metadata
from pathlib import Path

import pytest

import dragonfly

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
SCRIPTS = {
    "dragonfly-serve": "dragonfly.serve.__main__:main",
    "dragonfly-client": "dragonfly.client.__main__:main",
    "dragonfly-sim": "dragonfly.sim.cli:main",
    "dragonfly-replay": "dragonfly.replay.__main__:main",
    "dragonfly-record": "dragonfly.record.__main__:main",
}


def test_the_distribution_is_named_apart_from_the_unrelated_dragonfly() -> None:
    assert PROJECT["name"] == dragonfly.DISTRIBUTION == "dragonfly-marketdata"
    meta = metadata(dragonfly.DISTRIBUTION)
    assert meta["Name"] == "dragonfly-marketdata"
    assert meta["Version"] == PROJECT["version"] == dragonfly.__version__
    assert meta["License-Expression"] == "MIT"
    assert "MIT License" in (ROOT / "LICENSE").read_text()
    assert "Typing :: Typed" in PROJECT["classifiers"] and (ROOT / "dragonfly" / "py.typed").is_file()


def test_every_command_is_a_console_script_too() -> None:
    installed = {ep.name: ep.value for ep in entry_points(group="console_scripts") if ep.name in SCRIPTS}
    assert installed == SCRIPTS == PROJECT["scripts"]


@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_each_script_runs_and_says_its_version(script: str) -> None:
    path = Path(sys.executable).parent / script
    assert path.is_file(), f"{script} is not installed beside {sys.executable}"
    done = subprocess.run([str(path), "--version"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith(dragonfly.__version__)


def test_the_protos_ship_in_the_package() -> None:
    from importlib.resources import files

    for name in ("orderbook.proto", "dragonfly_v1.proto"):
        text = files("dragonfly").joinpath("protos", name).read_text()
        assert "syntax = \"proto3\"" in text


def test_the_command_line_reference_is_current() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_cli_docs.py"), "--check"], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
