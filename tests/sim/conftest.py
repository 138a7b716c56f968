"""Fixtures: a fast simulator on loopback and a throwaway certificate.

Also makes the fault tests' helpers (``faultutil.py`` beside this file) importable.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from dragonfly.sim import Simulator
from dragonfly.sim.tls import make_self_signed

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

#: Publish cadence used by the tests (the live venues use 0.1 s).
PERIOD_S = 0.02


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    """Both venues, two instruments, publishing every PERIOD_S."""
    simulator = Simulator(instruments=["ethbtc", "btcusdt"], seed=7, period_s=PERIOD_S)
    await simulator.start()
    yield simulator
    await simulator.stop()


@pytest.fixture(scope="session")
def cert_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for localhost/127.0.0.1 and its key."""
    return make_self_signed(tmp_path_factory.mktemp("tls"))
