"""Options from the environment (flag > environment > topology file > default), and JSON logs."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from dragonfly.core.errors import ConfigError
from dragonfly.serve.config import env_name, parse_config
from dragonfly.serve.logjson import JsonFormatter


def test_precedence_is_flag_then_environment_then_file_then_default(tmp_path: Path) -> None:
    path = tmp_path / "t.toml"
    path.write_text('instruments = ["ethbtc"]\nlog_level = "warning"\n[services.s]\nport = 6000\nqueue = 8\n')
    assert parse_config(["ethbtc"], environ={}).port == 50051  # default
    assert parse_config(["--config", str(path)], environ={}).port == 6000  # file
    env = {"DRAGONFLY_PORT": "7000", "DRAGONFLY_CONFIG": str(path)}
    cfg = parse_config([], environ=env)  # the file's path itself from the environment
    assert (cfg.port, cfg.queue, cfg.log_level) == (7000, 8, "warning")  # environment over file
    assert parse_config(["--port", "8000"], environ=env).port == 8000  # flag over environment


def test_every_kind_of_option_reads_from_the_environment() -> None:
    env = {
        "DRAGONFLY_INSTRUMENTS": "ethbtc, btcusdt",
        "DRAGONFLY_VENUES": "binance,okx",
        "DRAGONFLY_SIM": "yes",
        "DRAGONFLY_CHANNEL": "binance=diff okx=diff",
        "DRAGONFLY_STALE_AFTER": "okx=30",
        "DRAGONFLY_MAX_LAG_MS": "2.5",
        "DRAGONFLY_LOG_FORMAT": "json",
        "DRAGONFLY_METRICS_PORT": "9108",
    }
    cfg = parse_config([], environ=env)
    assert cfg.instruments == ["ethbtc", "btcusdt"] and cfg.venues == ["binance", "okx"] and cfg.sim
    assert cfg.channels == {"binance": "diff", "okx": "diff"} and cfg.stale_after == {"okx": 30.0}
    assert (cfg.max_lag_ms, cfg.log_format, cfg.metrics_port) == (2.5, "json", 9108)
    # A list option adds flags after the environment's entries: the flag wins for its venue.
    cfg = parse_config(["--channel", "okx=snapshot"], environ=env)
    assert cfg.channels == {"binance": "diff", "okx": "snapshot"}
    assert env_name("max_streams_per_connection") == "DRAGONFLY_MAX_STREAMS_PER_CONNECTION"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"DRAGONFLY_PORT": "http"}, "DRAGONFLY_PORT: expected an integer, got 'http'"),
        ({"DRAGONFLY_SIM": "maybe"}, "DRAGONFLY_SIM: expected true or false (1 or 0), got 'maybe'"),
        ({"DRAGONFLY_LOG_LEVEL": "loud"}, "DRAGONFLY_LOG_LEVEL: expected one of debug, info, warning, error"),
        ({"DRAGONFLY_MAX_LAG_MS": "soon"}, "DRAGONFLY_MAX_LAG_MS: expected a number, got 'soon'"),
    ],
)
def test_a_bad_environment_value_is_one_line_naming_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(["ethbtc"], environ=env)
    assert message in str(err.value)


def test_json_lines_carry_venue_instrument_and_exception() -> None:
    formatter = JsonFormatter()
    record = logging.LogRecord("dragonfly.venue.okx", logging.WARNING, __file__, 1, "gap at %d", (7,), None)
    line = json.loads(formatter.format(record))
    assert line["level"] == "warning" and line["logger"] == "dragonfly.venue.okx"
    assert line["venue"] == "okx" and line["message"] == "gap at 7" and line["time"].endswith("Z")
    try:
        raise ValueError("boom")
    except ValueError:
        failed = logging.LogRecord("dragonfly.serve", logging.ERROR, __file__, 1, "x\ny", (), sys.exc_info())
    failed.instrument = "ethbtc"
    line = json.loads(formatter.format(failed))
    assert line["instrument"] == "ethbtc" and "ValueError: boom" in line["exception"]
    assert "\n" not in formatter.format(failed)


def test_the_server_logs_json_lines_only() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "dragonfly.serve", "ethbtc", "--sim", "--port", "0", "--log-format", "json"],
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    lines = []
    try:
        for line in proc.stderr:
            lines.append(line)
            if '"serving ethbtc merged top' in line:
                break
    finally:
        proc.terminate()
        rest, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0
    records = [json.loads(line) for line in [*lines, *(rest or "").splitlines(keepends=True)] if line.strip()]
    assert any(r["message"].startswith("serving ethbtc merged top") for r in records)
    assert {"time", "level", "logger", "message"} <= set(records[0])
