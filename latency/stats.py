"""Turn a cell's raw stamps into HDR histograms and the row of numbers the report shows.

Definitions (all times wall-clock ``time.time_ns()`` on one host):

- e2e: subscriber receive - generator send of the frame that triggered the update
  (``send_log[source_venue][source_frame]``), for updates of fast subscribers
  whose trigger was sent inside the measurement window.
- tick-to-queue: ``publish_ns - recv_ns`` (engine internal: frame received ->
  merged bytes queued for subscribers), once per distinct update.
- hop in / hop out: ``recv_ns - send`` (venue -> server) and
  ``subscriber receive - publish_ns`` (server -> subscriber).
- staleness: for each frame sent in the window, the time until a fast
  subscriber first received an update at least as fresh (one whose trigger
  was sent no earlier); frames never reflected count as not delivered.
- delivered: per fast subscriber, distinct updates received / updates published
  (sequence span) in the window; ``frames%``: sent frames reflected.
"""

from __future__ import annotations

import bisect
from array import array
from dataclasses import dataclass, field

from hdrh.histogram import HdrHistogram

from latency.cell import CellRaw

PERCENTILES = (50.0, 90.0, 99.0, 99.9)
_MAX_NS = 600 * 10**9


def histogram() -> HdrHistogram:
    """A histogram of ns values from 1 ns to 10 minutes, 3 significant digits."""
    return HdrHistogram(1, _MAX_NS, 3)


def record(h: HdrHistogram, value_ns: int) -> None:
    """Record ``value_ns``, clamped into the histogram's range."""
    h.record_value(min(max(value_ns, 1), _MAX_NS))


@dataclass
class Summary:
    """Percentiles of one histogram, in microseconds."""

    count: int
    p50: float
    p90: float
    p99: float
    p999: float
    max: float

    @classmethod
    def of(cls, h: HdrHistogram) -> Summary:
        """Summarise ``h`` (ns) in µs."""
        if h.get_total_count() == 0:
            nan = float("nan")
            return cls(0, nan, nan, nan, nan, nan)
        p = [h.get_value_at_percentile(q) / 1e3 for q in PERCENTILES]
        return cls(h.get_total_count(), p[0], p[1], p[2], p[3], h.get_max_value() / 1e3)


@dataclass
class CellStats:
    """Everything the report shows about one cell."""

    system: str
    rate: float
    subscribers: int
    slow: int
    error: str
    achieved_rate: float = 0.0
    #: What was replayed (``replay okx x10``), or empty for the synthetic market.
    source: str = ""
    e2e: Summary | None = None
    t2q: Summary | None = None
    hop_in: Summary | None = None
    hop_out: Summary | None = None
    staleness: Summary | None = None
    delivered_min: float = float("nan")  #: worst fast subscriber, fraction of published updates
    frames_reflected: float = float("nan")  #: fraction of sent frames reflected at every fast subscriber
    slow_received: int = 0
    updates_per_s: float = 0.0  #: published updates per second (sequence span)
    cpu: dict[str, float] = field(default_factory=dict)  #: CPU utilisation (1.0 = one core) by process
    cpu_us_per_msg: float = float("nan")  #: server CPU per venue frame
    peak_rss_mb: float = 0.0
    #: The histograms behind e2e, t2q, hop_in, hop_out and staleness (ns), for :func:`pool`.
    hists: dict[str, HdrHistogram] = field(default_factory=dict)
    #: How many cells :func:`pool` merged into this one.
    segments: int = 1


