"""Prometheus metrics for ``GET /metrics``: read at scrape time from what the core already counts.

I/O shell around prometheus-client. :class:`MetricsCollector` is a custom collector: at each scrape
it reads the plain integer counters the hub (``Hub.stats``, ``Hub.window_stats``), the feed runners
and the bus keep anyway, so the per-tick path makes no prometheus-client call and takes no lock.
Each app has its own :class:`~prometheus_client.CollectorRegistry` (never the global one), so
several servers in one process (the tests) do not clash. :class:`LoopMonitor` measures event-loop
lag: how late a periodic sleep wakes up, which is how long any callback (a flush, a client's
frame) waits for the loop.

Every name starts with ``ticker_``; counters end in ``_total``; labels are ``feed``, ``code``
(close or error code), ``window`` (throttle window, ms), ``state`` and ``op``. README.md
("Observability") lists them.
"""

from __future__ import annotations

import asyncio
import bisect
import time
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from prometheus_client import (
    CollectorRegistry,
    GCCollector,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)

from ticker import __version__
from ticker.aio import cancel_and_wait
from ticker.core.events import News, Tick
from ticker.core.protocol import ERROR_CODES

if TYPE_CHECKING:
    from ticker.bus.memory import Bus
    from ticker.bus.supervisor import FeedRunner
    from ticker.hub.broadcaster import Hub
    from ticker.store.recorder import Recorder

__all__ = ["LAG_BUCKETS", "LoopMonitor", "Metrics", "MetricsCollector"]

LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
"""Upper bounds (seconds) of the event-loop lag histogram's buckets (+Inf is implied)."""

FEED_STATES = ("starting", "running", "loading", "paused", "backoff", "finished", "stopped")
"""``FeedRunner`` states (and the quiet states a feed may report), one series each."""

# Hub.stats key -> (metric name without ticker_ and _total, help)
_HUB_COUNTERS = (
    ("connections_total", "connections", "WebSocket connections accepted"),
    ("frames_sent", "frames_sent", "WebSocket text frames written to clients (every type)"),
    ("bytes_sent", "bytes_sent", "bytes of WebSocket frames written to clients, headers included"),
    ("deltas_sent", "deltas_sent", "delta frames written by window flushes"),
    ("snapshots_sent", "snapshots_sent", "snapshot frames written"),
    (
        "snapshots_deferred",
        "snapshots_deferred",
        "snapshots folded into a paused client's catch-up",
    ),
    ("catchup_deltas", "catchup_deltas", "catch-up deltas sent to paused or held clients"),
    ("ticks_in", "ticks", "ticks taken in by the hub"),
    ("news_in", "news", "news items taken in by the hub"),
    ("flushes", "flushes", "window flushes that produced updates"),
    ("slow_behind", "slow_consumer_pauses", "times a client was paused (unsent bytes)"),
    ("slow_resyncs", "slow_consumer_resyncs", "paused clients brought back in step"),
    ("slow_closes", "slow_consumer_closes", "slow consumers closed with 1013"),
    ("flow_catchups", "flow_catchups", "window-0 clients caught up after a late pong"),
    ("resyncs", "bus_client_resyncs", "client snapshots sent because the bus came back"),
)

# RedisBus counter -> (metric name without ticker_bus_ and _total, help)
_BUS_COUNTERS = (
    ("published", "published", "events handed to the bus by feeds"),
    ("written", "written", "events written to Redis (ingest)"),
    ("news_written", "news_written", "news items written to Redis (ingest)"),
    ("dropped", "dropped", "ticks dropped: the write buffer was full while Redis was away"),
    ("standby_discarded", "standby_discarded", "events not written: another node holds the lease"),
    ("read", "read", "stream entries read from Redis (edge)"),
    ("news_read", "news_read", "news items read from Redis (edge)"),
    ("reconnects", "reconnects", "times a Redis reader or writer came back after failures"),
    ("resyncs", "resyncs", "reloads of the quote snapshot after Redis came back (edge)"),
    ("skips", "skips", "skips to the end of the ticks stream by an edge far behind it"),
    ("takeovers", "takeovers", "ingest leases acquired"),
)


