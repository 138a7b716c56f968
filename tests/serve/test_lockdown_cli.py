"""The lock-down as a user runs it: server and client processes, flags, SIGHUP, fd limits."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import grpc.aio
import pytest

from dragonfly.client.stream import TlsError, UnauthenticatedError, load_token, stream_summaries
from dragonfly.core.errors import ConfigError
from dragonfly.core.fanout import FanOut
from dragonfly.serve.config import parse_config
from dragonfly.serve.grpc_service import GrpcService, Limits, load_tls_key_pair
from dragonfly.sim.tls import make_self_signed
from latency.ports import free_port

ROOT = Path(__file__).resolve().parents[2]
METHOD = "/orderbook.OrderbookAggregator/BookSummary"


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Path]]:
    base = tmp_path_factory.mktemp("lockdown-cli-certs")
    return {"a": make_self_signed(base / "a"), "b": make_self_signed(base / "b", common_name="b")}


class ServerProcess:
    """``python -m dragonfly.serve ethbtc --sim`` with its log in a file (a pipe could fill and stall it)."""

    def __init__(self, process: asyncio.subprocess.Process, port: int, log_path: Path) -> None:
        self.process = process
        self.port = port
        self.log_path = log_path

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    async def wait_for(self, text: str, count: int = 1, timeout: float = 20.0) -> None:
        """Wait until ``text`` is in the log ``count`` times; fail if the server exits first."""
        async with asyncio.timeout(timeout):
            while self.log().count(text) < count:
                if self.process.returncode is not None:
                    raise AssertionError(f"server exited ({self.process.returncode}):\n{self.log()}")
                await asyncio.sleep(0.02)

    def signal(self, sig: int) -> None:
        self.process.send_signal(sig)

    async def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(10):
            return await self.process.wait()


@contextlib.asynccontextmanager
async def server_process(
    log_path: Path, *args: str, env: dict[str, str] | None = None, nofile: tuple[int, int] | None = None
) -> AsyncIterator[ServerProcess]:
    """Run the server on the simulator until it serves; kill it on the way out if still running.

    ``nofile``: the (soft, hard) RLIMIT_NOFILE it starts with, set by a small
    exec wrapper (a preexec_fn is not safe in a process running grpc threads).
    """
    port = free_port()
    command = [sys.executable, "-m", "dragonfly.serve", "ethbtc", "--sim", "--sim-period", "0.02"]
    command += ["--port", str(port), *args]
    if nofile is not None:
        wrapper = (
            "import os, resource, sys; "
            f"resource.setrlimit(resource.RLIMIT_NOFILE, {nofile!r}); "
            "os.execv(sys.executable, sys.argv[1:])"
        )
        command = [sys.executable, "-c", wrapper, *command]
    with log_path.open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            *command, cwd=ROOT, env=env, stdout=asyncio.subprocess.DEVNULL, stderr=log
        )
    server = ServerProcess(process, port, log_path)
    try:
        await server.wait_for("serving ethbtc merged top")
        yield server
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def first_update(target: str, ca_file: str | None = None, token: str | None = None) -> int:
    """Return the sequence of the first update from ``target`` (TLS with ``ca_file``)."""
    async with contextlib.aclosing(
        stream_summaries(target, timeout=5, ca_file=ca_file, token=token)
    ) as stream:
        async with asyncio.timeout(10):
            return (await anext(stream)).sequence


# --- the server process ---------------------------------------------------------------------


async def test_sighup_reloads_the_token_and_the_certificate(
    tmp_path: Path, certs: dict[str, tuple[Path, Path]]
) -> None:
    cert, key, token = tmp_path / "cert.pem", tmp_path / "key.pem", tmp_path / "token"
    shutil.copy(certs["a"][0], cert)
    shutil.copy(certs["a"][1], key)
    token.write_text("first\n")
    old_ca, new_ca = str(certs["a"][0]), str(certs["b"][0])
    files = ("--tls-cert", str(cert), "--tls-key", str(key), "--token-file", str(token))
    async with server_process(tmp_path / "server.log", *files) as server:
        assert await first_update(server.target, ca_file=old_ca, token="first") > 0

        token.write_text("second\n")
        server.signal(signal.SIGHUP)
        await server.wait_for(f"SIGHUP: new token from {token}, required on every call from now on")
        with pytest.raises(UnauthenticatedError, match="invalid bearer token"):
            await first_update(server.target, ca_file=old_ca, token="first")
        assert await first_update(server.target, ca_file=old_ca, token="second") > 0

        shutil.copy(certs["b"][0], cert)
        shutil.copy(certs["b"][1], key)
        server.signal(signal.SIGHUP)
        await server.wait_for("SIGHUP: new TLS certificate from")
        assert f"SIGHUP: token in {token} unchanged" in server.log()
        with pytest.raises(TlsError, match="certificate verify failed"):
            await first_update(server.target, ca_file=old_ca, token="second")
        assert await first_update(server.target, ca_file=new_ca, token="second") > 0

        key.write_text("not a key\n")  # files that cannot be loaded: keep serving with the old ones
        token.write_text("\n")
        server.signal(signal.SIGHUP)
        await server.wait_for("keeping the current TLS certificate")
        await server.wait_for("keeping the current token")
        assert await first_update(server.target, ca_file=new_ca, token="second") > 0
        assert await server.stop() == 0
    log = server.log()
    assert "Traceback" not in log
    errors = [line for line in log.splitlines() if " ERROR " in line]
    assert len(errors) == 2
    assert (
        f"SIGHUP: {key} holds no PEM private key; keeping the current TLS certificate"
        in errors[0] + errors[1]
    )
    assert f"SIGHUP: the token in {token} is empty; keeping the current token" in errors[0] + errors[1]


async def test_the_server_listens_on_loopback_by_default_and_survives_sighup(tmp_path: Path) -> None:
    async with server_process(tmp_path / "server.log") as server:
        assert f"on 127.0.0.1:{server.port} (plaintext, no token;" in server.log()
        server.signal(signal.SIGHUP)
        await server.wait_for("SIGHUP: nothing to reload (no --token-file, no --tls-cert)")
        assert await first_update(server.target) > 0
        assert await server.stop() == 0
    log = server.log()
    assert " WARNING " not in log
    assert "Traceback" not in log


async def test_serving_every_interface_without_tls_or_token_warns_once(tmp_path: Path) -> None:
    async with server_process(tmp_path / "server.log", "--host", "0.0.0.0") as server:
        assert await server.stop() == 0
    warnings = [line for line in server.log().splitlines() if " WARNING " in line]
    assert len(warnings) == 1
    assert (
        f"0.0.0.0:{server.port} is not a loopback address and is served without TLS and without a token"
        in warnings[0]
    )


async def test_a_token_from_the_environment(tmp_path: Path) -> None:
    env = {**os.environ, "DRAGONFLY_TOKEN": "from-env"}
    async with server_process(tmp_path / "server.log", env=env) as server:
        assert "bearer token from DRAGONFLY_TOKEN" in server.log()
        with pytest.raises(UnauthenticatedError):
            await first_update(server.target)
        assert await first_update(server.target, token="from-env") > 0
        server.signal(signal.SIGHUP)
        await server.wait_for("SIGHUP: the token comes from DRAGONFLY_TOKEN, which cannot change: kept")
        assert await server.stop() == 0


async def _open_idle_sockets(port: int, count: int) -> list[socket.socket]:
    """Connect ``count`` sockets that never send a byte (never complete a handshake)."""
    sockets = []
    for _ in range(count):
        sock = socket.socket()
        sock.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            sock.connect(("127.0.0.1", port))
        sockets.append(sock)
    await asyncio.sleep(0.2)
    return sockets


async def test_idle_sockets_at_the_fd_limit_do_not_lock_out_subscribers(tmp_path: Path) -> None:
    # Hard limit 256: the server cannot raise it. 300 sockets that never
    # handshake take every descriptor; the handshake timeout frees them.
    args = ("--handshake-timeout", "1")
    env = {**os.environ, "GRPC_VERBOSITY": "ERROR"}  # grpc's line about the limit is an error
    async with server_process(tmp_path / "server.log", *args, env=env, nofile=(256, 256)) as server:
        sockets = await _open_idle_sockets(server.port, 300)
        try:
            # The limit is really reached: grpc says so on stderr, and accepts no more.
            await server.wait_for("File descriptor limit reached", timeout=5)
            loop = asyncio.get_running_loop()
            started = loop.time()
            assert await first_update(server.target) > 0
            waited = loop.time() - started
            print(f"\nfd limit 256, 300 idle sockets: first update after {waited:.2f} s")
            assert waited < 4
        finally:
            for sock in sockets:
                sock.close()
        assert await server.stop() == 0


async def test_the_server_raises_its_open_file_limit(tmp_path: Path) -> None:
    async with server_process(tmp_path / "server.log", nofile=(256, 1024)) as server:
        assert "raised the open-file limit from 256 to 1024" in server.log()
        sockets = await _open_idle_sockets(server.port, 300)
        try:
            loop = asyncio.get_running_loop()
            started = loop.time()
            assert await first_update(server.target) > 0
            assert loop.time() - started < 1
        finally:
            for sock in sockets:
                sock.close()
        assert await server.stop() == 0
    assert "File descriptor limit reached" not in server.log()


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["--tls-cert", "{a_cert}"], {}, "error: --tls-cert and --tls-key go together: give both or neither"),
        (
            ["--tls-cert", "{a_cert}", "--tls-key", "{b_key}"],
            {},
            "error: cannot use TLS certificate {a_cert} with key {b_key}: "
            "the key does not match the certificate",
        ),
        (
            ["--tls-cert", "{a_cert}", "--tls-key", "{missing}"],
            {},
            "error: cannot read {missing}: No such file or directory",
        ),
        (
            ["--token-file", "{missing}"],
            {},
            "error: cannot read token file {missing}: No such file or directory",
        ),
        ([], {"DRAGONFLY_TOKEN": " "}, "error: the token in DRAGONFLY_TOKEN is empty"),
        (["--max-streams", "0"], {}, "error: --max-streams must be at least 1, got 0"),
        (["--write-timeout", "0"], {}, "error: --write-timeout must be > 0, got 0.0"),
    ],
)
async def test_lock_down_config_errors_are_one_line_and_exit_2(
    tmp_path: Path, certs: dict[str, tuple[Path, Path]], args: list[str], env: dict[str, str], message: str
) -> None:
    names = {"a_cert": certs["a"][0], "b_key": certs["b"][1], "missing": tmp_path / "missing.pem"}
    command = [sys.executable, "-m", "dragonfly.serve", "ethbtc", "--sim", "--port", str(free_port())]
    command += [arg.format(**names) for arg in args]
    process = await asyncio.create_subprocess_exec(
        *command,
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(30):
        _, err = await process.communicate()
    assert process.returncode == 2
    assert err.decode() == message.format(**names) + "\n"


def test_the_token_file_wins_over_the_environment(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("  from-file \n")
    cfg = parse_config(["ethbtc", "--token-file", str(token)], environ={"DRAGONFLY_TOKEN": "from-env"})
    assert cfg.token == "from-file"
    assert cfg.token_source == f"--token-file {token} (DRAGONFLY_TOKEN ignored)"
    assert "from-file" not in repr(cfg)  # secrets stay out of logs and tracebacks
    cfg = parse_config(["ethbtc"], environ={"DRAGONFLY_TOKEN": "from-env"})
    assert (cfg.token, cfg.token_source) == ("from-env", "DRAGONFLY_TOKEN")
    assert parse_config(["ethbtc"], environ={}).token is None
    with pytest.raises(ConfigError, match="printable ASCII without spaces"):
        parse_config(["ethbtc"], environ={"DRAGONFLY_TOKEN": "two words"})


def test_lock_down_options_reach_the_limits() -> None:
    cfg = parse_config(
        [
            "ethbtc",
            "--max-streams",
            "9",
            "--max-streams-per-connection",
            "2",
            "--write-timeout",
            "3",
            "--handshake-timeout",
            "4",
            "--idle-timeout",
            "5",
        ],
        environ={},
    )
    limits = cfg.limits()
    assert (limits.max_streams, limits.max_streams_per_connection) == (9, 2)
    assert (limits.write_timeout, limits.handshake_timeout, limits.idle_timeout) == (3, 4, 5)
    assert parse_config(["ethbtc"], environ={}).limits() == Limits()


# --- the client CLI -------------------------------------------------------------------------


async def client(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """Run ``python -m dragonfly.client``; return status, stdout, stderr."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "dragonfly.client",
        *args,
        cwd=ROOT,
        # The client's own default for grpc's log lines, whatever this shell says.
        env={**{k: v for k, v in os.environ.items() if k != "GRPC_VERBOSITY"}, **(env or {})},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(30):
        out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


