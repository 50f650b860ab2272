"""Feeds layer tests: the alpaca adapter against Alpaca's documented messages, on loopback."""

from __future__ import annotations

import asyncio
import calendar
import json
from pathlib import Path
from typing import Any, TypeVar

import pytest
from aiohttp import WSCloseCode, web
from hypothesis import given, settings, strategies as st

from tests.upstream.local import LocalServer
from tests.wsutil import until
from ticker.core.events import Bar, Event, Listing, News, Tick
from ticker_feeds.alpaca import AlpacaCodec, AlpacaFeed, rfc3339_ms
from ticker_feeds.testing import check_event, check_feed

__all__: list[str] = []

KEY = "PKTESTKEY0123456789"
SECRET = "sekrit/Secret+abc987"
ENV = {"key_env": "TEST_APCA_KEY", "secret_env": "TEST_APCA_SECRET"}
E = TypeVar("E", Tick, News, Bar)
BAR_TIME = "2021-02-22T15:52:00Z"  # the documented bar has t = null (msgpack in the real stream)


def _samples(real_data: Path) -> dict[str, str]:
    """Alpaca's documented messages by channel (``trades``, ``quotes``, ``news``, ...)."""
    out = {}
    for line in (real_data / "ws" / "single_message_samples.jsonl").read_text().splitlines():
        d = json.loads(line)
        if d["provider"] == "alpaca":
            words = d["channel"].split()
            kind = next(
                w for w in ("trades", "quotes", "bar", "news", "messages", "error") if w in words
            )
            out[kind] = d["raw"]
    return out


def _bar_frame(s: dict[str, str]) -> str:
    return json.dumps([{**json.loads(s["bar"]), "t": BAR_TIME}])


def _only(kind: type[E], events: list[Event]) -> E:
    """The one event in ``events``, of type ``kind``."""
    assert len(events) == 1 and isinstance(events[0], kind), events
    return events[0]


def _ms(y: int, mo: int, d: int, h: int, mi: int, sec: int, frac_ms: float = 0.0) -> float:
    return calendar.timegm((y, mo, d, h, mi, sec, 0, 0, 0)) * 1000.0 + frac_ms


TRADE = Tick("AAPL", 126.55, _ms(2021, 2, 22, 15, 51, 44, 208.0), size=1.0)
QUOTE = Tick("AMD", 87.67, _ms(2021, 2, 22, 15, 51, 45, 335.689322), bid=87.66, ask=87.68)
BAR = Bar("AAPL", _ms(2021, 2, 22, 15, 52, 0), "1m", 177.94, 178.005, 177.94, 178.005, 8547.0)


class AlpacaServer(LocalServer):
    """Alpaca's documented session on loopback, one connection after another.

    Each connection: authenticate with the handshake's ``APCA-API-KEY-ID``/``APCA-API-SECRET-KEY``
    headers when given (then send the welcome, ``connected``, and ``authenticated`` at once), or
    else send the welcome and read an auth message, answering ``authenticated`` after
    ``auth_delay`` seconds; the first ``fail_auth`` connections (or wrong credentials) get error
    402 and are closed. A subscribe before ``authenticated`` gets error 401 and is closed, as
    Alpaca does. A subscribe is acknowledged with a ``subscription`` message, then ``data``
    frames are sent from where the previous connection stopped; the first connection is dropped
    after ``drop_after``.
    """

    def __init__(
        self,
        welcome: str,
        data: list[str],
        *,
        fail_auth: int = 0,
        drop_after: int | None = None,
        auth_delay: float = 0.0,
    ) -> None:
        self.welcome = welcome
        self.data = data
        self.fail_auth = fail_auth
        self.drop_after = drop_after
        self.auth_delay = auth_delay
        self.received: list[list[Any]] = []  # per connection, decoded client messages
        self.auth_headers: list[tuple[str | None, str | None]] = []  # per connection
        self.position = 0

    async def _authenticate(self, request: web.Request, ws: web.WebSocketResponse, n: int) -> bool:
        got = self.received[-1]
        key = request.headers.get("APCA-API-KEY-ID")
        secret = request.headers.get("APCA-API-SECRET-KEY")
        self.auth_headers.append((key, secret))
        await ws.send_str(self.welcome)
        if key is not None:
            ok = (key, secret) == (KEY, SECRET)
        else:
            auth = json.loads((await ws.receive(timeout=5)).data)
            got.append(auth)
            ok = auth == {"action": "auth", "key": KEY, "secret": SECRET}
            if ok and n > self.fail_auth and self.auth_delay:
                try:  # anything sent before the reply is a subscribe before authentication
                    early = await ws.receive(timeout=self.auth_delay)
                except TimeoutError:
                    pass
                else:
                    got.append(json.loads(early.data))
                    await ws.send_str('[{"T":"error","code":401,"msg":"not authenticated"}]')
                    await ws.close()
                    return False
        if n <= self.fail_auth or not ok:
            await ws.send_str('[{"T":"error","code":402,"msg":"auth failed"}]')
            await ws.close()
            return False
        await ws.send_str('[{"T":"success","msg":"authenticated"}]')
        return True

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        got: list[Any] = []
        self.received.append(got)
        n = len(self.received)
        if not await self._authenticate(request, ws, n):
            return ws
        sub = json.loads((await ws.receive(timeout=5)).data)
        got.append(sub)
        chans = ("trades", "quotes", "bars", "news")
        ack = {"T": "subscription", **{c: sub.get(c, []) for c in chans}}
        await ws.send_str(json.dumps([ack]))
        sent = 0
        while self.position < len(self.data):
            if n == 1 and self.drop_after is not None and sent >= self.drop_after:
                await ws.close(code=WSCloseCode.GOING_AWAY)  # mid-stream drop
                return ws
            await ws.send_str(self.data[self.position])
            self.position += 1
            sent += 1
        async for later in ws:  # hold the link open until the client leaves
            got.append(later.data)
        return ws

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/{tail:.*}", self._handle)

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/v2/iex"


