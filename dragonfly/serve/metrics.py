"""Prometheus metrics, read at scrape time from the counters the hot path keeps anyway.

``--metrics-port N`` (or ``metrics_port`` in a topology file) serves
``/metrics`` on an HTTP port (``prometheus-client``'s server, on its own
thread). Nothing is counted for Prometheus per frame: a
:class:`HubCollector` reads, when scraped, the counters the listeners, feeds,
diff books, aggregators and gRPC services already keep, and turns them into
metric families named after Prometheus conventions (``dragonfly_..._total``
counters, base units, labels for venue, instrument, aggregator and service).
The scrape runs on the HTTP thread; the reading itself is handed to the
event loop (``call_soon_threadsafe``) so it never races the loop's updates.

Families (labels):

* per venue connection (``venue``, ``connection``): ``dragonfly_venue_frames_total``,
  ``dragonfly_venue_received_bytes_total``,
  ``dragonfly_venue_malformed_frames_total``, ``dragonfly_venue_connects_total``,
  ``dragonfly_venue_disconnects_total``, ``dragonfly_venue_connect_failures_total``,
  ``dragonfly_venue_connected`` (1 while connected);
* per book (``venue``, ``instrument``): ``dragonfly_book_in_merge`` (1 while
  published), ``dragonfly_book_data_age_seconds`` (since the newest proof it
  is current; absent before the first), ``dragonfly_book_status`` (1 for its
  current status, by ``status``), and for diff books ``dragonfly_book_gaps_total``,
  ``dragonfly_book_resyncs_total``, ``dragonfly_book_snapshots_total``,
  ``dragonfly_book_updates_applied_total``, ``dragonfly_book_checksums_total``
  (by ``result``: ok or bad);
* per view attached now (``instrument``, ``kind``, ``aggregator``):
  ``dragonfly_aggregator_updates_total`` (views published since it was built);
* per view with a sink (``instrument``, ``kind``, ``aggregator``):
  ``dragonfly_tick_to_queue_seconds``, a histogram of receive-to-publish
  (:mod:`dragonfly.core.timing`: the one piece of work metrics add, ~0.3 µs
  per view published, not per frame);
* per gRPC service (``service``, its address): ``dragonfly_service_streams`` (open streams),
  ``dragonfly_service_updates_delivered_total`` and ``dragonfly_service_updates_conflated_total``;
* per FIX gateway (``service``, its name and address): ``dragonfly_fix_sessions`` (logged on now),
  ``dragonfly_fix_messages_sent_total`` (W written) and ``dragonfly_fix_messages_conflated_total``
  (W replaced by a newer one before the session's socket took it).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from dragonfly.core.diff import DiffListener
from dragonfly.core.health import VenueStatus
from dragonfly.serve.errors import ServeError

if TYPE_CHECKING:
    from dragonfly.fix.gateway import FixGateway
    from dragonfly.serve.grpc_service import GrpcService
    from dragonfly.topology.hub import Hub

#: Seconds a scrape waits for the event loop to read the counters.
SCRAPE_TIMEOUT = 5.0


class HubCollector(Collector):
    """The metric families of a hub and its services, read from their own counters."""

    def __init__(
        self,
        hub: Hub,
        services: Sequence[tuple[str, GrpcService]],
        loop: asyncio.AbstractEventLoop,
        gateways: Sequence[FixGateway] = (),
    ) -> None:
        self.hub = hub
        self.services = list(services)
        self.loop = loop
        #: FIX gateways (dragonfly.fix.gateway); the server adds them as they start.
        self.gateways = list(gateways)

    def collect(self) -> Iterable[Metric]:
        """Read every family on the event loop (called on the HTTP thread by a scrape)."""
        done: concurrent.futures.Future[list[Metric]] = concurrent.futures.Future()

        def read() -> None:
            try:
                done.set_result(list(self.families()))
            except BaseException as exc:  # the scrape reports it; the loop goes on
                done.set_exception(exc)

        self.loop.call_soon_threadsafe(read)
        return done.result(SCRAPE_TIMEOUT)

    def families(self) -> Iterator[Metric]:
        """Every metric family, read now (on the event loop)."""
        hub = self.hub
        conn_labels = ["venue", "connection"]
        frames = CounterMetricFamily(
            "dragonfly_venue_frames", "Frames received from the venue.", labels=conn_labels
        )
        received = CounterMetricFamily(
            "dragonfly_venue_received_bytes",
            "Bytes of the frames received from the venue.",
            labels=conn_labels,
        )
        malformed = CounterMetricFamily(
            "dragonfly_venue_malformed_frames",
            "Book frames that could not be read or were unsound.",
            labels=conn_labels,
        )
        connects = CounterMetricFamily("dragonfly_venue_connects", "Connections opened.", labels=conn_labels)
        disconnects = CounterMetricFamily(
            "dragonfly_venue_disconnects", "Connections ended.", labels=conn_labels
        )
        failures = CounterMetricFamily(
            "dragonfly_venue_connect_failures", "Connection attempts that failed.", labels=conn_labels
        )
        connected = GaugeMetricFamily(
            "dragonfly_venue_connected", "1 while the connection is up.", labels=conn_labels
        )
        for venue, feeds in hub.connections.items():
            for index, feed in enumerate(feeds):
                labels = [venue, str(index)]
                frames.add_metric(labels, feed.listener.frames)
                received.add_metric(labels, feed.listener.bytes)
                malformed.add_metric(labels, feed.listener.malformed)
                connects.add_metric(labels, feed.stats.connects)
                disconnects.add_metric(labels, feed.stats.disconnects)
                failures.add_metric(labels, feed.stats.connect_failures)
                connected.add_metric(labels, 1.0 if feed.conn.connected else 0.0)
        yield from (frames, received, malformed, connects, disconnects, failures, connected)

        book_labels = ["venue", "instrument"]
        in_merge = GaugeMetricFamily(
            "dragonfly_book_in_merge", "1 while the book is published.", labels=book_labels
        )
        age = GaugeMetricFamily(
            "dragonfly_book_data_age_seconds",
            "Since the newest proof that the book is current.",
            labels=book_labels,
        )
        status = GaugeMetricFamily(
            "dragonfly_book_status", "1 for the book's current status.", labels=[*book_labels, "status"]
        )
        for info in hub.catalog():
            for v in info.venues:
                labels = [v.venue, info.instrument]
                in_merge.add_metric(labels, 1.0 if v.in_merge else 0.0)
                if v.data_ns:
                    age.add_metric(labels, v.age_ns / 1e9)
                status.add_metric([*labels, VenueStatus(v.status).name.lower()], 1.0)
        yield from (in_merge, age, status)

        counters = {
            "gaps": ("dragonfly_book_gaps", "Sequence gaps found (each resynchronises the book)."),
            "resyncs": ("dragonfly_book_resyncs", "Resynchronisations of the book."),
            "snapshots": ("dragonfly_book_snapshots", "Snapshots loaded."),
            "applied": ("dragonfly_book_updates_applied", "Updates applied to the book."),
        }
        families = {k: CounterMetricFamily(n, h, labels=book_labels) for k, (n, h) in counters.items()}
        checksums = CounterMetricFamily(
            "dragonfly_book_checksums", "Checksums verified, by result.", labels=[*book_labels, "result"]
        )
        for (instrument, venue), feed in hub.feeds_by_book().items():
            listener = feed.listener
            if not isinstance(listener, DiffListener):
                continue
            sync = listener.syms.get(hub.symbols[instrument, venue])
            if sync is None:
                continue
            labels = [venue, instrument]
            for key, family in families.items():
                family.add_metric(labels, getattr(sync.stats, key))
            checksums.add_metric([*labels, "ok"], sync.stats.checksums_ok)
            checksums.add_metric([*labels, "bad"], sync.stats.checksums_bad)
        yield from (*families.values(), checksums)

        updates = CounterMetricFamily(
            "dragonfly_aggregator_updates",
            "Views published since the view was built.",
            labels=["instrument", "kind", "aggregator"],
        )
        for source in hub.sources:
            if source.attached:
                updates.add_metric(
                    [source.instrument, source.kind, source.name or "(on request)"],
                    source.aggregator.sequence,
                )
        yield updates

        timing = HistogramMetricFamily(
            "dragonfly_tick_to_queue_seconds",
            "From the newest venue frame in a view to the view published (receive to queue).",
            labels=["instrument", "kind", "aggregator"],
        )
        for source in hub.sources:
            histogram = source.aggregator.timing
            if histogram is not None and histogram.counts != [0] * len(histogram.counts):
                timing.add_metric(
                    [source.instrument, source.kind, source.name or "(on request)"],
                    histogram.cumulative(),
                    histogram.sum,
                )
        yield timing

        streams = GaugeMetricFamily(
            "dragonfly_service_streams", "Open streams, both APIs.", labels=["service"]
        )
        delivered = CounterMetricFamily(
            "dragonfly_service_updates_delivered", "Updates written to streams.", labels=["service"]
        )
        conflated = CounterMetricFamily(
            "dragonfly_service_updates_conflated",
            "Updates a stream skipped: its client read slower than they came (newest kept).",
            labels=["service"],
        )
        for name, service in self.services:
            streams.add_metric([name], service.subscribers)
            sent, skipped = service.update_totals()
            delivered.add_metric([name], sent)
            conflated.add_metric([name], skipped)
        yield from (streams, delivered, conflated)

        sessions = GaugeMetricFamily("dragonfly_fix_sessions", "FIX sessions logged on.", labels=["service"])
        fix_sent = CounterMetricFamily(
            "dragonfly_fix_messages_sent", "Market data messages (W) written.", labels=["service"]
        )
        fix_conflated = CounterMetricFamily(
            "dragonfly_fix_messages_conflated",
            "W replaced by a newer one before the session's socket took it (newest kept).",
            labels=["service"],
        )
        for gateway in self.gateways:
            label = [f"{gateway.config.name} {gateway.address}"]
            sessions.add_metric(label, gateway.sessions)
            fix_sent.add_metric(label, gateway.sent)
            fix_conflated.add_metric(label, gateway.conflated)
        yield from (sessions, fix_sent, fix_conflated)


class MetricsServer:
    """``/metrics`` of one collector over HTTP, on a thread of its own (its own registry: no global state)."""

    def __init__(self, collector: HubCollector, port: int, host: str = "127.0.0.1") -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(collector)
        try:
            self._server, self._thread = start_http_server(port, addr=host, registry=self.registry)
        except OSError as exc:
            raise ServeError(f"cannot serve metrics on {host}:{port}: {exc.strerror or exc}") from None
        #: The bound port (useful with port 0).
        self.port = int(self._server.server_address[1])
        #: Where to scrape.
        self.url = f"http://{f'[{host}]' if ':' in host else host}:{self.port}/metrics"

    def close(self) -> None:
        """Stop serving and free the port."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