@contextlib.asynccontextmanager
async def locked_service(
    certs: dict[str, tuple[Path, Path]], limits: Limits | None = None
) -> AsyncIterator[tuple[GrpcService, str]]:
    """Serve TLS with the ``a`` pair and the token ``t0ken``, publishing an update every 20 ms."""
    fanout: FanOut[bytes] = FanOut()
    tls = load_tls_key_pair(*(str(path) for path in certs["a"]))
    service = GrpcService(fanout, "127.0.0.1", 0, tls=tls, token="t0ken", limits=limits)
    port = await service.start()

    async def publish() -> None:
        sequence = 0
        while True:
            sequence += 1
            fanout.publish(b"\x28" + bytes([sequence % 128]))
            await asyncio.sleep(0.02)

    publishing = asyncio.create_task(publish())
    try:
        yield service, f"127.0.0.1:{port}"
    finally:
        publishing.cancel()
        await service.stop(grace=0.2)


async def test_client_cli_with_tls_and_a_token(tmp_path: Path, certs: dict[str, tuple[Path, Path]]) -> None:
    token = tmp_path / "token"
    token.write_text("t0ken\n")
    ca = str(certs["a"][0])
    async with locked_service(certs) as (_, target):
        code, out, err = await client(
            "--server", target, "--ca-file", ca, "--token-file", str(token), "--json", "--count", "2"
        )
        assert (code, err) == (0, "")
        assert len(out.splitlines()) == 2
        code, out, err = await client(
            "--server", target, "--tls", "--ca-file", ca, "--count", "1", env={"DRAGONFLY_TOKEN": "t0ken"}
        )
        assert (code, err) == (0, "")


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (
            ["--ca-file", "{ca}"],
            {},
            "server at {target} refused the stream: unauthenticated: this server "
            "requires a bearer token: send 'authorization: Bearer <token>' metadata",
        ),
        (
            ["--ca-file", "{ca}"],
            {"DRAGONFLY_TOKEN": "wrong"},
            "server at {target} refused the stream: unauthenticated: invalid bearer token",
        ),
        (
            ["--ca-file", "{other_ca}"],
            {"DRAGONFLY_TOKEN": "t0ken"},
            "TLS handshake with {target} failed: certificate verify failed: self signed certificate",
        ),
        (
            ["--ca-file", "{ca}", "--tls-server-name", "example.com"],
            {"DRAGONFLY_TOKEN": "t0ken"},
            "TLS handshake with {target} failed: "
            "the server's certificate does not name the host connected to",
        ),
    ],
)
async def test_client_cli_reports_refusals_in_one_line(
    certs: dict[str, tuple[Path, Path]], args: list[str], env: dict[str, str], message: str
) -> None:
    async with locked_service(certs) as (_, target):
        names = {"ca": certs["a"][0], "other_ca": certs["b"][0], "target": target}
        code, out, err = await client("--server", target, *(arg.format(**names) for arg in args), env=env)
    assert (code, out) == (1, "")
    assert err == f"error: {message.format(**names)}\n"  # one line: grpc's own log lines are off


