"""Shared WebSocket upstream shell: connect, subscribe (paced), read, reconnect with backoff.

I/O shell around a pure :class:`Codec` (what to send after connecting, how one text frame maps to
events). Reconnects happen *inside* the adapter rather than by raising to the core's FeedRunner:
the adapter keeps its counters, sequence/trade-id tracking and per-symbol last-update times across
reconnects, which a restart (a new instance) would lose. The loop:

* connect (``heartbeat`` pings find a dead link; aiohttp answers the upstream's pings itself),
* send the codec's first subscribe message within ``subscribe_within`` seconds (Coinbase drops a
  client that has not subscribed within 5 s), then the rest at most ``send_rate`` per second from
  a sender task that runs alongside the read loop (so 50 Finnhub symbols at 5/s, 10 s of sends,
  neither trip that limit nor hold back the first ticks); the sender ends with the connection,
* read frames; text goes to the codec, anything else is counted as garbage, never fatal,
* after ``lifetime`` seconds reconnect on purpose (Binance closes connections at 24 h),
* on any failure, wait ``backoff_delay`` (exponential, equal jitter: ticker.core.backoff) and go
  again; the attempt count resets once a connection has delivered data. Every failure is logged
  with a message that says what happened (:func:`describe`: never a bare ``TimeoutError: ``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

import aiohttp

from ticker.core.backoff import backoff_delay
from ticker_feeds.base import Event, Listing, Option, as_float, help_of, parse_options

__all__ = [
    "Codec",
    "CountsGarbage",
    "LinkStats",
    "SeenIds",
    "SymbolClock",
    "WsConfig",
    "WsFeed",
    "backoff_delay",  # (ticker.core.backoff's, for the adapters built on this shell)
    "describe",
    "link_options",
    "reconnect_now",
    "stream",
]

log = logging.getLogger("ticker.feeds.ws")


def link_options(stale_default: str, what: str = "an update before a symbol") -> dict[str, Option]:
    """Pure; no I/O. The ``stale_after`` and ``backoff`` options every WebSocket adapter takes."""
    return {
        "stale_after": Option(
            f"seconds without {what} is stale", stale_default, as_float(0.001, 86_400)
        ),
        "backoff": Option(
            "first reconnect delay in seconds (doubles, with jitter, to 30)",
            "0.5",
            as_float(0.001, 60),
        ),
    }


class Codec(Protocol):
    """Pure part of an upstream: what to send on connect, what a frame means."""

    def subscribe_messages(self) -> list[str]: ...

    def handle(self, text: str, now_ms: float) -> list[Event]: ...

    def garbage(self, what: str) -> None: ...


class SeenIds:
    """Pure; no I/O. The last ``size`` ids seen (an upstream's news ids): :meth:`first` tells
    whether an id is new, so an item sent again (an update, a replay after a reconnect) is not
    published twice."""

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self._seen: OrderedDict[object, None] = OrderedDict()

    def first(self, key: object) -> bool:
        """True the first time ``key`` is seen (among the last ``size``)."""
        if key in self._seen:
            return False
        self._seen[key] = None
        if len(self._seen) > self.size:
            self._seen.popitem(last=False)
        return True

    def repeated(self, nid: object) -> bool:
        """True when ``nid`` (a news item's ``id`` as the upstream sent it) is an id, a number or
        a string, seen before; an item without a usable id is never a repeat."""
        usable = isinstance(nid, int | str) and not isinstance(nid, bool)
        return usable and not self.first(nid)


class CountsGarbage:
    """A codec's count of frames that are not what the upstream documents: ``counters["garbage"]``,
    ``last_problem`` (cut to 200 characters) and a debug line."""

    counters: dict[str, int]
    last_problem: str | None

    def garbage(self, what: str) -> None:
        self.counters["garbage"] += 1
        self.last_problem = what[:200]
        log.debug("%s: garbage frame: %s", type(self).__name__, self.last_problem)


NOT_JSON: Any = object()


def load_frame(text: str, garbage: Callable[[str], None]) -> Any:
    """Pure apart from ``garbage``: the JSON value of a text frame, or :data:`NOT_JSON` (and
    ``garbage`` told why) when it is not JSON or nested too deep to parse."""
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        garbage(f"not JSON: {text[:80]!r}")
        return NOT_JSON


@dataclass
class WsConfig:
    """How to talk to one upstream (all times in seconds)."""

    url: str
    send_rate: float = 5.0
    subscribe_within: float = 5.0
    lifetime: float = 23.5 * 3600.0
    idle_timeout: float = 300.0
    heartbeat: float = 30.0
    backoff_initial: float = 0.5
    backoff_max: float = 30.0
    secrets: tuple[str, ...] = ()  # never logged: scrubbed from errors (an API key in the URL)
    headers: dict[str, str] = field(default_factory=dict)  # sent with the handshake (auth)

    def scrub(self, text: str) -> str:
        for secret in self.secrets:
            if secret:
                text = text.replace(secret, "***")
        return text


@dataclass
class LinkStats:
    """Connection counters, shown in the adapter's ``health()``."""

    state: str = "starting"
    connects: int = 0
    reconnects: int = 0
    planned_reconnects: int = 0
    sent: int = 0
    frames: int = 0
    last_error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "connects": self.connects,
            "reconnects": self.reconnects,
            "planned_reconnects": self.planned_reconnects,
            "sent": self.sent,
            "frames": self.frames,
            "last_error": self.last_error,
        }


@dataclass
class SymbolClock:
    """Pure; no I/O. Last update time per symbol (wall ms, given by the caller); who is stale."""

    expected: tuple[str, ...] = ()
    last: dict[str, float] = field(default_factory=dict)

    def touch(self, symbol: str, now_ms: float) -> None:
        self.last[symbol] = now_ms

    def stale(self, now_ms: float, after_s: float) -> list[str]:
        """Symbols not updated for ``after_s`` seconds, and expected ones never updated."""
        limit = now_ms - after_s * 1000.0
        syms = dict.fromkeys([*self.expected, *self.last])
        return sorted(s for s in syms if self.last.get(s, float("-inf")) < limit)

    def ages(self, now_ms: float) -> dict[str, float | None]:
        """Seconds since each symbol's last update (None: never)."""
        syms = dict.fromkeys([*self.expected, *self.last])
        return {
            s: None if s not in self.last else round((now_ms - self.last[s]) / 1000.0, 3)
            for s in syms
        }


def reconnect_now(codec: Codec) -> bool:
    """Whether the codec saw the upstream announce its shutdown (Binance's ``serverShutdown``):
    a codec that can tell sets ``reconnect`` to True; the shell clears it and reconnects at once,
    without a backoff (a planned reconnect)."""
    if getattr(codec, "reconnect", False):
        codec.reconnect = False  # type: ignore[attr-defined]
        return True
    return False


class _Closed(Exception):
    """The upstream closed the connection (or it failed)."""


def describe(exc: BaseException) -> str:
    """Pure. ``"Type: message"`` for a log line, never with an empty message: exceptions such as
    ``TimeoutError()`` carry none, so their kind is spelled out instead."""
    text = str(exc).strip()
    if not text:
        if isinstance(exc, TimeoutError):
            text = "timed out"
        else:
            doc = (type(exc).__doc__ or "").strip().splitlines()
            text = doc[0].rstrip(".") if doc else "no detail given"
    return f"{type(exc).__name__}: {text}"


async def _send_rest(
    ws: aiohttp.ClientWebSocketResponse,
    msgs: list[str],
    rate: float,
    stats: LinkStats,
    name: str,
) -> None:
    """Send ``msgs`` at most ``rate`` per second, one gap after the first subscribe; runs as a
    task beside the read loop, which cancels it when the connection ends."""
    gap = 1.0 / rate if rate > 0 else 0.0
    try:
        for m in msgs:
            if gap:
                await asyncio.sleep(gap)  # the upstream's incoming message limit
            await ws.send_str(m)
            stats.sent += 1
    except (aiohttp.ClientError, OSError, RuntimeError) as exc:
        # The read loop sees the connection end and reconnects; just say why sending stopped.
        log.info("%s: subscribing stopped: %s", name, describe(exc))
    else:
        if stats.state == "subscribing":
            stats.state = "connected"


async def stream(
    cfg: WsConfig,
    codec: Codec,
    stats: LinkStats,
    closed: asyncio.Event,
    *,
    name: str,
    rng: random.Random | None = None,
) -> AsyncIterator[Event]:
    """Events from the upstream at ``cfg.url``, reconnecting until ``closed`` is set."""
    rng = rng or random.Random()
    loop = asyncio.get_running_loop()
    attempt = 0
    async with aiohttp.ClientSession() as session:
        while not closed.is_set():
            stats.state = "connecting"
            delivered = planned = False
            try:
                async with session.ws_connect(
                    cfg.url,
                    heartbeat=cfg.heartbeat,
                    autoping=True,
                    max_msg_size=16 * 2**20,
                    headers=cfg.headers or None,
                ) as ws:
                    stats.connects += 1
                    stats.state = "subscribing"
                    msgs = codec.subscribe_messages()
                    if msgs:
                        try:
                            async with asyncio.timeout(cfg.subscribe_within):
                                await ws.send_str(msgs[0])
                        except TimeoutError:
                            raise _Closed(
                                f"first subscribe not sent within {cfg.subscribe_within:g}s"
                            ) from None
                        stats.sent += 1
                    sender: asyncio.Task[None] | None = None
                    if len(msgs) > 1:
                        sender = asyncio.create_task(
                            _send_rest(ws, msgs[1:], cfg.send_rate, stats, name)
                        )
                    else:
                        stats.state = "connected"
                    try:
                        deadline = loop.time() + cfg.lifetime
                        while not closed.is_set():
                            left = deadline - loop.time()
                            if left <= 0:
                                stats.planned_reconnects += 1
                                planned = True
                                log.info("%s: planned reconnect after %.0fs", name, cfg.lifetime)
                                break
                            try:
                                msg = await ws.receive(timeout=min(left, cfg.idle_timeout))
                            except TimeoutError:
                                if loop.time() < deadline:
                                    raise _Closed(f"no frame for {cfg.idle_timeout:g}s") from None
                                continue
                            if msg.type is aiohttp.WSMsgType.TEXT:
                                stats.frames += 1
                                events = codec.handle(msg.data, time.time() * 1000.0)
                                if not delivered:
                                    delivered, attempt = True, 0
                                for ev in events:
                                    yield ev
                                if reconnect_now(codec):
                                    stats.planned_reconnects += 1
                                    planned = True
                                    log.info("%s: the upstream asked for a new connection", name)
                                    break
                            elif msg.type is aiohttp.WSMsgType.BINARY:
                                stats.frames += 1
                                codec.garbage("binary frame")
                            elif msg.type is aiohttp.WSMsgType.ERROR:
                                raise _Closed(f"connection error: {ws.exception()!r}")
                            else:  # CLOSE, CLOSING, CLOSED
                                raise _Closed(f"closed by upstream (code {ws.close_code})")
                    finally:
                        if sender is not None:
                            sender.cancel()
                            await asyncio.gather(sender, return_exceptions=True)
            except (_Closed, aiohttp.ClientError, OSError, TimeoutError) as exc:
                stats.last_error = cfg.scrub(describe(exc))[:300]
                log.warning("%s: %s", name, stats.last_error)
            if closed.is_set():
                break
            if planned:
                continue
            delay = backoff_delay(
                attempt, initial=cfg.backoff_initial, maximum=cfg.backoff_max, rng=rng
            )
            attempt += 1
            stats.reconnects += 1
            stats.state = "backoff"
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(closed.wait(), delay)
    stats.state = "stopped"


class _Reporting(Codec, Protocol):
    clock: SymbolClock
    counters: dict[str, int]
    last_problem: str | None


class WsFeed:
    """I/O shell shared by the WebSocket adapters: runs :func:`stream` over the adapter's codec.

    A subclass declares its ``OPTIONS`` (its ``options`` help follows from them) and sets
    ``name``, ``codec`` (with ``clock``, ``counters``, ``last_problem``), ``config``, ``link``,
    ``stale_after`` and ``_closed`` in its constructor.
    """

    OPTIONS: ClassVar[dict[str, Option]] = {}
    options: ClassVar[dict[str, str]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.options = help_of(cls.OPTIONS)

    @classmethod
    def parse(cls, options: Mapping[str, str] | None) -> dict[str, Any]:
        """The adapter's options, parsed and checked (``ValueError`` naming a bad one)."""
        return parse_options(cls.OPTIONS, options or {})

    name: str
    codec: _Reporting
    config: WsConfig
    link: LinkStats
    stale_after: float
    _closed: asyncio.Event

    async def events(self) -> AsyncIterator[Event]:
        yield Listing(self.codec.clock.expected)
        async for ev in stream(self.config, self.codec, self.link, self._closed, name=self.name):
            yield ev

    def status(self) -> str:
        return self.link.state

    def health(self) -> dict[str, Any]:
        """Link and codec counters, and which symbols are stale."""
        now = time.time() * 1000.0
        return {
            **self.link.as_dict(),
            **self.codec.counters,
            "last_problem": self.codec.last_problem,
            "stale": self.codec.clock.stale(now, self.stale_after),
            "last_update_age_s": self.codec.clock.ages(now),
        }

    async def aclose(self) -> None:
        self._closed.set()