@pytest.fixture
def keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_APCA_KEY", KEY)
    monkeypatch.setenv("TEST_APCA_SECRET", SECRET)


async def _collect(feed: AlpacaFeed, n: int, kind: type | tuple[type, ...] = Tick) -> list[Any]:
    out: list[Any] = []
    agen = feed.events()
    try:
        async with asyncio.timeout(10):
            async for ev in agen:
                assert check_event(ev) == []
                if isinstance(ev, kind):
                    out.append(ev)
                    if len(out) == n:
                        break
    finally:
        await agen.aclose()  # type: ignore[attr-defined]
        await feed.aclose()
    return out


# --- pure: the codec and the time parser ---------------------------------------------------------


def test_documented_data_messages_map_onto_ticks(real_data: Path) -> None:
    s = _samples(real_data)
    codec = AlpacaCodec(["AAPL", "AMD"], ("trades", "quotes", "bars"), KEY, SECRET)
    assert codec.handle(s["trades"], 1.7e12) == [TRADE]
    assert codec.handle(s["quotes"], 1.7e12) == [QUOTE]  # no AMD trade yet: the mid
    assert codec.handle(_bar_frame(s), 1.7e12) == [BAR]
    # A quote for a symbol that has traded keeps the last trade price; bid/ask are the quote's.
    aapl_quote = s["quotes"].replace('"AMD"', '"AAPL"')
    q = _only(Tick, codec.handle(aapl_quote, 1.7e12))
    assert (q.price, q.bid, q.ask) == (126.55, 87.66, 87.68)
    # The documented bar as given (t null, not wrapped in an array) has no time: counted, skipped.
    assert codec.handle(s["bar"], 1.7e12) == []
    assert codec.counters["garbage"] == 1 and "bad bar" in str(codec.last_problem)
    assert (codec.counters["trades"], codec.counters["quotes"], codec.counters["bars"]) == (1, 2, 1)
    assert codec.clock.stale(1.7e12, 60) == []  # both symbols updated


def test_minute_bars_are_bars_and_corrections_are_counted_not_applied(real_data: Path) -> None:
    codec = AlpacaCodec(["AAPL"], ("bars",), KEY, SECRET)
    bar = _only(Bar, codec.handle(_bar_frame(_samples(real_data)), 1.7e12))
    assert bar == BAR and check_event(bar) == []  # ts: the minute's start; the close is close
    item = {**json.loads(_bar_frame(_samples(real_data)))[0], "T": "u", "c": 178.1, "h": 178.1}
    assert codec.handle(json.dumps([item]), 1.7e12) == []  # a correction of a bar already sent
    later = {**item, "t": "2021-02-22T15:53:00Z"}
    upd = _only(Bar, codec.handle(json.dumps([later]), 1.7e12))  # an updated bar, newer: sent
    assert (upd.ts - bar.ts, upd.close, upd.interval) == (60_000.0, 178.1, "1m")
    odd = {**later, "t": "2021-02-22T15:54:30Z"}  # not a minute's start
    assert codec.handle(json.dumps([odd]), 1.7e12) == []
    assert (codec.counters["bars"], codec.counters["bar_corrections"]) == (2, 1)
    assert codec.counters["garbage"] == 1


