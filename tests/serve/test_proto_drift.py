"""The committed generated modules must match dragonfly/protos/orderbook.proto."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "gen_protos.py"


def _load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_protos", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generated_modules_are_up_to_date() -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def test_check_names_a_stale_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    gen = _load_script()
    out = tmp_path / "dragonfly" / "serve"
    shutil.copytree(gen.OUT_DIR, out)
    with (out / "orderbook_pb2.py").open("a") as stale:
        stale.write("# edited by hand\n")
    monkeypatch.setattr(gen, "ROOT", tmp_path)
    monkeypatch.setattr(gen, "OUT_DIR", out)
    assert gen.main(["--check"]) == 1
    err = capsys.readouterr().err
    assert "dragonfly/serve/orderbook_pb2.py" in err
    assert "orderbook_pb2_grpc.py" not in err
    assert "run `python scripts/gen_protos.py`" in err
    assert err.count("\n") == 1
