"""The peers benchmark: every venue's recorded frames reach both sides, and their final books agree.

No timing is asserted: these check what is fed and what is compared, on short
prefixes of the recordings (a few hundred frames a venue), one round each.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

from dragonfly.recording import shared_recordings
from latency import peers
from latency.peers import Books, Contender, Pass, PeerResult, VenueFrames
from latency.report import markdown, peers_rows

RECORDINGS = shared_recordings()
needs_recordings = pytest.mark.skipif(
    RECORDINGS is None, reason="../shared/recordings (or $DRAGONFLY_RECORDINGS) not found"
)
needs_cryptofeed = pytest.mark.skipif(
    peers.cryptofeed_version() is None, reason="cryptofeed not installed (pip install -e .[peers])"
)
#: Update frames of each venue the quick checks feed.
PREFIX = 300


@pytest.fixture(autouse=True)
def one_pass_a_turn(monkeypatch: pytest.MonkeyPatch) -> None:
    """A prefix is short: one pass a turn is enough to check it (the benchmark runs several)."""
    monkeypatch.setattr(peers, "ROUND_FRAMES", 1)


def _frames(venue: str) -> VenueFrames:
    assert RECORDINGS is not None
    return peers.load_venue(venue, RECORDINGS).prefix(PREFIX)


# -- what is fed -----------------------------------------------------------------


@needs_recordings
@pytest.mark.parametrize("venue", peers.VENUES)
def test_every_venue_yields_snapshots_and_updates_in_its_current_protocol(venue: str) -> None:
    assert RECORDINGS is not None
    frames = peers.load_venue(venue, RECORDINGS)
    assert frames.venue == venue and frames.problems == 0
    assert len(frames.updates) > 100 and frames.symbols
    assert (len(frames.snapshots) if not frames.rest else len(frames.rest)) == len(frames.symbols)
    assert not (frames.snapshots and frames.rest)
    first = json.loads(frames.updates[0])
    if venue == "coinbase":  # Advanced Trade, numbered as one client counts: 0, 1, 2, ...
        numbers = [json.loads(f)["sequence_num"] for f in frames.snapshots + frames.updates]
        assert numbers == list(range(len(numbers)))
        assert first["channel"] == "l2_data" and first["events"][0]["type"] == "update"
    if venue == "bybit":  # v5 topics, from the v2 captures
        assert first["topic"].startswith("orderbook.50.") and first["type"] == "delta"
    if venue == "kraken":
        assert frames.depth == 1000 and peers.channel_for(frames).truncate == 1000
    if venue == "bitstamp":  # only diffs newer than each pair's snapshot
        taken = {p: int(json.loads(b)["microtimestamp"]) for p, b in frames.rest.items()}
        for payload in frames.updates:
            msg = json.loads(payload)
            assert int(msg["data"]["microtimestamp"]) > taken[msg["channel"].rsplit("_", 1)[1]]


def test_missing_recordings_skip_with_the_reason(tmp_path: Path) -> None:
    rows, n = peers.run_peers(1, tmp_path / "absent")
    assert n == 0 and len(rows) == 1 and "recordings not found" in rows[0].note and rows[0].ok
    rows, n = peers.run_peers(1, tmp_path)  # a directory without them: one row a venue
    assert n == 0 and [r.venue for r in rows] == list(peers.VENUES)
    assert all(r.ok and r.note.endswith("skipped") for r in rows)
    with pytest.raises(peers.MissingRecordingError, match="KRAKEN"):
        peers.load_venue("kraken", tmp_path)


# -- what is compared ------------------------------------------------------------


def test_compare_names_the_first_level_that_differs() -> None:
    ours: Books = {"A": ([(2.0, 1.0), (1.0, 1.0)], [(3.0, 1.0)]), "B": ([], [])}
    assert peers.compare(ours, ours, None, "peer") == []
    changed: Books = {"A": ([(2.0, 1.0), (1.0, 5.0)], [(3.0, 1.0)]), "B": ([], [])}
    assert peers.compare(ours, changed, None, "peer") == [
        "A bids level 1: dragonfly (1.0, 1.0), peer (1.0, 5.0) (2 and 2 levels)"
    ]
    assert peers.compare(ours, changed, 1, "peer") == []  # beyond the depth compared
    longer: Books = {"A": (ours["A"][0], [(3.0, 1.0), (4.0, 1.0)]), "B": ([], [])}
    assert peers.compare(ours, longer, None, "peer") == [
        "A asks level 1: dragonfly none, peer (4.0, 1.0) (1 and 2 levels)"
    ]
    assert peers.compare(ours, {"A": ours["A"]}, None, "peer") == ["B: only in dragonfly's books"]


def _corrupted(contender: Contender) -> Contender:
    """``contender`` whose final books lose one amount: what a wrong book looks like."""

    def setup() -> Pass:
        prepared = contender.setup()

        def books() -> Books:
            out = prepared.books()
            symbol = next(s for s, (bids, _) in sorted(out.items()) if bids)
            bids, asks = out[symbol]
            out[symbol] = ([(bids[0][0], bids[0][1] + 1.0), *bids[1:]], asks)
            return out

        return Pass(prepared.run, books, prepared.check)

    return Contender("corrupt", setup)


@needs_recordings
def test_a_corrupted_book_is_reported_as_a_mismatch() -> None:
    frames = _frames("okx")
    ours = peers.dragonfly(frames)
    rows = peers.run_venue(frames, 1, [ours, _corrupted(ours)])
    assert rows[0].ok and not rows[1].ok
    assert rows[1].note.startswith("FINAL BOOKS DIFFER from dragonfly's (1 symbols): ")
    assert re.search(r"bids level 0: dragonfly \(.*\), corrupt \(.*\)", rows[1].note)
    assert peers.failures(rows) == [f"FAIL okx corrupt: {rows[1].note}"]
    table = peers_rows(rows)
    assert table[1][:3] == ["okx", str(len(frames.updates)), "corrupt"]
    assert table[1][-1].startswith("FINAL BOOKS DIFFER")


# -- both sides ------------------------------------------------------------------


@needs_recordings
@needs_cryptofeed
@pytest.mark.parametrize("venue", peers.VENUES)
def test_dragonfly_and_cryptofeed_end_with_equal_books(venue: str) -> None:
    frames = _frames(venue)
    rows = peers.run_venue(frames, 1)
    names = [r.name for r in rows]
    assert names[:2] == ["dragonfly", f"cryptofeed {peers.cryptofeed_version()}"]
    assert names[2:] == (["naive"] if venue == "binance" else [])
    assert peers.failures(rows) == []
    for row in rows[1:]:
        assert row.note.endswith(")") and "final books equal" in row.note
        assert row.ratio is not None and row.ratio[1] <= row.ratio[0] <= row.ratio[2]
    if venue in ("kraken", "okx"):  # both verify checksums
        # every update (OKX: and every snapshot) carries one; Kraken's snapshots carry none
        verified = len(frames.updates) + (len(frames.snapshots) if venue == "okx" else 0)
        assert rows[0].note == f"checksums verified: {verified}"
        assert rows[1].note.startswith("checksum_validation; ")


@needs_recordings
@needs_cryptofeed
def test_a_book_cryptofeed_left_wrong_fails_the_venue() -> None:
    frames = _frames("bybit")
    ours, theirs = peers.dragonfly(frames), peers.cryptofeed(frames)
    assert isinstance(theirs, Contender)
    rows = peers.run_venue(frames, 1, [ours, _corrupted(theirs)])
    assert not rows[1].ok and "FINAL BOOKS DIFFER" in rows[1].note


@needs_recordings
def test_without_cryptofeed_its_row_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "cryptofeed", None)  # import fails as if not installed
    rows = peers.run_venue(_frames("bybit"), 1)
    assert [r.name for r in rows] == ["dragonfly", "cryptofeed"]
    assert rows[1].ok and rows[1].note.startswith("cryptofeed not installed")


@needs_recordings
def test_the_table_and_the_report_list_every_venue(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    load = peers.load_venue
    monkeypatch.setattr(peers, "load_venue", lambda venue, directory=None: load(venue, directory).prefix(60))
    assert peers.main(["--rounds", "1"]) == 0
    out = capsys.readouterr().out
    rows = [line.split() for line in out.splitlines()]
    assert {r[0] for r in rows if r and r[2:3] == ["dragonfly"]} == set(peers.VENUES)
    assert "cryptofeed" in out and all(f"{venue}: " in out for venue in peers.VENUES)
    results = [PeerResult("dragonfly", 5.0, venue="kraken", frames=10),
               PeerResult("cryptofeed 2.4.1", 10.0, "final books equal", "kraken", 10, (2.0, 1.5, 2.5))]
    report = markdown([], results, 10, "context")
    assert "## Per-message diff processing, every venue (10 recorded update frames)" in report
    assert "| kraken | 10 | cryptofeed 2.4.1 | 10.0 | 2.00 [1.50..2.50] | final books equal |" in report


def test_the_command_refuses_an_unknown_venue(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        peers.main(["--venues", "kraken,nowhere"])
    assert exit_.value.code == 2 and "nowhere" in capsys.readouterr().err
