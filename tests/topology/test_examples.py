"""The example bot runs as a user runs it: against the simulator, in its own process."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

BOT = Path(__file__).resolve().parents[2] / "examples" / "bot.py"


def test_the_example_bot_reacts_to_the_spread_and_the_cost_of_liquidating() -> None:
    done = subprocess.run(
        [sys.executable, str(BOT), "--seconds", "4", "--quantity", "25"],
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    fills = [ln for ln in lines if " sell 25: avg " in ln]
    assert fills, done.stdout
    assert all("best bid" in ln and "best ask" in ln for ln in fills)
    summary = re.fullmatch(
        r"done: (\d+) BBO updates \((\d+) crossed across venues\), (\d+) liquidity lines", lines[-1]
    )
    assert summary is not None, lines[-1]
    assert int(summary[1]) > 0 and int(summary[3]) == len(fills)
