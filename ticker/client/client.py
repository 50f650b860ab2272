"""An asyncio client for a Ticker server: the merged book, news, bars as pandas, reconnects.

I/O shell (aiohttp's WebSocket client) around the pure :class:`~ticker.client.state.ClientState`.
One task reads the connection and, when it drops, reconnects with exponential backoff and jitter,
then asks again for everything the caller asked for (window, symbols, news topics ``since`` the
last item delivered), so nothing is missed or repeated. A ``seq`` gap is answered by a ``resync``.

Requests wait for their answer: each is sent with an ``id`` and followed by a ``ping``; the server
answers in order, so everything it says about the request (``ack``, ``error``) comes before the
``pong``. An ``error`` becomes a :class:`TickerError` raised by the call that caused it.

Importing this module pulls in aiohttp and nothing of the server; pandas loads on the first
:meth:`Client.frame` or :meth:`Client.bars`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import random
from collections import deque
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any

import aiohttp
import msgspec
import orjson

from ticker.client.state import ClientState, NewsEvent, QuoteEvent
from ticker.core.backoff import backoff_delay

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Client", "Event", "TickerError"]

log = logging.getLogger("ticker.client")

Event = QuoteEvent | NewsEvent
"""What iterating a :class:`Client` yields."""

JSON = "ticker.v1"
MSGPACK = "ticker.v1.msgpack"
_pack = msgspec.msgpack.Encoder().encode
_unpack = msgspec.msgpack.Decoder().decode


def _decode(msg: aiohttp.WSMessage) -> Any:
    """A text frame's JSON or a binary frame's MessagePack value; None for anything else."""
    try:
        if msg.type is aiohttp.WSMsgType.TEXT:
            return orjson.loads(msg.data)
        if msg.type is aiohttp.WSMsgType.BINARY:
            return _unpack(msg.data)
    except (orjson.JSONDecodeError, msgspec.DecodeError):
        pass
    return None


class TickerError(Exception):
    """The server refused (part of) a request: its ``error`` frame.

    Attributes:
        code: the error code (docs/protocol.md, "Errors"), e.g. ``unknown_symbol``.
        symbols: the symbols it names, if any.
        ack: the request's ``ack`` when part of it was applied (e.g. the known symbols of a
            ``subscribe`` that also named unknown ones), else None.
    """

    def __init__(
        self,
        code: str,
        message: str,
        symbols: Sequence[str] | None = None,
        ack: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.symbols = tuple(symbols or ())
        self.ack = ack


@dataclass
class _Pending:
    """A request waiting for the ``pong`` that follows everything the server says about it."""

    done: asyncio.Future[None]
    ack: dict[str, Any] | None = None
    errors: list[dict[str, Any]] = field(default_factory=list)
    bars_key: tuple[str, str] | None = None
    bars: list[list[float]] | None = None


class Client:
    """A connection to ``url`` (``ws://host:port/ws``) that stays up by itself.

    Args:
        url: the server's WebSocket URL.
        token: a client token (sent as ``Authorization: Bearer``), when the server needs one.
        reconnect: reconnect when the connection drops (the first connect must succeed).
        initial_backoff: the first reconnect delay, seconds (it doubles, with jitter).
        max_backoff: the largest reconnect delay, seconds.
        timeout: how long a request may wait for its answer, seconds.
        max_events: events kept for an iterator that is not reading (the oldest quote events
            are dropped past it, counted in ``dropped``; news is never dropped; the book is
            always current).
        encoding: ``auto`` (MessagePack when the server offers it: ``ticker.v1.msgpack``, else
            JSON), ``msgpack`` or ``json``. ``protocol`` tells which one the server picked.
    """

    def __init__(
        self,
        url: str,
        token: str | None = None,
        *,
        reconnect: bool = True,
        initial_backoff: float = 0.25,
        max_backoff: float = 5.0,
        timeout: float = 10.0,
        max_events: int = 10_000,
        rng: random.Random | None = None,
        encoding: str = "auto",
    ) -> None:
        if encoding not in ("auto", "msgpack", "json"):
            raise ValueError(f"encoding must be auto, msgpack or json, got {encoding!r}")
        self.encoding = encoding
        self.protocol: str | None = None  # the subprotocol the server picked
        self.url = url
        self.token = token
        self.reconnect = reconnect
        self.initial_backoff = initial_backoff
        self.max_backoff = max_backoff
        self.timeout = timeout
        self.max_events = max_events
        self.rng = rng or random.Random()
        self.state = ClientState()
        self.connects = 0
        self.dropped = 0
        self.hello: dict[str, Any] = {}
        self._ids = itertools.count(1)
        self._pending: dict[int, _Pending] = {}
        self._events: deque[Event] = deque()
        self._wake = asyncio.Event()
        self._up = asyncio.Event()
        self._closed = False
        self._session: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._task: asyncio.Task[None] | None = None
        # What to ask for again after a reconnect.
        self._symbols: dict[str, None] = {}
        self._topics: tuple[str, ...] | None = None
        self._window: float | None = None

    # Lifecycle

    async def __aenter__(self) -> Client:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def connect(self) -> None:
        """Open the connection (raises when the server cannot be reached or refuses it), then
        keep it up in the background."""
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else None
        self._session = aiohttp.ClientSession(headers=headers)
        try:
            await self._open()
        except BaseException:
            await self._session.close()
            raise
        self._task = asyncio.get_running_loop().create_task(self._run(), name="ticker-client")

    async def close(self) -> None:
        """Close the connection and stop reconnecting; iteration ends."""
        self._closed = True
        self._wake.set()
        if self._ws is not None:
            await self._ws.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._session is not None:
            await self._session.close()
        self._fail_pending(ConnectionError("client closed"))

    # The book

    @property
    def quotes(self) -> dict[str, dict[str, Any]]:
        """Symbol -> the merged quote, always current."""
        return self.state.quotes

    def frame(self) -> pd.DataFrame:
        """The current quotes as a DataFrame: one row per symbol (the index), a column per
        field (numbers as float64; ``ts`` also as a UTC ``time`` column)."""
        import pandas as pd

        df = pd.DataFrame.from_dict(self.state.quotes, orient="index")
        if df.empty:
            return df
        df = df.drop(columns=["symbol"], errors="ignore")
        df.index.name = "symbol"
        df = df.apply(pd.to_numeric, errors="coerce").astype("float64")
        if "ts" in df:
            df["time"] = pd.to_datetime(df["ts"], unit="ms", utc=True)
        out: pd.DataFrame = df.sort_index()
        return out

    # Requests

    async def subscribe(
        self, symbols: Iterable[str], throttle_ms: float | None = None
    ) -> list[str]:
        """Subscribe to ``symbols`` (``"*"``: all), optionally setting the window first.

        Returns:
            the symbols subscribed (the server's names).

        Raises:
            TickerError: some symbols are unknown or not entitled (the others are subscribed:
                ``ack``), or the request was refused whole (``too_many_symbols``).
        """
        if throttle_ms is not None:
            await self.throttle(throttle_ms)
        wanted = list(symbols)
        try:
            ack = await self._request({"op": "subscribe", "symbols": wanted})
        except TickerError as exc:
            if exc.ack is not None:
                self._symbols.update(dict.fromkeys(exc.ack.get("symbols", [])))
            raise
        got: list[str] = ack.get("symbols", [])
        self._symbols.update(dict.fromkeys(got))
        return got

    async def unsubscribe(self, symbols: Iterable[str]) -> None:
        """Stop receiving ``symbols``."""
        names = list(symbols)
        await self._request({"op": "unsubscribe", "symbols": names})
        for s in names:
            self._symbols.pop(s, None)
        if "*" in names:
            self._symbols.clear()

    async def news(self, topics: Iterable[str], since: int | None = None) -> dict[str, Any]:
        """Receive news on ``topics`` (symbols, or ``"*"``); with ``since``, first every retained
        item after that id. Returns the ``ack`` (``oldest_id``, ``last_id``)."""
        self._topics = tuple(topics)
        req: dict[str, Any] = {"op": "news", "topics": list(self._topics)}
        start = since if since is not None else self.state.news_last_id
        if start is not None:
            req["since"] = start
        return await self._request(req)

    async def throttle(self, ms: float) -> float:
        """Set the window (ms; 0 = every update). Returns the effective window."""
        ack = await self._request({"op": "throttle", "ms": ms})
        self._window = float(ack.get("ms", ms))
        return self._window

    async def bars(
        self, symbol: str, interval: str = "1m", limit: int = 500, before: float | None = None
    ) -> pd.DataFrame:
        """OHLCV bars of ``symbol``: a DataFrame with columns open, high, low, close, volume
        (float64) and a UTC DatetimeIndex ``t`` (each bar's open time, market clock).

        Raises:
            TickerError: ``bad_interval``, ``unknown_symbol``, ``unauthorized``.
        """
        import pandas as pd

        req: dict[str, Any] = {
            "op": "bars",
            "symbol": symbol,
            "interval": interval,
            "limit": limit,
            "live": False,
        }
        if before is not None:
            req["before"] = before
        pending = await self._request(req, bars=True)
        rows = pending.get("bars") or []
        df = pd.DataFrame(rows, columns=["t", "open", "high", "low", "close", "volume"])
        df = df.astype("float64")
        df.index = pd.DatetimeIndex(pd.to_datetime(df.pop("t"), unit="ms", utc=True), name="t")
        return df

    async def _request(self, req: dict[str, Any], *, bars: bool = False) -> dict[str, Any]:
        """Send ``req`` with an id, then a ping; wait for the pong. Returns the ack's fields
        (and ``bars`` for a bars request); raises the first ``error`` about it."""
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(self.timeout):
            await self._up.wait()
            rid = next(self._ids)
            pending = _Pending(loop.create_future())
            if bars:
                pending.bars_key = (req["symbol"], req["interval"])
            self._pending[rid] = pending
            try:
                await self._send({**req, "id": rid})
                await self._send({"op": "ping", "t": rid})
                await pending.done
            finally:
                self._pending.pop(rid, None)
        ack = dict(pending.ack or {})
        if pending.errors:
            e = pending.errors[0]
            raise TickerError(
                str(e.get("code")), str(e.get("message")), e.get("symbols"), pending.ack
            )
        if bars:
            ack["bars"] = pending.bars
        return ack

    async def _send(self, obj: dict[str, Any]) -> None:
        ws = self._ws
        if ws is None or ws.closed:
            raise ConnectionError("not connected")
        if self.protocol == MSGPACK:
            await ws.send_bytes(_pack(obj))
        else:
            await ws.send_str(orjson.dumps(obj).decode())

    # Events

    def __aiter__(self) -> AsyncIterator[Event]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Event]:
        while True:
            while self._events:
                yield self._events.popleft()
            if self._closed:
                return
            self._wake.clear()
            await self._wake.wait()

    def _emit(self, events: list[QuoteEvent | NewsEvent]) -> None:
        q = self._events
        q.extend(events)
        excess = len(q) - self.max_events
        if excess > 0:  # a reader that is not reading: drop the oldest quote events
            kept = [e for e in q if isinstance(e, NewsEvent) or (excess := excess - 1) < 0]
            self.dropped += len(q) - len(kept)
            q.clear()
            q.extend(kept)
        self._wake.set()

    # The connection

    async def _open(self) -> None:
        assert self._session is not None
        offer = {"auto": (MSGPACK, JSON), "msgpack": (MSGPACK,), "json": (JSON,)}[self.encoding]
        self._ws = await self._session.ws_connect(self.url, heartbeat=15.0, protocols=offer)
        self.protocol = self._ws.protocol or JSON  # (no header: the v1 default, JSON)
        self.state.connected()
        self.connects += 1
        first = _decode(await self._ws.receive(timeout=self.timeout))
        if not isinstance(first, dict) or first.get("type") != "hello":
            raise ConnectionError(f"no hello from {self.url}")
        self.hello = first
        self._up.set()

    async def _restore(self) -> None:
        """After a reconnect: the window, the symbols and the news topics again (news from the
        last item delivered)."""
        if self._window is not None:
            await self.throttle(self._window)
        if self._symbols:
            with contextlib.suppress(TickerError):  # (a symbol gone after a restart)
                await self.subscribe(list(self._symbols))
        if self._topics is not None:
            await self.news(self._topics)

    async def _run(self) -> None:
        attempt = 0
        first = True
        while not self._closed:
            if not first:
                try:
                    await self._open()
                except (aiohttp.ClientError, OSError, TimeoutError, ConnectionError) as exc:
                    log.info("ticker client: reconnect failed: %s", exc)
                    await self._backoff(attempt)
                    attempt += 1
                    continue
                restore = asyncio.get_running_loop().create_task(self._restore())
            else:
                restore = None
            first = False
            attempt = 0
            await self._read()
            if restore is not None and not restore.done():
                restore.cancel()
            self._up.clear()
            self._fail_pending(ConnectionError("connection lost"))
            if not self.reconnect:
                self._closed = True
                self._wake.set()
                return
            await self._backoff(attempt)
            attempt += 1

    async def _backoff(self, attempt: int) -> None:
        delay = backoff_delay(
            attempt, initial=self.initial_backoff, maximum=self.max_backoff, rng=self.rng
        )
        await asyncio.sleep(delay)

    async def _read(self) -> None:
        ws = self._ws
        assert ws is not None
        async for msg in ws:
            frame = _decode(msg)
            if isinstance(frame, dict):
                await self._on_frame(frame)

    async def _on_frame(self, frame: dict[str, Any]) -> None:
        kind = frame.get("type")
        if kind in ("snapshot", "delta", "news"):
            events, resync = self.state.apply(frame)
            if events:
                self._emit(events)
            if resync:
                with contextlib.suppress(ConnectionError):
                    await self._send({"op": "resync"})
        elif kind == "ack" or kind == "error":
            p = self._pending.get(frame.get("id"))  # type: ignore[arg-type]
            if p is not None:
                if kind == "ack":
                    p.ack = {k: v for k, v in frame.items() if k not in ("type", "id")}
                else:
                    p.errors.append(frame)
            elif kind == "error":
                log.warning("ticker client: %s: %s", frame.get("code"), frame.get("message"))
        elif kind == "pong":
            p = self._pending.get(frame.get("t"))  # type: ignore[arg-type]
            if p is not None and not p.done.done():
                p.done.set_result(None)
        elif kind == "bars":  # the answer of the bars request whose ack names it
            key = (frame.get("symbol"), frame.get("interval"))
            for p in self._pending.values():
                if p.bars_key is not None and p.bars is None and p.ack is not None:
                    if (p.ack.get("symbol"), p.ack.get("interval")) == key:
                        p.bars = frame.get("bars") or []
                        break
        elif kind == "hello":
            self.hello = frame

    def _fail_pending(self, exc: Exception) -> None:
        for p in self._pending.values():
            if not p.done.done():
                p.done.set_exception(exc)