def analyse(raw: CellRaw) -> CellStats:
    """Compute the :class:`CellStats` of ``raw``."""
    spec = raw.spec
    st = CellStats(spec.system, spec.rate, spec.subscribers, spec.slow, raw.error)
    if spec.replay is not None:
        pace = spec.replay.pace
        st.source = f"replay {spec.replay.venue} " + ("asap" if pace is None else f"x{pace:g}")
    if raw.error or not raw.subscribers:
        return st
    t0, t1 = raw.t0, raw.t1
    window_s = (t1 - t0) / 1e9
    logs = raw.send_logs
    sent_in = {v: [t for t in log[1:] if t0 <= t < t1] for v, log in logs.items()}
    n_sent = sum(len(x) for x in sent_in.values())  # the acks (frame 1) precede the window
    st.achieved_rate = n_sent / window_s
    e2e, t2q, hin, hout, stale = histogram(), histogram(), histogram(), histogram(), histogram()
    seen_seq: set[int] = set()
    delivered: list[float] = []
    reflected: list[float] = []
    seq_lo, seq_hi = None, None
    all_sent = sorted(t for x in sent_in.values() for t in x)
    for sub in raw.subscribers:
        if sub.slow:
            st.slow_received = sum(1 for t in sub.recv if t0 <= t < t1)
            continue
        send_of = [logs.get(v, array("q")) for v in sub.venues]
        fresh: list[int] = []  # running max of trigger send time, per message
        recv_at: list[int] = []
        best = 0
        seqs: set[int] = set()
        for i in range(len(sub.recv)):
            log = send_of[sub.venue[i]]
            frame = sub.frame[i]
            if not 0 < frame < len(log):
                continue
            sent = log[frame]
            if sent > best:
                best = sent
            fresh.append(best)
            recv_at.append(sub.recv[i])
            if not t0 <= sent < t1:
                continue
            got = sub.recv[i]
            seq = sub.sequence[i]
            seqs.add(seq)
            record(e2e, got - sent)
            record(hout, got - sub.publish[i])
            if seq not in seen_seq:
                seen_seq.add(seq)
                record(t2q, sub.publish[i] - sub.engine_recv[i])
                record(hin, sub.engine_recv[i] - sent)
        if seqs:
            lo, hi = min(seqs), max(seqs)
            seq_lo = lo if seq_lo is None else min(seq_lo, lo)
            seq_hi = hi if seq_hi is None else max(seq_hi, hi)
            delivered.append(len(seqs) / (hi - lo + 1))
        else:
            delivered.append(0.0)
        hit = 0
        for sent in all_sent:
            j = bisect.bisect_left(fresh, sent)
            if j < len(fresh):
                hit += 1
                record(stale, recv_at[j] - sent)
        reflected.append(hit / len(all_sent) if all_sent else 0.0)
    st.hists = {"e2e": e2e, "t2q": t2q, "hop_in": hin, "hop_out": hout, "staleness": stale}
    _summarise(st)
    st.delivered_min = min(delivered) if delivered else float("nan")
    st.frames_reflected = min(reflected) if reflected else float("nan")
    if seq_lo is not None and seq_hi is not None:
        st.updates_per_s = (seq_hi - seq_lo + 1) / window_s
    st.cpu = {k: v / window_s for k, v in raw.cpu_s.items()}
    if n_sent:
        st.cpu_us_per_msg = raw.cpu_s.get("server", 0.0) / n_sent * 1e6
    st.peak_rss_mb = raw.peak_rss / 2**20
    return st


def _summarise(st: CellStats) -> None:
    """Set ``st``'s percentile summaries from its histograms."""
    h = st.hists
    st.e2e, st.t2q = Summary.of(h["e2e"]), Summary.of(h["t2q"])
    st.hop_in, st.hop_out = Summary.of(h["hop_in"]), Summary.of(h["hop_out"])
    st.staleness = Summary.of(h["staleness"])


def pool(segments: list[CellStats]) -> CellStats:
    """Merge the cells of one system, rate and subscriber count measured in turns.

    Latencies pool their histograms (percentiles of all the samples, not a
    mean of percentiles); rates and CPU are averaged over the segments, the
    worst delivered share and frame share are kept, and RSS is the peak. A
    segment that failed fails the pooled cell, with its error.
    """
    first = segments[0]
    out = CellStats(first.system, first.rate, first.subscribers, first.slow, "", source=first.source)
    out.segments = len(segments)
    failed = [s for s in segments if s.error or not s.hists]
    if failed:
        out.error = f"{len(failed)} of {len(segments)} segments failed: {failed[0].error or 'no data'}"
        return out
    n = len(segments)
    out.hists = {key: histogram() for key in first.hists}
    for st in segments:
        for key, h in st.hists.items():
            out.hists[key].add(h)
    _summarise(out)
    out.achieved_rate = sum(s.achieved_rate for s in segments) / n
    out.updates_per_s = sum(s.updates_per_s for s in segments) / n
    out.delivered_min = min(s.delivered_min for s in segments)
    out.frames_reflected = min(s.frames_reflected for s in segments)
    out.slow_received = sum(s.slow_received for s in segments)
    out.cpu = {k: sum(s.cpu.get(k, 0.0) for s in segments) / n for k in first.cpu}
    out.cpu_us_per_msg = sum(s.cpu_us_per_msg for s in segments) / n
    out.peak_rss_mb = max(s.peak_rss_mb for s in segments)
    return out