def test_control_messages_track_the_session_and_never_make_events(real_data: Path) -> None:
    s = _samples(real_data)
    reasons: list[str] = []
    codec = AlpacaCodec(["AAPL"], ("trades",), KEY, SECRET, reasons.append)
    [sub] = codec.subscribe_messages()  # the handshake's headers authenticate: no auth message
    assert json.loads(sub) == {"action": "subscribe", "trades": ["AAPL"]}
    assert codec.headers == {"APCA-API-KEY-ID": KEY, "APCA-API-SECRET-KEY": SECRET}
    assert [codec.handle(s["messages"], 1.7e12), codec.authenticated] == [[], False]  # connected
    assert codec.handle('[{"T":"success","msg":"authenticated"}]', 1.7e12) == []
    assert codec.authenticated
    ack = '[{"T":"subscription","trades":["AAPL"],"quotes":[],"bars":[]}]'
    assert codec.handle(ack, 1.7e12) == []
    assert codec.subscribed == {"trades": ["AAPL"]}
    assert codec.handle(s["error"], 1.7e12) == []  # 406 connection limit exceeded: ends the session
    assert reasons == ["error 406: connection limit exceeded"]
    assert (codec.counters["errors"], codec.counters["auth_failures"]) == (1, 0)
    assert codec.handle('[{"T":"error","code":405,"msg":"symbol limit exceeded"}]', 1.7e12) == []
    assert len(reasons) == 1  # not session-ending: counted only
    codec.handle('[{"T":"error","code":402,"msg":"auth failed"}]', 1.7e12)
    assert codec.counters["auth_failures"] == 1 and codec.fatal_code == 402
    assert codec.counters["garbage"] == 0
    codec.subscribe_messages()  # a new connection starts a new session
    state: dict[str, object] = {"authenticated": codec.authenticated, "fatal": codec.fatal_code}
    assert state == {"authenticated": False, "fatal": None} and codec.subscribed == {}


@pytest.mark.parametrize(
    ("code", "msg", "ends_session"),
    [  # Alpaca's documented error table for the market data stream
        (400, "invalid syntax", False),
        (401, "not authenticated", True),
        (402, "auth failed", True),
        (403, "already authenticated", False),
        (404, "auth timeout", True),
        (405, "symbol limit exceeded", False),
        (406, "connection limit exceeded", True),
        (407, "slow client", True),
        (409, "insufficient subscription", True),
        (410, "invalid subscribe action", True),
        (500, "internal error", False),
    ],
)
def test_documented_errors_end_the_session_or_are_counted(
    code: int, msg: str, ends_session: bool
) -> None:
    reasons: list[str] = []
    codec = AlpacaCodec(["AAPL"], ("trades",), KEY, SECRET, reasons.append)
    frame = json.dumps([{"T": "error", "code": code, "msg": msg}])
    assert codec.handle(frame, 1.7e12) == []
    assert reasons == ([f"error {code}: {msg}"] if ends_session else [])
    assert (codec.counters["errors"], codec.counters["garbage"]) == (1, 0)
    assert codec.counters["auth_failures"] == (code in (401, 402, 404))


