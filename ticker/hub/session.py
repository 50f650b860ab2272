"""One connection's requests: subscription, window, entitlements, news topics and rate limit.

Pure; no I/O. The caller passes ``now`` (``loop.time()`` seconds), the symbols the book knows and
the news ring; nothing here awaits or writes. Each inbound frame goes to :meth:`Session.receive`,
which answers with a list of :data:`Output` values, in the order the shell must carry them out:

- :class:`Send`: write a control message (``ack``, ``error``, ``pong``);
- :class:`Move`: seat the connection in the group of (window, subscription);
- :class:`Snapshot`: send a ``snapshot`` of these symbols (flow control may defer it);
- :class:`Listen`: news topics changed: (un)register for live news, replay retained items;
- :class:`Bars`: answer a ``bars`` request from the bar book (and keep its live stream);
- :class:`Close`: close the connection with a code and a reason (flooding: 1008).

The rules here are the protocol's (``docs/protocol.md``): ``ack`` before ``snapshot``; a request
over a limit is refused whole; a message over the rate is dropped with ``rate_limited``, and more
than ``burst`` of them in a row close the connection; entitlements are applied when a connection
subscribes, so the per-tick path never looks at them.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, replace
from typing import Any

from ticker.core.auth import entitled_only, split_entitled
from ticker.core.bars import INTERVALS
from ticker.core.conflate import Subscription
from ticker.core.limits import TokenBucket
from ticker.core.protocol import (
    Ack,
    BarsRequest,
    Error,
    Fields,
    Hello,
    NewsRequest,
    Ping,
    Pong,
    ProtocolError,
    Request,
    RequestId,
    Resync,
    ServerMessage,
    Subscribe,
    Throttle,
    Unbars,
    Unsubscribe,
)
from ticker.core.wire import JSON, MSGPACK
from ticker.hub.news import NewsRing
from ticker.hub.pacing import effective_bps

__all__ = [
    "CLOSE_POLICY",
    "FRAME_BUDGET_SLACK",
    "BarStream",
    "Bars",
    "Close",
    "Listen",
    "Move",
    "Output",
    "Send",
    "Session",
    "SessionRules",
    "Snapshot",
    "effective_window",
]

CLOSE_POLICY = 1008

FRAME_BUDGET_SLACK = 64
"""Frames a read may hold beyond a connection's rate budget: pongs answering the server's own
pings spend no token (:meth:`Session.frame_budget`)."""


def effective_window(ms: float, max_ms: float) -> int:
    """The window a requested ``ms`` becomes: clamped to ``max_ms``; 10 ms steps up to 1 s,
    100 ms steps above (so a few shared windows serve every client). 0 stays 0."""
    ms = min(ms, max_ms)
    if ms <= 0:
        return 0
    if ms <= 1000:
        return max(10, round(ms / 10.0) * 10)
    return min(int(max_ms), round(ms / 100.0) * 100)


@dataclass(frozen=True, slots=True)
class SessionRules:
    """The limits every session applies (``HubConfig``'s fields of the same names)."""

    throttle_ms: float
    max_throttle_ms: float
    max_symbols_per_request: int
    max_symbols_per_connection: int
    rate: float
    burst: float
    max_bar_streams: int = 16
    bandwidth_bps: int = 0
    max_bandwidth_bps: int = 0

    @property
    def default_window(self) -> int:
        """The window a new connection starts in."""
        return effective_window(self.throttle_ms, self.max_throttle_ms)


# What a request asks of the shell


@dataclass(frozen=True, slots=True)
class Send:
    """Write one control message to the connection."""

    message: ServerMessage


@dataclass(frozen=True, slots=True)
class Move:
    """Seat the connection in the group of (``window`` ms, ``sub``, ``fields``, capped or not),
    with the bandwidth cap ``max_bps`` (0: none; ticker.hub.pacing)."""

    window: int
    sub: Subscription
    fields: frozenset[str] | None = None
    max_bps: int = 0


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Send a ``snapshot`` of ``symbols`` (deferred by flow control while paused)."""

    symbols: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Listen:
    """The news topics changed: with ``on``, deliver live news; with ``since``, first replay the
    retained items after it (else news resumes from the latest id)."""

    on: bool
    since: int | None = None


@dataclass(frozen=True, slots=True)
class Close:
    """Close the connection with ``code`` (1008: flooding)."""

    code: int
    reason: str


@dataclass(slots=True)
class BarStream:
    """One live ``bars`` stream of a connection, and what it was sent last.

    Attributes:
        symbol: the book's symbol.
        interval: the interval's name.
        width: its width in ms.
        limit: bars in a fresh ``bars`` message (the request's ``limit``).
        last_t: ``t`` of the newest bar sent (None: none yet): the next ``bar`` messages are
            that bar's final values and every later bar.
        fresh: the next message is a whole ``bars`` (the symbol's history was rewound).
    """

    symbol: str
    interval: str
    width: int
    limit: int
    last_t: float | None = None
    fresh: bool = False


@dataclass(frozen=True, slots=True)
class Bars:
    """Answer ``request`` (its symbol the book's own name) from the bar book: ``ack``, then a
    ``bars`` message, or ``bad_interval`` when the symbol's data has no such bars (then drop
    ``stream``). With ``stream`` (a live request), keep sending it ``bar`` updates."""

    request: BarsRequest
    stream: BarStream | None


Output = Send | Move | Snapshot | Listen | Bars | Close


def _error(
    code: str, message: str, rid: RequestId = None, symbols: tuple[str, ...] | None = None
) -> Send:
    return Send(Error(code, message, rid, symbols))


def _naming(code: str, what: str, symbols: list[str], rid: RequestId) -> Send:
    """An error that names ``symbols`` (the first ten in its message)."""
    shown = ", ".join(symbols[:10]) + (" ..." if len(symbols) > 10 else "")
    return _error(code, f"{what}: {shown}", rid, tuple(symbols))


class Session:
    """The request-level state of one connection, and the answers to its requests.

    Args:
        id: the session id sent in ``hello``.
        rules: limits.
        now: the current time (the rate bucket starts full).
        entitled: the symbols its token entitles it to (None: all).
        binary: it accepts ops as MessagePack binary frames (``ticker.v1.msgpack``).
    """

    __slots__ = (
        "binary",
        "bucket",
        "closed",
        "entitled",
        "fields",
        "id",
        "max_bps",
        "news_all",
        "news_topics",
        "rules",
        "streams",
        "strikes",
        "sub",
        "window",
    )

    def __init__(
        self,
        id: str,
        rules: SessionRules,
        now: float,
        entitled: frozenset[str] | None = None,
        binary: bool = False,
    ) -> None:
        self.id = id
        self.binary = binary
        self.fields: frozenset[str] | None = None  # the selected quote fields (None: all)
        self.max_bps = effective_bps(rules.bandwidth_bps, rules.max_bandwidth_bps)
        self.rules = rules
        self.entitled = entitled
        self.bucket = TokenBucket(rules.rate, rules.burst, now)
        self.strikes = 0  # messages over the rate in a row
        self.closed = False  # a Close was returned: nothing more is answered
        self.sub = Subscription()
        self.window = rules.default_window
        self.news_all = False
        self.news_topics: frozenset[str] = frozenset()
        self.streams: dict[tuple[str, str], BarStream] = {}  # (symbol, interval) -> stream

    # Public API

    def hello(self, known: Collection[str], news_last_id: int, server: str) -> Hello:
        """The ``hello`` to open with: only entitled symbols are listed."""
        return Hello(
            self.id,
            self.window,
            tuple(entitled_only(known, self.entitled)),
            news_last_id,
            server=server,
        )

    def receive(
        self,
        data: bytes | None,
        now: float,
        known: Collection[str],
        news: NewsRing,
        binary: bool = False,
    ) -> list[Output]:
        """Answer one inbound frame. Never raises for bad input.

        Args:
            data: the frame's payload (``None``: a binary frame, not given).
            now: the current time.
            known: the symbols the book knows, in the order they became known.
            news: the retained news (for the ids in a ``news`` ack).
            binary: ``data`` came in a binary frame (MessagePack, when the session takes it).
        """
        if data is None:
            binary, data = True, b""
        if self.closed:
            return []
        allowed = self.take(now)
        if isinstance(allowed, Close):
            return [allowed]
        if not allowed:
            rate = self.rules.rate
            return [_error("rate_limited", f"over {rate:g} messages/s; message dropped")]
        if binary and not self.binary:
            return [_error("bad_request", "binary frames are not accepted; send JSON text")]
        encoding = MSGPACK if binary else JSON
        req = encoding.parse(data, self.rules.max_symbols_per_request)
        if isinstance(req, ProtocolError):
            return [Send(req.to_message())]
        return self.handle(req, known, news)

    def handle(self, req: Request, known: Collection[str], news: NewsRing) -> list[Output]:
        """Answer one valid request (the rate was already charged)."""
        if isinstance(req, Subscribe):
            return self._subscribe(req, known)
        if isinstance(req, Unsubscribe):
            return self._unsubscribe(req, known)
        if isinstance(req, NewsRequest):
            return self._news(req, news)
        if isinstance(req, Throttle):
            return self._throttle(req, known)
        if isinstance(req, Resync):
            out: list[Output] = [] if req.id is None else [Send(Ack(req.id, {}))]
            out.append(Snapshot(tuple(self.sub.resolve(known))))
            return out
        if isinstance(req, BarsRequest):
            return self._bars(req, known)
        if isinstance(req, Fields):
            return self._fields(req, known)
        if isinstance(req, Unbars):
            self.streams.pop((req.symbol, req.interval), None)
            self.streams.pop((req.symbol.upper(), req.interval), None)
            ack = {"symbol": req.symbol, "interval": req.interval}
            return [] if req.id is None else [Send(Ack(req.id, ack))]
        assert isinstance(req, Ping)
        return [Send(Pong(req.t))]

    def wants_news(self, symbols: tuple[str, ...]) -> bool:
        """Whether a news item tagged with ``symbols`` is on this connection's topics (and, with
        entitlements, on an entitled symbol or on none: ``ticker.core.auth.news_visible``)."""
        if not (self.news_all or not self.news_topics.isdisjoint(symbols)):
            return False
        ent = self.entitled
        return ent is None or not symbols or not ent.isdisjoint(symbols)

    @property
    def listening(self) -> bool:
        """Whether any news topic is on."""
        return self.news_all or bool(self.news_topics)

    # Rate limit: every message, fragment, ping and unsolicited pong spends a token

    def take(self, now: float) -> bool | Close:
        """Spend one control-message token.

        Returns:
            True when there was one; False when over the rate (drop the message, or after a
            :class:`Close`: ignore it); the :class:`Close` (1008) on the strike past ``burst``
            messages over the rate in a row.
        """
        if self.closed:
            return False
        if self.bucket.take(now):
            self.strikes = 0
            return True
        self.strikes += 1
        if self.strikes > self.rules.burst:
            self.closed = True
            return Close(CLOSE_POLICY, "rate limit exceeded")
        return False

    def frame_budget(self, now: float) -> int:
        """How many frames may come in one read before the rate is certainly exceeded: the
        tokens, the strikes left before 1008, and a few pongs that spend none (answers to
        flow-control pings). The frame reader stops parsing past it."""
        strikes_left = max(0, int(self.rules.burst) - self.strikes)
        return int(self.bucket.available(now)) + strikes_left + FRAME_BUDGET_SLACK

    def spend(self, frames: int, now: float) -> Close | None:
        """Charge ``frames`` data frames that did not end a message (fragments spend a token
        each, like whole messages); the :class:`Close` if that crosses the limit."""
        for _ in range(frames):
            if self.closed:
                break
            verdict = self.take(now)
            if isinstance(verdict, Close):
                return verdict
        return None

    # Requests

    def _move(self, window: int, sub: Subscription, max_bps: int | None = None) -> list[Output]:
        bps = self.max_bps if max_bps is None else max_bps
        if window == self.window and sub == self.sub and bps == self.max_bps:
            return []
        self.window = window
        self.sub = sub
        self.max_bps = bps
        return [Move(window, sub, self.fields, bps)]

    def _fields(self, req: Fields, known: Collection[str]) -> list[Output]:
        fields = frozenset(req.fields) if req.fields else None
        changed = fields != self.fields
        out: list[Output] = []
        if changed:
            self.fields = fields
            out.append(Move(self.window, self.sub, fields, self.max_bps))
        if req.id is not None:
            out.append(Send(Ack(req.id, {"fields": list(req.fields)})))
        if changed and not self.sub.empty:
            # Newly selected fields are not in the client's copy yet: start again from a
            # snapshot in the new selection.
            out.append(Snapshot(tuple(self.sub.resolve(known))))
        return out

    def _over_limit(self, sub: Subscription, rid: RequestId) -> Send | None:
        """The ``too_many_symbols`` refusal of a subscription naming too many symbols: its
        symbols, or under ``"*"`` its exclusions (``"*"`` itself counts 0)."""
        cap = self.rules.max_symbols_per_connection
        if not cap or len(sub.symbols) <= cap:
            return None
        what = "unsubscribed symbols while on '*'" if sub.every else "symbols"
        return _error(
            "too_many_symbols",
            f"at most {cap} {what} per connection (this request would make "
            f"{len(sub.symbols)}); nothing was changed",
            rid,
        )

    def _subscribe(self, req: Subscribe, known_symbols: Collection[str]) -> list[Output]:
        known, unknown, star = _resolve(req.symbols, known_symbols)
        denied: list[str] = []
        ent = self.entitled
        if ent is None:
            sub = self.sub.add(known, star=star)
        else:
            # A known symbol is the book's own name: entitled only as that name (the token's
            # set holds each symbol as given and upper-cased). An unknown one is matched as
            # requests are, case-insensitively, only to tell `unauthorized` from unknown.
            denied = [s for s in known if s not in ent]
            known = [s for s in known if s in ent]
            unknown, denied_unknown = split_entitled(unknown, ent)
            denied += denied_unknown
            # Entitled "*" is every entitled symbol, current and future: an explicit set, so
            # the flush path needs no entitlement check.
            sub = Subscription(False, ent) if star else self.sub.add(known)
        if not (star and ent is not None):
            refusal = self._over_limit(sub, req.id)
            if refusal is not None:
                return [refusal]
        out = self._move(self.window, sub)
        if req.id is not None:
            out.append(Send(Ack(req.id, {"symbols": (["*"] if star else []) + known})))
        if denied:
            out.append(_naming("unauthorized", "not entitled to", denied, req.id))
        if unknown:
            out.append(_naming("unknown_symbol", "unknown symbols", unknown, req.id))
        if star or known:
            out.append(Snapshot(tuple(self.sub.resolve(known_symbols) if star else known)))
        return out

    def _throttle(self, req: Throttle, known: Collection[str]) -> list[Output]:
        ms = effective_window(req.ms, self.rules.max_throttle_ms)
        changed = ms != self.window
        bps = None
        if req.max_bps is not None:
            bps = effective_bps(req.max_bps, self.rules.max_bandwidth_bps)
        out = self._move(ms, self.sub, bps)
        if req.id is not None:
            ack: dict[str, Any] = {"ms": ms}
            if req.max_bps is not None or self.max_bps:
                ack["max_bps"] = self.max_bps
            out.append(Send(Ack(req.id, ack)))
        if changed and not self.sub.empty:
            # The new window's clients hold its state, not the old one's: start from a snapshot
            # of it so deltas apply cleanly.
            out.append(Snapshot(tuple(self.sub.resolve(known))))
        return out

    def _unsubscribe(self, req: Unsubscribe, known_symbols: Collection[str]) -> list[Output]:
        known, unknown, star = _resolve(req.symbols, known_symbols)
        sub = self.sub.remove(known + unknown, star=star)
        refusal = self._over_limit(sub, req.id)
        if refusal is not None:
            return [refusal]
        out = self._move(self.window, sub)
        if req.id is not None:
            out.append(Send(Ack(req.id, {"symbols": (["*"] if star else []) + known + unknown})))
        return out

    def _bars(self, req: BarsRequest, known_symbols: Collection[str]) -> list[Output]:
        known, unknown, _ = _resolve((req.symbol,), known_symbols)
        if unknown or not known:
            return [_naming("unknown_symbol", "unknown symbol", [req.symbol], req.id)]
        symbol = known[0]
        if self.entitled is not None and symbol not in self.entitled:
            return [_naming("unauthorized", "not entitled to", [symbol], req.id)]
        key = (symbol, req.interval)
        stream = None
        if req.live:
            cap = self.rules.max_bar_streams
            if key not in self.streams and len(self.streams) >= cap:
                return [
                    _error(
                        "too_many_symbols",
                        f"at most {cap} live bars streams per connection; "
                        "send unbars for one first (nothing was changed)",
                        req.id,
                    )
                ]
            stream = BarStream(symbol, req.interval, INTERVALS[req.interval], req.limit)
            self.streams[key] = stream
        return [Bars(replace(req, symbol=symbol), stream)]

    def _news(self, req: NewsRequest, news: NewsRing) -> list[Output]:
        topics = set(req.topics)
        shown = list(req.topics)
        denied: list[str] = []
        if self.entitled is not None:
            allowed, denied = split_entitled([t for t in shown if t != "*"], self.entitled)
            shown = ["*"] * ("*" in topics) + allowed
            topics = set(shown)
        self.news_all = "*" in topics
        topics.discard("*")
        self.news_topics = frozenset(topics | {t.upper() for t in topics})
        out: list[Output] = []
        if req.id is not None:
            fields: dict[str, Any] = {
                "topics": shown,
                "oldest_id": news.oldest_id,
                "last_id": news.last_id,
            }
            out.append(Send(Ack(req.id, fields)))
        if denied:
            text = f"not entitled to: {', '.join(denied[:10])}"
            out.append(_error("unauthorized", text, req.id, tuple(denied)))
        on = self.listening
        out.append(Listen(on, req.since if on else None))
        return out


def _resolve(
    symbols: tuple[str, ...], known_set: Collection[str]
) -> tuple[list[str], list[str], bool]:
    """Split requested symbols into (known, unknown, star); matches case-insensitively."""
    known: list[str] = []
    unknown: list[str] = []
    star = False
    for s in symbols:
        if s == "*":
            star = True
        elif s in known_set:
            known.append(s)
        elif s.upper() in known_set:
            known.append(s.upper())
        else:
            unknown.append(s)
    return list(dict.fromkeys(known)), unknown, star
