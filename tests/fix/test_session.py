"""The FIX session layer over real TCP: both roles, every rule of the module docstring."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from dragonfly.fix.codec import FieldError, FixMessage, encode, sending_time
from dragonfly.fix.session import FixSession, SessionConfig

from .fixclient import FixClient


@dataclass
class Recorder:
    """A handler that records what the session reports and echoes application messages."""

    logons: list[FixSession] = field(default_factory=list)
    messages: list[FixMessage] = field(default_factory=list)
    closes: list[str] = field(default_factory=list)
    writable: int = 0

    def on_logon(self, session: FixSession) -> None:
        self.logons.append(session)

    def on_message(self, session: FixSession, msg: FixMessage) -> None:
        if msg.msg_type == b"ZZ":
            raise FieldError(55, 5, "bad symbol")
        self.messages.append(msg)
        session.send(b"U1", [(58, "echo " + (msg.get_str(58) or ""))])

    def on_writable(self, session: FixSession) -> None:
        self.writable += 1

    def on_close(self, session: FixSession, reason: str) -> None:
        self.closes.append(reason)


@dataclass
class Acceptor:
    port: int
    handler: Recorder
    server: asyncio.Server


async def _serve(config: SessionConfig) -> Acceptor:
    handler = Recorder()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: FixSession(config, handler, "acceptor"), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return Acceptor(port, handler, server)


@pytest.fixture
async def acceptor() -> AsyncIterator[Acceptor]:
    acc = await _serve(SessionConfig(heartbeat_min_s=1, logon_timeout_s=1.0))
    yield acc
    acc.server.close()
    await acc.server.wait_closed()


async def _logged_on(acc: Acceptor, heartbeat: int = 30) -> FixClient:
    client = await FixClient.connect(acc.port)
    reply = await client.logon(heartbeat)
    assert (
        reply.get(108) == str(heartbeat).encode()
        and reply.get(49) == b"DRAGONFLY"
        and reply.get(56) == b"CLIENT"
    )
    assert reply.seq_num == 1
    return client


async def _wait(predicate: object, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():  # type: ignore[operator]
            await asyncio.sleep(0.01)


async def test_logon_test_request_application_and_logout(acceptor: Acceptor) -> None:
    client = await _logged_on(acceptor)
    await client.send("1", [(112, "ping-1")])
    hb = await client.expect("0")
    assert hb.get(112) == b"ping-1" and hb.seq_num == 2
    await client.send("U1", [(58, "hi")])
    echo = await client.expect("U1")
    assert echo.get(58) == b"echo hi" and echo.seq_num == 3
    await client.send("5")
    bye = await client.expect("5")
    assert bye.seq_num == 4
    assert await client.expect_closed() == []
    await _wait(lambda: acceptor.handler.closes)
    assert "peer logged out" in acceptor.handler.closes[0]
    assert len(acceptor.handler.logons) == 1


async def test_heartbeats_test_request_on_silence_and_a_dead_peer_ends(acceptor: Acceptor) -> None:
    client = await _logged_on(acceptor, heartbeat=1)
    assert (await client.recv(3)).msg_type == b"0"  # type: ignore[union-attr]
    # Stay silent: after 1.2 s a TestRequest, after 1.2 s more a Logout and the end.
    test_req = await client.expect("1", timeout=4)
    assert test_req.get(112) is not None
    rest = await client.expect_closed(timeout=4)
    assert rest[-1].msg_type == b"5" and b"TestRequest" in (rest[-1].get(58) or b"")
    await _wait(lambda: acceptor.handler.closes)


async def test_answering_the_test_request_keeps_the_session(acceptor: Acceptor) -> None:
    client = await _logged_on(acceptor, heartbeat=1)
    test_req = await client.expect("1", timeout=4)
    await client.send("0", [(112, test_req.get(112) or b"")])
    for _ in range(3):
        await client.send("0")
        msg = await client.recv(1.5)
        assert msg is not None and msg.msg_type in (b"0", b"1")
    assert not acceptor.handler.closes
    await client.close()


async def test_sequence_too_low_ends_the_session_with_the_reason(acceptor: Acceptor) -> None:
    client = await _logged_on(acceptor)
    await client.send("0", seq=1)
    rest = await client.expect_closed()
    assert rest[-1].msg_type == b"5"
    assert rest[-1].get(58) == b"MsgSeqNum too low, expecting 2 but received 1"


async def test_sequence_too_low_with_poss_dup_is_ignored(acceptor: Acceptor) -> None:
    client = await _logged_on(acceptor)
    await client.send("U1", [(43, "Y"), (58, "dup")], seq=1)
    await client.send("U1", [(58, "real")])
    echo = await client.expect("U1")
    assert echo.get(58) == b"echo real"


async def test_sequence_too_high_sends_one_resend_request_and_holds_messages(acceptor: Acceptor) -> None:
    client = await _logged_on(acceptor)
    await client.send("U1", [(58, "four")], seq=4)
    await client.send("U1", [(58, "five")], seq=5)
    resend = await client.expect("2")
    assert resend.get(7) == b"2" and resend.get(16) == b"0"
    # Fill the gap 2..3 with a gap fill, then the held 4 and 5 are processed in order.
    await client.send("4", [(43, "Y"), (123, "Y"), (36, 4)], seq=2)
    first = await client.expect("U1")
    second = await client.expect("U1")
    assert (first.get(58), second.get(58)) == (b"echo four", b"echo five")
    client.seq = 6
    await client.send("U1", [(58, "six")])
    assert (await client.expect("U1")).get(58) == b"echo six"


async def test_resend_request_is_answered_with_a_gap_fill(acceptor: Acceptor) -> None:
    client = await _logged_on(acceptor)
    await client.send("U1", [(58, "a")])
    await client.expect("U1")  # our seq 2
    await client.send("2", [(7, 1), (16, 0)])
    fill = await client.expect("4")
    assert fill.seq_num == 1 and fill.get(123) == b"Y" and fill.get(43) == b"Y" and fill.get(36) == b"3"
    # The gap fill used no new number: the next message is 3.
    await client.send("1", [(112, "t")])
    assert (await client.expect("0")).seq_num == 3
    await client.send("2", [(7, 99), (16, 0)])
    reject = await client.expect("3")
    assert reject.get(373) == b"5" and reject.get(371) == b"7"


async def test_sequence_reset_moves_the_expected_number(acceptor: Acceptor) -> None:
    client = await _logged_on(acceptor)
    await client.send("4", [(36, 10)], seq=2)
    client.seq = 10
    await client.send("U1", [(58, "ten")])
    assert (await client.expect("U1")).get(58) == b"echo ten"


@pytest.mark.parametrize(
    ("mutate", "reason", "tag"),
    [
        (lambda c: c.build("1"), b"1", b"112"),  # TestRequest without TestReqID
        (lambda c: c.build("2", [(7, "x"), (16, 0)]), b"6", b"7"),  # not a number
        (lambda c: c.build("ZZ"), b"5", b"55"),  # the handler's FieldError
    ],
)
async def test_malformed_messages_get_a_reject_and_use_their_number(
    acceptor: Acceptor, mutate: object, reason: bytes, tag: bytes
) -> None:
    client = await _logged_on(acceptor)
    await client.send_raw(mutate(client))  # type: ignore[operator]
    reject = await client.expect("3")
    assert reject.get(45) == b"2" and reject.get(373) == reason and reject.get(371) == tag and reject.get(58)
    await client.send("1", [(112, "after")])  # the number was used: no resend asked
    assert (await client.expect("0")).get(112) == b"after"


async def test_missing_header_tag_gets_a_reject(acceptor: Acceptor) -> None:
    client = await _logged_on(acceptor)
    await client.send_raw(encode("0", [(49, "CLIENT"), (56, "DRAGONFLY"), (34, 2)]))
    reject = await client.expect("3")
    assert reject.get(373) == b"1" and reject.get(371) == b"52"


async def test_garbled_messages_get_a_reject_and_use_no_number(acceptor: Acceptor) -> None:
    client = await _logged_on(acceptor)
    good = client.build("1", [(112, "x")])
    bad_checksum = good[:-4] + (b"000" if good[-4:-1] != b"000" else b"001") + b"\x01"
    await client.send_raw(bad_checksum)
    reject = await client.expect("3")
    assert reject.get(373) == b"99" and b"CheckSum" in (reject.get(58) or b"") and reject.get(45) == b"2"
    # A wrong BodyLength: the same, and the session goes on.
    msg = client.build("1", [(112, "y")], seq=2)
    length_at = msg.index(b"9=") + 2
    end = msg.index(b"\x01", length_at)
    await client.send_raw(msg[:length_at] + b"%d" % (int(msg[length_at:end]) + 3) + msg[end:])
    reject = await client.expect("3")
    assert b"BodyLength" in (reject.get(58) or b"")
    # Seq 2 was never processed: sending 3 asks for it again.
    await client.send("1", [(112, "z")], seq=3)
    resend = await client.expect("2")
    assert resend.get(7) == b"2"


async def test_unframeable_bytes_end_the_session_with_a_logout(acceptor: Acceptor) -> None:
    client = await _logged_on(acceptor)
    await client.send_raw(b"this is not FIX\r\n")
    rest = await client.expect_closed()
    assert rest[-1].msg_type == b"5" and b"8=FIX.4.4" in (rest[-1].get(58) or b"")
    # The acceptor still serves others.
    other = await _logged_on(acceptor)
    await other.close()


async def test_oversized_message_ends_the_session() -> None:
    acc = await _serve(SessionConfig(max_message=4096))
    try:
        client = await _logged_on(acc)
        await client.send_raw(client.build("U1", [(58, "x" * 10000)]))
        rest = await client.expect_closed()
        assert b"limit" in (rest[-1].get(58) or b"")
    finally:
        acc.server.close()


@pytest.mark.parametrize(
    ("logon", "text"),
    [
        (lambda c: c.build("0"), b"first message must be Logon"),
        (lambda c: c.build("A", [(98, 0), (108, 0)]), b"HeartBtInt 0 outside"),
        (lambda c: c.build("A", [(98, 0), (108, 1000)]), b"HeartBtInt 1000 outside"),
        (lambda c: c.build("A", [(98, 1), (108, 30)]), b"EncryptMethod"),
        (lambda c: c.build("A", [(98, 0)]), b"HeartBtInt (108) missing"),
        (
            lambda c: encode(
                "A", [(49, "CLIENT"), (56, "OTHER"), (34, 1), (52, sending_time()), (98, 0), (108, 30)]
            ),
            b"TargetCompID OTHER",
        ),
        (lambda c: b"8=FIX.4.2\x019=5\x0135=A\x0110=000\x01", b"8=FIX.4.4"),
        (lambda c: b"garbage\x01\x01", b"8=FIX.4.4"),
    ],
)
async def test_failed_logon_is_a_logout_with_the_reason_then_close(
    acceptor: Acceptor, logon: object, text: bytes
) -> None:
    client = await FixClient.connect(acceptor.port)
    await client.send_raw(logon(client))  # type: ignore[operator]
    rest = await client.expect_closed()
    assert [m.msg_type for m in rest] == [b"5"]
    assert text in (rest[0].get(58) or b""), rest[0]
    assert not acceptor.handler.logons


async def test_no_logon_in_time_closes(acceptor: Acceptor) -> None:
    client = await FixClient.connect(acceptor.port)
    rest = await client.expect_closed(timeout=3)
    assert b"no Logon" in (rest[-1].get(58) or b"")


async def test_comp_ids_and_credentials_are_checked() -> None:
    acc = await _serve(
        SessionConfig(sender_comp_id="GW", accept_comp_ids=frozenset({"DESK"}), username="u", password="p")
    )
    try:
        wrong_id = await FixClient.connect(acc.port, sender="OTHER", target="GW")
        await wrong_id.send("A", [(98, 0), (108, 30), (553, "u"), (554, "p")])
        assert b"SenderCompID OTHER" in ((await wrong_id.expect_closed())[0].get(58) or b"")
        wrong_pw = await FixClient.connect(acc.port, sender="DESK", target="GW")
        await wrong_pw.send("A", [(98, 0), (108, 30), (553, "u"), (554, "x")])
        assert b"Password" in ((await wrong_pw.expect_closed())[0].get(58) or b"")
        good = await FixClient.connect(acc.port, sender="DESK", target="GW")
        reply = await good.logon(30, [(553, "u"), (554, "p")])
        assert reply.get(49) == b"GW"
        # A message with another CompID after Logon: Reject then Logout.
        await good.send_raw(encode("0", [(49, "X"), (56, "GW"), (34, 2), (52, sending_time())]))
        rest = await good.expect_closed()
        assert [m.msg_type for m in rest] == [b"3", b"5"]
    finally:
        acc.server.close()


async def test_initiator_logs_on_and_both_ends_talk() -> None:
    acc = await _serve(SessionConfig(sender_comp_id="GW"))
    try:
        handler = Recorder()
        loop = asyncio.get_running_loop()
        config = SessionConfig(sender_comp_id="VENUE", target_comp_id="GW", heartbeat_s=5)
        _, session = await loop.create_connection(
            lambda: FixSession(config, handler, "initiator"), "127.0.0.1", acc.port
        )
        await _wait(lambda: handler.logons and acc.handler.logons)
        assert session.logged_on and session.heartbeat_s == 5 and session.peer_comp_id == "GW"
        session.send(b"U1", [(58, "from initiator")])
        await _wait(lambda: acc.handler.messages and handler.messages)
        assert handler.messages[0].get(58) == b"echo from initiator"
        session.logout("done")
        await _wait(lambda: handler.closes and acc.handler.closes)
        assert handler.closes[0] == "logout: done"
    finally:
        acc.server.close()


async def test_initiator_refuses_the_wrong_acceptor() -> None:
    acc = await _serve(SessionConfig(sender_comp_id="GW"))
    try:
        handler = Recorder()
        loop = asyncio.get_running_loop()
        config = SessionConfig(sender_comp_id="GW", target_comp_id="OTHER")
        await loop.create_connection(lambda: FixSession(config, handler, "initiator"), "127.0.0.1", acc.port)
        await _wait(lambda: handler.closes)
        assert not handler.logons
    finally:
        acc.server.close()


async def test_a_peer_that_does_not_read_is_cut_off_at_the_write_limit() -> None:
    config = SessionConfig(write_high=16 * 1024, write_low=4 * 1024, write_limit=64 * 1024)
    acc = await _serve(config)
    try:
        client = await _logged_on(acc)
        session = acc.handler.logons[0]
        # Send application data regardless of `writable`: the limit must still hold.
        payload = "x" * 1000
        async with asyncio.timeout(10):
            while not session.closed:
                session.send(b"U1", [(58, payload)])
                assert session.write_buffer_size <= config.write_limit + 2000
                await asyncio.sleep(0)
        assert "not reading" in (acc.handler.closes[0] if acc.handler.closes else "")
        await client.close()
    finally:
        acc.server.close()


async def test_a_logon_above_1_is_answered_with_a_reset_which_the_client_confirms(acceptor: Acceptor) -> None:
    client = await FixClient.connect(acceptor.port)
    client.seq = 5  # a client that keeps its sequence numbers across connections
    reply = await client.logon(30)
    assert reply.seq_num == 1 and reply.get(141) == b"Y"
    # The client resets and confirms with a Logon 34=1 141=Y: taken as that reset, not a second Logon.
    client.seq = 1
    await client.send("A", [(98, 0), (108, 30), (141, "Y")])
    await client.send("U1", [(58, "two")])
    echo = await client.expect("U1")
    assert echo.get(58) == b"echo two" and echo.seq_num == 2


async def test_a_reset_logon_mid_session_restarts_both_sequences(acceptor: Acceptor) -> None:
    client = await _logged_on(acceptor)
    await client.send("U1", [(58, "a")])
    assert (await client.expect("U1")).seq_num == 2
    client.seq = 1
    await client.send("A", [(98, 0), (108, 30), (141, "Y")])
    confirm = await client.expect("A")
    assert confirm.seq_num == 1 and confirm.get(141) == b"Y"
    await client.send("U1", [(58, "b")])
    echo = await client.expect("U1")
    assert echo.get(58) == b"echo b" and echo.seq_num == 2
    await client.send("A", [(98, 0), (108, 30), (141, "Y")], seq=7)
    assert (await client.expect("3")).get(371) == b"34"