def test_documented_news_and_its_updates(real_data: Path) -> None:
    raw = _samples(real_data)["news"]
    codec = AlpacaCodec(["*"], ("news",), KEY, SECRET)
    n = _only(News, codec.handle(raw, 1.7e12))
    assert n.headline.startswith("Corsair Reports Purchase Of Majority Ownership In iDisplay")
    assert n.ts == _ms(2022, 1, 5, 22, 0, 37)
    assert (n.source, n.symbols) == ("alpaca/benzinga", ("CRSR",))  # source, not the author
    assert n.url is not None and n.url.startswith("https://www.benzinga.com/m-a/22/01/24918784/")
    assert n.summary is not None and n.summary.startswith("Corsair Gaming, Inc. (NASDAQ:CRSR)")
    assert codec.handle(raw, 1.7e12) == []  # the same id again is an update, not new news
    item = json.loads(raw)[0]
    item.update(id=1, headline="<b>Big</b> &amp; bold", summary="<p>A <a href='x'>link</a></p>")
    h = _only(News, codec.handle(json.dumps([item]), 1.7e12))
    assert (h.headline, h.summary) == ("Big & bold", "A link")
    assert (codec.counters["news"], codec.counters["news_updates"]) == (2, 1)
    assert codec.clock.expected == ()  # news alone: no symbol can go stale


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("2021-02-22T15:51:45.335689322Z", _ms(2021, 2, 22, 15, 51, 45, 335.689322)),
        ("2021-02-22T15:51:44.208Z", _ms(2021, 2, 22, 15, 51, 44, 208.0)),
        ("2022-01-05T22:00:37Z", _ms(2022, 1, 5, 22, 0, 37)),
        ("2022-01-05T17:00:37-05:00", _ms(2022, 1, 5, 22, 0, 37)),
        ("2022-01-05T23:30:37.5+01:30", _ms(2022, 1, 5, 22, 0, 37, 500.0)),
        ("2022-13-05T22:00:37Z", None),
        ("2022-01-05T22:00:37", None),  # no zone: ambiguous
        ("2022-01-05T22:00:37.1234567890Z", None),
        (1641420037000, None),
        (None, None),
    ],
)
def test_rfc3339_times(text: Any, ms: float | None) -> None:
    got = rfc3339_ms(text)
    assert got == ms if ms is None else got == pytest.approx(ms, abs=1e-6)


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=3), c, max_size=5),
    max_leaves=20,
)
_field = st.sampled_from(
    [
        *("S", "p", "s", "t", "bp", "ap", "c", "v", "id", "headline", "summary", "url"),
        *("symbols", "created_at", "author", "code", "msg", "trades"),
    ]
)
_value = _json | st.sampled_from(["AAPL", "2021-02-22T15:51:44.208Z", 126.55, 0, -1.0, "<b>x</b>"])
_msg = st.builds(
    lambda t, d: {"T": t, **d},
    st.sampled_from(["t", "q", "b", "u", "n", "success", "subscription", "error", "s", "zz"]),
    st.dictionaries(_field, _value, max_size=8),
)


@settings(max_examples=400, deadline=None)
@given(_json | st.lists(_msg, max_size=4) | _msg)
def test_arbitrary_frames_never_raise(msg: Any) -> None:
    codec = AlpacaCodec(["AAPL"], ("trades", "quotes", "bars"), KEY, SECRET, lambda _: None)
    for ev in codec.handle(json.dumps(msg), 1.7e12):
        assert check_event(ev) == []
    news = AlpacaCodec(["*"], ("news",), KEY, SECRET)
    for ev in news.handle(json.dumps(msg), 1.7e12):
        assert check_event(ev) == []


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=60))
def test_arbitrary_text_never_raises(text: str) -> None:
    codec = AlpacaCodec(["AAPL"], ("trades",), KEY, SECRET)
    for ev in codec.handle(text, 1.7e12):
        assert check_event(ev) == []


# --- I/O: the feed against the loopback server ---------------------------------------------------


async def test_subscribe_never_races_authentication(real_data: Path, keys: None) -> None:
    # The server takes 0.5 s to authenticate a message auth; a subscribe before that is its
    # error 401, which ends the session. The handshake's headers authenticate before any message.
    s = _samples(real_data)
    async with AlpacaServer(s["messages"], [s["trades"]], auth_delay=0.5) as server:
        feed = AlpacaFeed({"url": server.url, "backoff": "0.01", "channels": "trades", **ENV})
        ticks = await _collect(feed, 1)
    assert ticks == [TRADE]
    h = feed.health()
    assert (h["errors"], h["connects"], h["authenticated"]) == (0, 1, True)
    assert server.received == [[{"action": "subscribe", "trades": ["AAPL"]}]]


async def test_documented_session_over_a_drop_reauths_and_resubscribes_secrets_never_logged(
    real_data: Path, keys: None, caplog: pytest.LogCaptureFixture
) -> None:
    s = _samples(real_data)
    data = [s["trades"], s["quotes"], "garbage{", _bar_frame(s)]
    async with AlpacaServer(s["messages"], data, drop_after=2) as server:
        feed = AlpacaFeed(
            {
                "symbols": "AAPL+AMD+MSFT",
                "channels": "trades+quotes+bars",
                "url": server.url,
                "backoff": "0.01",
                **ENV,
            }
        )
        ticks = await _collect(feed, 3, (Tick, Bar))
    assert ticks == [TRADE, QUOTE, BAR]
    syms = ["AAPL", "AMD", "MSFT"]
    sub = {"action": "subscribe", "trades": syms, "quotes": syms, "bars": syms}
    assert server.received[:2] == [[sub], [sub]]  # dropped, then subscribed again
    assert server.auth_headers[:2] == [(KEY, SECRET)] * 2  # authenticated by the handshake
    h = feed.health()
    assert (h["connects"], h["reconnects"], h["garbage"], h["subscription_acks"]) == (2, 1, 1, 2)
    assert h["authenticated"] is True and h["subscribed"]["bars"] == syms
    assert "garbage{" in h["last_problem"]
    assert h["stale"] == ["MSFT"]  # never updated; AAPL and AMD just were
    assert h["auth_failures"] == 0 and "closed by upstream" in caplog.text  # the drop was logged
    shown = caplog.text + json.dumps(h) + repr(feed)
    assert KEY not in shown and SECRET not in shown