async def test_client_cli_reports_a_full_server_in_one_line(certs: dict[str, tuple[Path, Path]]) -> None:
    async with locked_service(certs, Limits(max_streams=1)) as (service, target):
        credentials = grpc.ssl_channel_credentials(certs["a"][0].read_bytes())
        async with grpc.aio.secure_channel(target, credentials) as channel:
            method = channel.unary_stream(METHOD, request_serializer=None, response_deserializer=None)
            held = method(b"", metadata=(("authorization", "Bearer t0ken"),))
            await held.initial_metadata()
            code, out, err = await client(
                "--server", target, "--ca-file", str(certs["a"][0]), env={"DRAGONFLY_TOKEN": "t0ken"}
            )
            assert service.subscribers == 1
    assert (code, out) == (1, "")
    assert err == (
        f"error: server at {target} refused the stream: resource_exhausted: "
        "the server is at its limit of 1 streams; try again later\n"
    )


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["--token-file", "{missing}"], {}, "cannot read token file {missing}: No such file or directory"),
        ([], {"DRAGONFLY_TOKEN": ""}, "the token in DRAGONFLY_TOKEN is empty"),
        (["--ca-file", "{missing}"], {}, "cannot read CA file {missing}: No such file or directory"),
    ],
)
async def test_client_cli_unusable_credentials_exit_2(
    tmp_path: Path, args: list[str], env: dict[str, str], message: str
) -> None:
    names = {"missing": tmp_path / "missing"}
    code, out, err = await client(
        "--server", f"127.0.0.1:{free_port()}", *(arg.format(**names) for arg in args), env=env
    )
    assert (code, out) == (2, "")
    assert err == f"error: {message.format(**names)}\n"


def test_load_token_prefers_the_file(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("file-token\n")
    assert load_token(str(token), {"DRAGONFLY_TOKEN": "env-token"}) == "file-token"
    assert load_token(None, {"DRAGONFLY_TOKEN": " env-token "}) == "env-token"
    assert load_token(None, {}) is None