class LoopMonitor:
    """Event-loop lag: how much later than asked a periodic ``sleep(interval)`` wakes up.

    I/O shell (one task) around :meth:`record`, which is pure. Keeps the last lag, a histogram
    (:data:`LAG_BUCKETS`) and the samples of the last ``window`` seconds for a recent maximum.

    Args:
        interval: seconds between samples.
        window: seconds over which :meth:`recent_max` looks back.
    """

    def __init__(self, interval: float = 0.1, window: float = 60.0) -> None:
        self.interval = interval
        self.window = window
        self.last: float | None = None
        self.count = 0
        self.sum = 0.0
        self.buckets = [0] * (len(LAG_BUCKETS) + 1)  # per bucket, not cumulative; last is +Inf
        self._recent: deque[tuple[float, float]] = deque()
        self._task: asyncio.Task[None] | None = None

    def record(self, now: float, lag: float) -> None:
        """Note one sample: ``lag`` seconds late at loop time ``now``. Pure; no I/O."""
        self.last = lag
        self.count += 1
        self.sum += lag
        self.buckets[bisect.bisect_left(LAG_BUCKETS, lag)] += 1
        recent = self._recent
        recent.append((now, lag))
        while recent and recent[0][0] < now - self.window:
            recent.popleft()

    def recent_max(self, now: float) -> float | None:
        """The largest lag sampled in the last ``window`` seconds before ``now`` (None: none)."""
        lags = [lag for t, lag in self._recent if t >= now - self.window]
        return max(lags) if lags else None

    def cumulative(self) -> list[tuple[str, float]]:
        """Histogram buckets as Prometheus wants them: (upper bound, count at or below)."""
        out = []
        total = 0
        for bound, n in zip((*(repr(b) for b in LAG_BUCKETS), "+Inf"), self.buckets, strict=True):
            total += n
            out.append((bound, float(total)))
        return out

    def start(self) -> None:
        """Start sampling on the running loop."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="loop-monitor")

    async def stop(self) -> None:
        """Stop sampling."""
        await cancel_and_wait(self._task)
        self._task = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            asked = loop.time() + self.interval
            await asyncio.sleep(self.interval)
            now = loop.time()
            self.record(now, max(0.0, now - asked))


def _counter(name: str, doc: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, doc, value=value)


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=value)


def _by_prefix(stats: Mapping[str, int], prefix: str) -> dict[str, int]:
    n = len(prefix)
    return {k[n:]: v for k, v in stats.items() if k.startswith(prefix)}


class MetricsCollector:
    """Custom collector: every ``ticker_`` metric, read from the live objects at scrape time.

    Call only from the event loop's thread (the ``/metrics`` handler does): it reads the hub's
    state without locks, as every other handler does.

    Args:
        hub: the broadcaster.
        runners: the feed runners (empty on an edge).
        bus: the memory or Redis bus.
        monitor: the event-loop lag monitor.
        recorder: the recorder, when ``--record`` is on.
    """

    def __init__(
        self,
        hub: Hub,
        runners: Sequence[FeedRunner],
        bus: Bus,
        monitor: LoopMonitor,
        recorder: Recorder | None = None,
    ) -> None:
        self.hub = hub
        self.runners = runners
        self.bus = bus
        self.monitor = monitor
        self.recorder = recorder

    def describe(self) -> Iterable[Metric]:
        # No fixed list: the registry then never calls collect() at registration.
        return ()

    def collect(self) -> Iterator[Metric]:
        now = time.time()
        yield from self._hub()
        yield from self._feeds(now)
        yield from self._bus()
        yield from self._loop()
        if self.recorder is not None:
            h = self.recorder.health()
            yield _counter("ticker_recorder_events", "events handed to the recorder", h["recorded"])
            yield _counter(
                "ticker_recorder_written", "events written to Parquet files", h["written"]
            )
            yield _counter("ticker_recorder_errors", "recorder write errors", h["errors"])

    def _hub(self) -> Iterator[Metric]:
        hub = self.hub
        stats = hub.stats
        yield InfoMetricFamily("ticker_build", "ticker version", value={"version": __version__})
        yield _gauge("ticker_start_time_seconds", "when the server started, Unix time", hub.started)
        for key, name, doc in _HUB_COUNTERS:
            yield _counter(f"ticker_{name}", doc, stats.get(key, 0))
        live = len(hub.clients)
        yield _gauge("ticker_connections_open", "WebSocket connections open now", live)
        yield _counter(
            "ticker_disconnections",
            "WebSocket connections ended (for any reason)",
            stats.get("connections_total", 0) - live,
        )
        health = hub.health()
        yield _gauge(
            "ticker_slow_consumers",
            "connections paused now (unsent bytes)",
            health["slow_consumers"],
        )
        yield _gauge(
            "ticker_held_connections", "window-0 connections held now (late pong)", health["held"]
        )
        yield _gauge("ticker_groups", "distinct (window, subscription) groups", health["groups"])
        yield _gauge("ticker_symbols", "known symbols", health["symbols"])
        yield _gauge(
            "ticker_news_retained", "news items retained for since-replay", health["news_retained"]
        )

        closes = CounterMetricFamily(
            "ticker_closes",
            "connections the server closed, by the close code it sent (1001 shutdown, 1006 broken "
            "link, 1008 flooding, 1009 frame too big, 1013 slow consumer)",
            labels=["code"],
        )
        by_code = _by_prefix(stats, "closed_")
        for code in sorted({"1008", "1009", "1013", *by_code}):
            closes.add_metric([code], by_code.get(code, 0))
        yield closes

        errors = CounterMetricFamily(
            "ticker_errors", "error frames sent to clients, by error code", labels=["code"]
        )
        by_error = _by_prefix(stats, "error_")
        for code in sorted(ERROR_CODES | set(by_error)):
            errors.add_metric([code], by_error.get(code, 0))
        yield errors

        # (window ms) -> (connections, ticks, updates): one family per column, and the ticks
        # conflated away.
        families = [
            (
                GaugeMetricFamily,
                "ticker_window_connections",
                "connections per throttle window (ms)",
            ),
            (CounterMetricFamily, "ticker_window_ticks", "ticks flushed per throttle window (ms)"),
            (
                CounterMetricFamily,
                "ticker_updates",
                "symbol updates sent per throttle window (ms): computed once, shared by its "
                "clients",
            ),
            (
                CounterMetricFamily,
                "ticker_updates_conflated",
                "ticks absorbed into a later update (latest value wins), per throttle window (ms)",
            ),
        ]
        out = [kind(name, doc, labels=["window"]) for kind, name, doc in families]
        for ms, (n, t, u) in sorted(hub.window_stats().items()):
            for family, value in zip(out, (n, t, u, t - u), strict=True):
                family.add_metric([str(ms)], value)
        yield from out

    def _feeds(self, now: float) -> Iterator[Metric]:
        counters = [
            (CounterMetricFamily(name, doc, labels=["feed"]), attr)
            for name, doc, attr in (
                ("ticker_feed_events", "events received from each feed", "events"),
                ("ticker_feed_errors", "times each feed failed (then restarted)", "errors"),
                ("ticker_feed_restarts", "restarts of each feed after a failure", "restarts"),
                (
                    "ticker_feed_stalls",
                    "times each feed was silent past its stall timeout",
                    "stalls",
                ),
            )
        ]
        state = GaugeMetricFamily(
            "ticker_feed_state", "1 for each feed's current state", labels=["feed", "state"]
        )
        lag = GaugeMetricFamily(
            "ticker_feed_lag_seconds",
            "now minus the source time of each feed's newest event (grows while a feed is quiet)",
            labels=["feed"],
        )
        age = GaugeMetricFamily(
            "ticker_feed_last_event_age_seconds",
            "seconds since each feed's newest event arrived",
            labels=["feed"],
        )
        for r in self.runners:
            label = [r.name]
            for family, attr in counters:
                family.add_metric(label, getattr(r, attr))
            current = r.health()["state"]
            for s in (*FEED_STATES, *(() if current in FEED_STATES else (current,))):
                state.add_metric([r.name, s], 1.0 if s == current else 0.0)
            ev = r.last_event
            if isinstance(ev, Tick | News):
                lag.add_metric(label, now - ev.ts / 1000.0)
            if r.last_event_at is not None:
                age.add_metric(label, now - r.last_event_at)
        yield from (*(family for family, _ in counters), state, lag, age)

    def _bus(self) -> Iterator[Metric]:
        h: dict[str, Any] = self.bus.health()
        kind = h.get("kind", "memory")
        up = GaugeMetricFamily("ticker_bus_up", "1 when the bus is up", labels=["kind"])
        up.add_metric([kind], 1.0 if h.get("state") == "up" else 0.0)
        yield up
        if kind != "redis":
            yield _counter(
                "ticker_bus_published", "events handed to the bus by feeds", h.get("published", 0)
            )
            yield _gauge("ticker_bus_lag_seconds", "how far behind the stream reads are", 0.0)
            return
        for key, name, doc in _BUS_COUNTERS:
            yield _counter(f"ticker_bus_{name}", doc, h.get(key, 0))
        errors = CounterMetricFamily(
            "ticker_bus_errors", "failed Redis operations, by operation", labels=["op"]
        )
        for op in ("write", "read", "lease"):
            errors.add_metric([op], h.get(f"{op}_errors", 0))
        yield errors
        if h.get("writer") != "off":
            yield _gauge(
                "ticker_bus_buffered", "events waiting to be written to Redis", h["buffered"]
            )
            yield _gauge(
                "ticker_bus_leader",
                "1 while this node holds the ingest lease",
                1.0 if h.get("leader") else 0.0,
            )
        if h.get("reader") != "off":
            if h.get("lag_ms") is not None:
                yield _gauge(
                    "ticker_bus_lag_seconds",
                    "how far behind the streams the last read was: read time minus the newest "
                    "entry's time",
                    h["lag_ms"] / 1000.0,
                )
            if h.get("last_read_age_s") is not None:
                yield _gauge(
                    "ticker_bus_last_read_age_seconds",
                    "seconds since the last read from Redis returned (1 s blocking reads)",
                    h["last_read_age_s"],
                )

    def _loop(self) -> Iterator[Metric]:
        m = self.monitor
        hist = HistogramMetricFamily(
            "ticker_event_loop_lag_seconds",
            f"how late a {m.interval:g} s timer fires: the wait of every callback on the loop",
        )
        hist.add_metric([], m.cumulative(), sum_value=m.sum)
        yield hist
        if m.last is not None:
            yield _gauge(
                "ticker_event_loop_lag_last_seconds", "the latest event-loop lag sample", m.last
            )
        recent = m.recent_max(asyncio.get_running_loop().time())
        if recent is not None:
            yield _gauge(
                "ticker_event_loop_lag_max_seconds",
                f"the largest event-loop lag in the last {m.window:g} s",
                recent,
            )


class Metrics:
    """One app's metrics: its registry (ticker, process and Python collectors) and lag monitor.

    Args:
        hub, runners, bus, recorder: what :class:`MetricsCollector` reads.
        lag_interval: seconds between event-loop lag samples.
    """

    def __init__(
        self,
        hub: Hub,
        runners: Sequence[FeedRunner],
        bus: Bus,
        *,
        recorder: Recorder | None = None,
        lag_interval: float = 0.1,
    ) -> None:
        self.monitor = LoopMonitor(lag_interval)
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(MetricsCollector(hub, runners, bus, self.monitor, recorder))
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)

    def start(self) -> None:
        """Start the event-loop lag monitor."""
        self.monitor.start()

    async def stop(self) -> None:
        """Stop the event-loop lag monitor."""
        await self.monitor.stop()

    def render(self, accept: str | None = None) -> tuple[bytes, str]:
        """The exposition for a scrape: (body, content type). OpenMetrics when ``accept`` asks
        for it (as Prometheus does), else the text format 0.0.4."""
        encoder, content_type = choose_encoder(accept or "")
        return encoder(self.registry), content_type
