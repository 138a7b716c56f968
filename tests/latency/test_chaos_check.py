"""The chaos run's parts without a server: the truth checker, the fault catalogue, the classification."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from dragonfly.serve import orderbook_pb2
from dragonfly.sim import SyntheticMarket
from dragonfly.sim.faults import parse_fault
from dragonfly.sim.truth import TruthRecord
from latency.__main__ import build_parser, chaos_spec
from latency.chaos import ChaosSpec, PhaseResult
from latency.chaos_check import MERGE, TruthChecker, reference_merge
from latency.chaos_faults import FaultDeck, FaultEvent, catalogue
from latency.chaos_report import analyse, headline, markdown

DEPTH = 5
STALE_NS = 2_000_000_000
STEP_NS = 100_000_000
LIVE = orderbook_pb2.VENUE_STATUS_LIVE
SEQS = {"binance": lambda b: b.update_id, "bitstamp": lambda b: b.micros}


class Market:
    """A synthetic market on a fake clock, its truth recorded: 0.1 s a step."""

    def __init__(self, steps: int = 50) -> None:
        self.now = STEP_NS
        self.market = SyntheticMarket(["ethbtc"], ["binance", "bitstamp"], seed=4, clock_ns=lambda: self.now)
        self.record = TruthRecord(SEQS, keep_s=60.0, depth=20, clock_ns=lambda: self.now)
        self.record.attach(self.market)
        self.step(steps)

    def step(self, n: int = 1) -> None:
        for _ in range(n):
            self.now += STEP_NS
            self.market.step()

    def seq(self, venue: str, back: int = 0) -> int:
        states = list(self.record.book(venue, "ethbtc"))
        return states[-1 - back].seq

    def summary(self, seqs: dict[str, int], publish_ns: int | None = None, sequence: int = 1,
                out: tuple[str, ...] = ()) -> orderbook_pb2.Summary:
        """The right update for the venues at ``seqs`` (``out``: listed, not in the merge)."""
        books = {}
        for venue, seq in seqs.items():
            state = self.record.state(venue, "ethbtc", seq)
            assert state is not None
            if venue not in out:
                books[venue] = state.top(DEPTH)
        bids, asks = reference_merge(books, DEPTH)
        publish = self.now if publish_ns is None else publish_ns
        return orderbook_pb2.Summary(
            spread=asks[0][1] - bids[0][1], instrument="ETHBTC", sequence=sequence, publish_ns=publish,
            bids=[orderbook_pb2.Level(exchange=v, price=p, amount=a) for v, p, a in bids],
            asks=[orderbook_pb2.Level(exchange=v, price=p, amount=a) for v, p, a in asks],
            venues=[orderbook_pb2.VenueState(venue=v, in_merge=v not in out, seq=s, data_ns=publish, age_ns=0,
                                             status=orderbook_pb2.VENUE_STATUS_SYNCING if v in out else LIVE)
                    for v, s in seqs.items()],
        )


@pytest.fixture
def market() -> Market:
    return Market()


def checker(market: Market, tolerance_ns: int = 500_000_000) -> TruthChecker:
    return TruthChecker(market.record, "ethbtc", DEPTH, dict.fromkeys(SEQS, STALE_NS), tolerance_ns)


def test_the_truths_merge_passes_and_a_changed_amount_is_blamed(market: Market) -> None:
    seqs = {v: market.seq(v) for v in SEQS}
    verdict = checker(market).check(market.summary(seqs))
    assert not verdict.wrong and not verdict.stale and not verdict.unknown and not verdict.claim_violations
    assert verdict.ok("binance") and verdict.ok("bitstamp")
    bad = market.summary(seqs)
    level = next(lv for lv in bad.bids if lv.exchange == "bitstamp")
    level.amount += 1e-8
    verdict = checker(market).check(bad)
    assert verdict.wrong and verdict.blamed == ("bitstamp",) and not verdict.ok("bitstamp")
    assert verdict.ok("binance") and "bitstamp seq" in verdict.detail


def test_a_level_of_a_venue_out_of_the_merge_and_a_wrong_merge_order(market: Market) -> None:
    seqs = {v: market.seq(v) for v in SEQS}
    summary = market.summary(seqs, out=("bitstamp",))
    assert not checker(market).check(summary).wrong
    summary.bids[0].exchange = "bitstamp"
    verdict = checker(market).check(summary)
    assert verdict.wrong and verdict.foreign
    summary = market.summary(seqs)
    summary.asks[0].CopyFrom(summary.asks[1])  # the best ask lost, the second twice: every venue's own
    verdict = checker(market).check(summary)  # levels are wrong somewhere, or the merge is
    assert verdict.wrong and verdict.blamed
    summary = market.summary(seqs)
    summary.spread += 1e-9
    assert checker(market).check(summary).blamed == (MERGE,)


def test_stale_means_the_shown_top_stopped_being_true_long_enough_ago(market: Market) -> None:
    seqs = {v: market.seq(v) for v in SEQS}
    book = market.record.book("binance", "ethbtc")
    state = book.state(seqs["binance"])
    assert state is not None
    market.step(40)  # 4 s on
    until = book.top_until(state, DEPTH)
    assert until is not None
    fresh = checker(market).check(market.summary(seqs, publish_ns=until + STALE_NS))
    assert not fresh.stale and fresh.view("binance") is not None
    late = market.summary(seqs, publish_ns=until + STALE_NS + 600_000_000)
    verdict = checker(market).check(late)
    assert "binance" in verdict.stale and not verdict.wrong
    assert not checker(market, tolerance_ns=700_000_000).check(late).stale  # the stated tolerance
    late.venues[0].age_ns = STALE_NS + 1  # the server's own claim broken too
    assert checker(market).check(late).claim_violations == ("binance",)


def test_unknown_and_future_positions_are_unverifiable(market: Market) -> None:
    seqs = {v: market.seq(v) for v in SEQS}
    summary = market.summary(seqs)
    summary.venues[0].seq = 10**12
    verdict = checker(market).check(summary)
    assert verdict.unverifiable and verdict.unknown == ("binance",) and not verdict.wrong
    past = {v: market.seq(v, back=5) for v in SEQS}
    summary = market.summary(past, publish_ns=market.now - 10 * STEP_NS)  # published before it existed
    view = checker(market).check(summary).view("binance")
    assert view is not None and view.future and not view.known


def test_every_catalogue_spec_parses_and_each_round_deals_every_kind() -> None:
    for venue in SEQS:
        for channel in ("snapshot", "diff"):
            kinds = catalogue(venue, channel)
            assert ("zero" in kinds) == (channel == "snapshot")
            assert ("skip" in kinds) == (venue == "binance" and channel == "diff")
            assert ("rest-stale" in kinds) == (channel == "diff")
            deck = FaultDeck(venue, channel, random.Random(1))
            drawn = [deck.draw() for _ in range(2 * len(kinds))]
            assert sorted(p.kind for p in drawn[: len(kinds)]) == sorted(kinds)
            for plan in drawn:
                for spec in plan.specs:
                    parse_fault(spec)
    only = FaultDeck("binance", "diff", random.Random(1), ["skip", "absurd"])
    assert {only.draw().kind for _ in range(6)} == {"skip", "absurd"}
    with pytest.raises(ValueError, match="unknown fault kinds"):
        ChaosSpec(kinds=("nope",))


def test_findings_are_explained_only_by_a_fault_that_can_explain_them(market: Market, tmp_path: Path) -> None:
    spec = ChaosSpec(minutes=1, out=tmp_path, phases=1)
    seqs = {v: market.seq(v) for v in SEQS}
    layout = {"binance": "diff", "bitstamp": "snapshot"}
    phase = PhaseResult(0, layout, start_ns=0, end_ns=market.now + STEP_NS)
    check = checker(market)
    sequence = 0

    def publish(summary: orderbook_pb2.Summary) -> None:
        nonlocal sequence
        sequence += 1
        summary.sequence = sequence
        phase.verdicts[sequence] = check.check(summary)

    def spoil(summary: orderbook_pb2.Summary, venue: str) -> orderbook_pb2.Summary:
        level = next(lv for lv in [*summary.bids, *summary.asks] if lv.exchange == venue)
        level.amount = 1e308
        return summary

    publish(spoil(market.summary(seqs), "bitstamp"))  # under huge on bitstamp: explained
    later = market.now + 1_000_000
    publish(spoil(market.summary(seqs, publish_ns=later), "binance"))  # binance had no fault: the server's
    phase.events = [
        FaultEvent(0, "bitstamp", "snapshot", "huge", ("huge,field=amount,count=1",),
                   market.now - 10 * STEP_NS, market.now - 5 * STEP_NS, (1,), tags=frozenset({"huge"})),
        FaultEvent(0, "binance", "diff", "drop", ("drop",), market.now - 30 * STEP_NS,
                   market.now - 30 * STEP_NS, (1,), tags=frozenset({"drop"})),
    ]
    phase.received = 2
    report = analyse(spec, [phase], 60.0)
    assert report.count("wrong", True) == 1 and report.count("wrong", False) == 1
    assert not report.ok
    assert report.recoveries[0].recovered_s == pytest.approx(0.501)  # bitstamp right in the second update
    text = markdown(report)
    assert "UNEXPLAINED" in text and "huge" in text
    assert dict(headline(report))["verdict"] == "FAIL"


def test_chaos_command_line(capsys: pytest.CaptureFixture[str]) -> None:
    parser = build_parser()
    spec = chaos_spec(parser.parse_args(["--chaos"]), parser)
    assert (spec.subs, spec.minutes, spec.phases, spec.kinds) == (10, 5.0, 2, ())
    args = ["--chaos", "--subs", "3", "--minutes", "0.5", "--layout", "binance=diff,bitstamp=diff",
            "--fault-kinds", "drop,skip", "--stale-after", "1.5"]
    spec = chaos_spec(parser.parse_args(args), parser)
    assert spec.subs == 3 and spec.layouts == ({"binance": "diff", "bitstamp": "diff"},)
    assert spec.kinds == ("drop", "skip") and spec.stale_after == 1.5
    bad_args = (["--subs", "1,2"], ["--fault-kinds", "nope"], ["--layout", "binance=diff"],
                ["--minutes", "0"])
    for bad in bad_args:
        with pytest.raises(SystemExit):
            chaos_spec(parser.parse_args(["--chaos", *bad]), parser)
        assert "error" in capsys.readouterr().err
