"""REST faults on the REST port, the control endpoint, and the fault command lines."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

import pytest
from faultutil import bitstamp_probe

from dragonfly.recording import RecordingWriter
from dragonfly.sim import Simulator
from dragonfly.sim.probe import http_get

DEPTH = "/api/v3/depth?symbol=ETHBTC&limit=5"

# -- REST faults ------------------------------------------------------------------------


async def test_rest_slow_is_late_on_the_rest_port_only(sim: Simulator) -> None:
    fault = sim.fault("binance", "rest-slow,delay=0.3,for=5")
    started = time.monotonic()
    on_ws = await http_get(sim.rest_url_on_ws("binance") + DEPTH)
    assert on_ws.status == 200 and time.monotonic() - started < 0.2 and fault.applied == 0
    ping = await http_get(sim.rest_url("binance") + "/api/v3/ping")
    assert ping.status == 200 and time.monotonic() - started < 0.2  # not a snapshot request
    late = await http_get(sim.rest_url("binance") + DEPTH)
    assert late.status == 200 and time.monotonic() - started >= 0.3 and fault.applied == 1
    assert len(late.json()["bids"]) == 5


@pytest.mark.parametrize(("venue", "status", "body"), [
    ("binance", 429, {"code": -1003}),
    ("binance", 418, {"code": -1003}),
    ("binance", 500, {"code": -1001}),
    ("binance", 503, {"code": -1008}),
    ("bitstamp", 429, {"status": "error", "reason": "Too Many Requests"}),
])
async def test_rest_error_answers_with_the_venue_error(sim: Simulator, venue: str, status: int,
                                                      body: dict[str, object]) -> None:
    path = DEPTH if venue == "binance" else "/api/v2/order_book/ethbtc/"
    sim.fault(venue, f"rest-error,status={status},retry_after=2")
    reply = await http_get(sim.rest_url(venue) + path)
    assert reply.status == status and reply.headers["retry-after"] == "2"
    assert body.items() <= reply.json().items()
    assert (await http_get(sim.rest_url(venue) + path)).status == 200  # count=1


async def test_rest_stale_and_future_stamps(sim: Simulator) -> None:
    rest = sim.rest_url("binance")
    then = (await http_get(rest + DEPTH)).json()["lastUpdateId"]
    micros_then = int((await http_get(sim.rest_url("bitstamp") + "/api/v2/order_book/ethbtc/"))
                      .json()["microtimestamp"])
    await asyncio.sleep(1.3)
    sim.fault("binance", "rest-stale,age=1")
    stale = (await http_get(rest + DEPTH)).json()["lastUpdateId"]
    now = (await http_get(rest + DEPTH)).json()["lastUpdateId"]
    assert then <= stale < now
    sim.fault("bitstamp", "rest-stale,age=1")
    old = await http_get(sim.rest_url("bitstamp") + "/api/v2/order_book/ethbtc/")
    assert micros_then <= int(old.json()["microtimestamp"]) <= micros_then + 600_000
    sim.pause_market()
    current = (await http_get(rest + DEPTH)).json()
    sim.fault("binance", "rest-future,ahead=1000")
    ahead = (await http_get(rest + DEPTH)).json()
    assert ahead == {**current, "lastUpdateId": current["lastUpdateId"] + 1000}


async def test_rest_headers_never_end(sim: Simulator) -> None:
    fault = sim.fault("bitstamp", "rest-headers")
    port = sim.rest_port("bitstamp")
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /api/v2/order_book/ethbtc/ HTTP/1.1\r\nHost: x\r\n\r\n")
    await asyncio.sleep(0.2)
    head = await reader.read(1 << 20)
    assert head.startswith(b"HTTP/1.1 200 OK\r\n") and b"\r\n\r\n" not in head
    assert head.count(b"X-Dragonfly-Stall:") >= 20 and fault.applied == 1
    writer.close()
    started = time.monotonic()
    assert (await http_get(sim.rest_url("bitstamp") + "/api/v2/order_book/ethbtc/")).status == 200
    assert time.monotonic() - started < 0.5


# -- the control endpoint ------------------------------------------------------------------


async def test_control_endpoint_applies_lists_and_clears(sim: Simulator) -> None:
    probe = await bitstamp_probe(sim)
    for base in (sim.rest_url_on_ws("bitstamp"), sim.rest_url("bitstamp")):
        reply = await http_get(f"{base}/dragonfly/faults?spec={quote('nan,count=2')}")
        assert reply.status == 200 and set(reply.json()) == {"kind", "id"}
        assert reply.json()["kind"] == "nan"
    listing = (await http_get(sim.rest_url("bitstamp") + "/dragonfly/faults")).json()
    assert listing["venue"] == "bitstamp" and [f["spec"] for f in listing["faults"]] == ["nan,count=2"] * 2
    bad = await http_get(sim.rest_url("bitstamp") + "/dragonfly/faults?spec=nan,cont=2")
    assert bad.status == 400 and bad.json() == {
        "error": "nan: unknown parameter 'cont' (expected count, for, side, field)"}
    assert (await http_get(sim.rest_url("bitstamp") + "/dragonfly/faults/clear")).json() == {"cleared": 2}
    assert sim.faults("bitstamp") == []
    await probe.close()


# -- command lines --------------------------------------------------------------------------


async def run_cli(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", *args,
                                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_fault_cli_applies_lists_clears_and_reports_errors(sim: Simulator) -> None:
    url = sim.ws_url("binance")
    code, out, err = await run_cli("dragonfly.sim.fault", url, "silence,for=30")
    assert code == 0 and json.loads(out)["kind"] == "silence" and err == ""
    assert [a.fault.spec for a in sim.faults("binance")] == ["silence,for=30"]
    code, out, _ = await run_cli("dragonfly.sim.fault", sim.rest_url("binance"), "--list")
    assert code == 0 and json.loads(out)["faults"][0]["kind"] == "silence"
    code, out, err = await run_cli("dragonfly.sim.fault", url, "skip,symbol")
    assert code == 1 and out == "" and err.count("\n") == 1
    assert "skip: parameter 'symbol' needs a value" in err
    code, out, _ = await run_cli("dragonfly.sim.fault", url, "--clear")
    assert code == 0 and json.loads(out) == {"cleared": 1}
    code, _, err = await run_cli("dragonfly.sim.fault", "ws://127.0.0.1:1/ws", "drop")
    assert code == 1 and err.count("\n") == 1 and "error:" in err


def start(args: list[str]) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def stop(proc: subprocess.Popen[str]) -> str:
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0 and "Traceback" not in err
    return err


def test_sim_cli_applies_faults_on_schedule(tmp_path: Path) -> None:
    script = tmp_path / "faults.txt"
    script.write_text("# rehearsal\n0.2 bitstamp nan,count=3   # soon\n\n")
    proc = start(["dragonfly.sim", "--venues", "binance,bitstamp", "--instruments", "ethbtc",
                  "--fault", "binance:refuse,for=60", "--fault", "bitstamp@30:drop",
                  "--fault-script", str(script)])
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(6)]
        assert lines[0].startswith("binance") and lines[1].startswith("bitstamp")
        applied = sorted(line.split(" applied")[0] for line in lines[4:])
        assert applied == ["fault binance refuse,for=60", "fault bitstamp nan,count=3"]
        rest = lines[0].split("rest ")[1].strip()

        async def listing() -> object:
            return (await http_get(rest + "/dragonfly/faults")).json()

        listed = asyncio.run(listing())
        assert isinstance(listed, dict) and [f["spec"] for f in listed["faults"]] == ["refuse,for=60"]
    finally:
        if proc.poll() is None:
            stop(proc)


@pytest.mark.parametrize(("args", "message"), [
    (["--fault", "binance:nan,count=x"], "--fault binance:nan,count=x: nan: count must be"),
    (["--fault", "kraken:drop"], "--fault kraken:drop: venue 'kraken' is not served"),
    (["--fault", "bitstamp:skip"], "bitstamp diff events carry no sequence numbers"),
    (["--fault", "binance@soon:drop"], "bad delay 'soon'"),
    (["--fault-script", "SCRIPT"], "SCRIPT:2: unknown fault kind 'explode'"),
])
def test_sim_cli_rejects_bad_faults_before_starting(tmp_path: Path, args: list[str], message: str) -> None:
    script = tmp_path / "faults.txt"
    script.write_text("1 binance drop\n2 binance explode\n")
    args = [a.replace("SCRIPT", str(script)) for a in args]
    done = subprocess.run([sys.executable, "-m", "dragonfly.sim", *args], capture_output=True,
                          text=True, timeout=20)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and message.replace("SCRIPT", str(script)) in done.stderr


def test_replay_cli_applies_faults_and_rejects_bad_ones(tmp_path: Path) -> None:
    url = "wss://ws.bitstamp.net/"
    with RecordingWriter(tmp_path / "BITSTAMP.ws.1.0") as writer:
        writer.opened(url, 0.5)
        writer.received(1.0, b'{"data":{"timestamp":"1","microtimestamp":"1","bids":[["1.0","2.5"]],'
                        b'"asks":[]},"channel":"diff_order_book_abcusd","event":"data"}')
    bad = subprocess.run([sys.executable, "-m", "dragonfly.sim.replay", str(tmp_path), "--fault",
                          "bitstamp:checksum"], capture_output=True, text=True, timeout=20)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1
    assert "checksum: bitstamp sends no checksum" in bad.stderr
    missing = subprocess.run([sys.executable, "-m", "dragonfly.sim.replay", str(tmp_path), "--fault",
                              "BITSTAMP.ws.9.0:drop"], capture_output=True, text=True, timeout=20)
    assert missing.returncode == 2 and "no replayed connection of 'BITSTAMP.ws.9.0'" in missing.stderr
    proc = start(["dragonfly.sim.replay", str(tmp_path), "--fault", "BITSTAMP.ws.1.0@0.1:silence"])
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first.startswith("bitstamp") and proc.stdout.readline().startswith("Ctrl-C")
        assert proc.stdout.readline().startswith("fault BITSTAMP.ws.1.0 silence applied (id ")
    finally:
        if proc.poll() is None:
            stop(proc)