async def test_auth_error_is_counted_reported_and_retried_with_growing_backoff(
    real_data: Path, keys: None, caplog: pytest.LogCaptureFixture
) -> None:
    s = _samples(real_data)
    async with AlpacaServer(s["messages"], [s["trades"]], fail_auth=3) as server:
        feed = AlpacaFeed({"url": server.url, "backoff": "0.01", "channels": "trades", **ENV})
        ticks = await _collect(feed, 1)
    assert ticks == [TRADE]
    assert server.auth_headers == [(KEY, SECRET)] * 4  # 3 x 402, then ok
    h = feed.health()
    assert (h["auth_failures"], h["errors"], h["connects"], h["reconnects"]) == (3, 3, 4, 3)
    assert 0.02 <= h["retry_in_s"] <= 0.04  # the 3rd failure in a row: 0.01 * 2**2, jittered
    assert h["last_problem"] == "error 402: auth failed" and h["authenticated"] is True
    assert caplog.text.count("auth failed") >= 3
    shown = caplog.text + json.dumps(h) + repr(feed)
    assert KEY not in shown and SECRET not in shown


async def test_status_shows_the_auth_failure_while_backing_off_and_close_is_prompt(
    real_data: Path, keys: None
) -> None:
    s = _samples(real_data)
    async with AlpacaServer(s["messages"], [s["trades"]], fail_auth=1) as server:
        feed = AlpacaFeed({"url": server.url, "backoff": "20", **ENV})
        got: list[Any] = []

        async def run() -> None:
            async for ev in feed.events():
                got.append(ev)

        task = asyncio.create_task(run())
        await until(lambda: feed.status() == "auth-failed", 5, "the 402 to be reported")
        h = feed.health()
        assert h["retry_in_s"] >= 10 and h["auth_failures"] == 1
        assert h["last_error"] == "error 402: auth failed" and h["authenticated"] is False
        assert len(server.received) == 1  # waiting out the backoff, not hammering the upstream
        await feed.aclose()
        async with asyncio.timeout(2):
            await task
    assert feed.status() == "stopped" and got == [Listing(("AAPL",))]


async def test_news_stream_over_loopback(real_data: Path, keys: None) -> None:
    s = _samples(real_data)
    async with AlpacaServer(s["messages"], [s["news"], s["news"]]) as server:
        feed = AlpacaFeed({"url": server.url, "channels": "news", "symbols": "*", **ENV})
        news = await _collect(feed, 1, News)
    assert [n.symbols for n in news] == [("CRSR",)]
    assert server.received[0][0] == {"action": "subscribe", "news": ["*"]}
    assert feed.health()["subscribed"] == {"news": ["*"]}


async def test_alpaca_conforms(real_data: Path, keys: None) -> None:
    s = _samples(real_data)
    async with AlpacaServer(s["messages"], [s["trades"], s["quotes"]]) as server:
        events = await check_feed(
            AlpacaFeed,
            {"url": server.url, "symbols": "AAPL+AMD", **ENV},
            min_events=3,
            max_events=3,
        )
    assert events == [Listing(("AAPL", "AMD")), TRADE, QUOTE]


def test_missing_keys_and_bad_channels_are_one_line_errors(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("APCA_API_KEY_ID", KEY)
    monkeypatch.delenv("APCA_API_SECRET_KEY", raising=False)
    with pytest.raises(ValueError, match=r"\$APCA_API_KEY_ID and its secret in \$APCA_API_SECRET"):
        AlpacaFeed({})
    monkeypatch.setenv("APCA_API_SECRET_KEY", SECRET)
    with pytest.raises(ValueError, match="news is on its own endpoint"):
        AlpacaFeed({"channels": "trades+news"})
    with pytest.raises(ValueError, match="channels must be"):
        AlpacaFeed({"channels": "orderbooks"})
    assert AlpacaFeed({"channels": "news"}).config.url.endswith("/v1beta1/news")
    assert AlpacaFeed({}).config.url == "wss://stream.data.alpaca.markets/v2/iex"
