"""ticker.client against real servers: the merged book, pandas shapes, errors as exceptions,
resync after a seq gap, resume across a restart with no news missed or doubled; the pure state
with hypothesis; and ``ticker watch`` in a pseudo-terminal and piped."""

from __future__ import annotations

import asyncio
import os
import pty
import select
import signal
import subprocess
import sys
import time
from typing import Any

import pandas as pd
import pytest
from hypothesis import given, strategies as st
from pytest_aiohttp import AiohttpClient

from tests.conftest import ROOT, ServerProcess
from tests.wsutil import Server, now_ms, tick, until
from ticker.client import Client, NewsEvent, QuoteEvent, SyncClient, TickerError
from ticker.client.state import ClientState
from ticker.core.events import Bar, Listing, News

T0 = 1_700_006_400_000.0


def opening() -> list[Any]:
    return [
        Listing(("AAPL", "MSFT", "IDLE")),
        tick("AAPL", 100.0, bid=99.9, ask=100.1, size=10.0, prev_close=98.0),
        tick("MSFT", 200.0, size=5.0),
    ]


def ws_url(srv: Server) -> str:
    return str(srv.client.make_url("/ws"))


@pytest.mark.parametrize("encoding", ["auto", "json"])
async def test_the_merged_book_equals_the_servers_quotes(
    aiohttp_client: AiohttpClient, encoding: str
) -> None:
    srv = await Server.start(aiohttp_client, opening())
    async with Client(ws_url(srv), encoding=encoding) as c:
        # MessagePack when the server offers it (it does), JSON when asked.
        assert c.protocol == ("ticker.v1.msgpack" if encoding == "auto" else "ticker.v1")
        assert await c.subscribe(["AAPL", "msft"], throttle_ms=0) == ["AAPL", "MSFT"]
        for i in range(50):
            await srv.push(tick("AAPL", 100.0 + i * 0.25, size=1.0), tick("MSFT", 200.0 - i))
        await srv.push(tick("AAPL", 123.0, bid=122.9, ask=123.1, size=3.0))
        resp = await srv.client.get("/api/quotes")
        want = (await resp.json())["quotes"]
        await until(lambda: c.quotes.get("AAPL", {}).get("price") == 123.0, what="last tick")
        await until(lambda: c.quotes.get("MSFT", {}).get("price") == 151.0, what="MSFT")
        for sym in ("AAPL", "MSFT"):
            assert c.quotes[sym] == want[sym], sym
        df = c.frame()
        assert list(df.index) == ["AAPL", "MSFT"] and df.index.name == "symbol"
        assert df.loc["AAPL", "price"] == 123.0 and df["price"].dtype == "float64"
        assert str(df["time"].dtype) == "datetime64[ns, UTC]"
        seen = [e async for e in _take(c, 3)]
        assert seen and all(isinstance(e, QuoteEvent) for e in seen)


async def _take(c: Client, n: int) -> Any:
    k = 0
    async for ev in c:
        yield ev
        k += 1
        if k >= n:
            return


async def test_bars_are_a_dataframe_with_a_utc_index(aiohttp_client: AiohttpClient) -> None:
    srv = await Server.start(aiohttp_client, opening())
    rows = [(T0 + i * 60_000, 10.0 + i, 12.0 + i, 9.0 + i, 11.0 + i, 100.0) for i in range(5)]
    await srv.push(*(Bar("IDLE", r[0], "1m", *r[1:]) for r in rows))
    async with Client(ws_url(srv)) as c:
        df = await c.bars("idle", "1min", limit=3)
        assert list(df.columns) == ["open", "high", "low", "close", "volume"]
        assert all(str(t) == "float64" for t in df.dtypes)
        assert isinstance(df.index, pd.DatetimeIndex) and str(df.index.tz) == "UTC"
        assert df.index[0] == pd.Timestamp(rows[2][0], unit="ms", tz="UTC")
        assert df["close"].tolist() == [13.0, 14.0, 15.0]
        five = await c.bars("IDLE", "5m")
        assert len(five) == 1 and five["high"].iloc[0] == 16.0
        with pytest.raises(TickerError) as err:
            await c.bars("IDLE", "1s")
        assert err.value.code == "bad_interval"


async def test_errors_are_raised_by_the_call_that_caused_them(
    aiohttp_client: AiohttpClient,
) -> None:
    srv = await Server.start(aiohttp_client, opening())
    async with Client(ws_url(srv)) as c:
        with pytest.raises(TickerError) as err:
            await c.subscribe(["AAPL", "NOPE"])
        assert err.value.code == "unknown_symbol" and err.value.symbols == ("NOPE",)
        assert err.value.ack == {"symbols": ["AAPL"]}  # the known one is subscribed
        await until(lambda: "AAPL" in c.quotes, what="AAPL's snapshot")
        with pytest.raises(TickerError, match="bad_interval"):
            await c.bars("AAPL", "7m")
        assert await c.throttle(333) == 330  # quantized by the server
        # The connection is still fine.
        await c.news(["*"])
        await srv.push(News("after errors", now_ms(), "t", ("AAPL",)))
        item = await anext(e async for e in c if isinstance(e, NewsEvent))
        assert item.headline == "after errors"


async def test_a_seq_gap_is_resynced(aiohttp_client: AiohttpClient) -> None:
    srv = await Server.start(aiohttp_client, opening())
    async with Client(ws_url(srv)) as c:
        await c.subscribe(["AAPL"], throttle_ms=0)
        await until(lambda: c.state.seq >= 1)
        # A delta that skips a number (as after a lost frame): the client asks for a resync.
        c.quotes["AAPL"]["price"] = -1.0  # what a missed delta leaves: a wrong value
        await c._on_frame({"type": "delta", "seq": c.state.seq + 5, "t": 0, "quotes": {}})
        await until(lambda: c.quotes["AAPL"]["price"] == 100.0, what="the resync's snapshot")
        assert c.state.gaps == 1


@given(
    st.lists(
        st.tuples(st.sampled_from(["A", "B", "C"]), st.floats(1, 100), st.booleans()),
        max_size=40,
    )
)
def test_state_applies_snapshots_and_deltas_like_the_server_book(
    steps: list[tuple[str, float, bool]],
) -> None:
    """Applying a snapshot then deltas of changed fields gives the latest values; a delta whose
    seq skips one asks for a resync."""
    state = ClientState()
    book: dict[str, dict[str, Any]] = {}
    seq = 0
    for sym, price, whole in steps:
        seq += 1
        book[sym] = {"symbol": sym, "price": price, "ts": float(seq)}
        frame: dict[str, Any] = {"type": "snapshot" if whole else "delta", "seq": seq}
        if whole:
            frame["quotes"] = {sym: dict(book[sym])}
        else:
            frame["quotes"] = {sym: {"price": price, "ts": float(seq), "w_count": 2}}
        events, resync = state.apply(frame)
        ev = events[0]
        assert not resync and isinstance(ev, QuoteEvent) and ev.quote == state.quotes[sym]
    assert state.quotes == book
    if steps:
        _, resync = state.apply({"type": "delta", "seq": seq + 2, "quotes": {}})
        assert resync and state.gaps == 1


def test_news_is_never_delivered_twice() -> None:
    state = ClientState()
    frames = [{"type": "news", "id": i, "ts": 1.0, "headline": "h", "source": "s"} for i in (1, 2)]
    assert [len(state.apply(f)[0]) for f in frames + frames] == [1, 1, 0, 0]
    assert state.news_last_id == 2


def test_news_resumes_across_a_server_restart(ticker_server: type[ServerProcess]) -> None:
    """The sync client reads news through a server restart on the same port: every item the
    second server published after it came back is received, and none twice."""
    srv = ticker_server("--feed", "simnews:rate=1200,seed=1", "--feed", "sim:seed=1")
    port = srv.port
    with SyncClient(srv.ws_url, initial_backoff=0.05, max_backoff=0.3) as c:
        c.news(["*"])
        got: list[int] = []
        deadline = time.monotonic() + 3
        for ev in c.events(timeout=2.0):
            if isinstance(ev, NewsEvent):
                got.append(ev.id)
            if time.monotonic() > deadline:
                break
        srv.stop()
        srv2 = ticker_server("--port", str(port), "--feed", "simnews:rate=1200,seed=2")
        deadline = time.monotonic() + 4
        for ev in c.events(timeout=3.0):
            if isinstance(ev, NewsEvent):
                got.append(ev.id)
            if time.monotonic() > deadline:
                break
        assert c.client.connects >= 2
        served = [
            i["id"]
            for i in _get_json(srv2.url + "/api/news?limit=10000")["items"]
            if i["id"] > max(got[:1] or [0])
        ]
    assert len(got) == len(set(got)) and got == sorted(got), "none twice, in order"
    after_restart = [i for i in served if i <= max(got)]
    assert set(after_restart) <= set(got), "no item of the second server missed"
    assert any(i in got for i in served), "items of the second server arrived"


def _get_json(url: str) -> Any:
    import json
    import urllib.request

    with urllib.request.urlopen(url, timeout=5) as resp:
        return json.loads(resp.read())


# ticker watch


def _watch_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "120", "TERM": "xterm"}


def test_watch_piped_prints_one_line_per_change(ticker_server: type[ServerProcess]) -> None:
    srv = ticker_server("--feed", "sim:symbols=AAPL+MSFT,rate=50,seed=1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "ticker", "watch", "AAPL", "MSFT", "--url", srv.ws_url],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_watch_env(),
        cwd=ROOT,
    )
    assert proc.stdout is not None
    lines = [proc.stdout.readline() for _ in range(6)]
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    assert all(ln.split()[1] in ("AAPL", "MSFT") for ln in lines), lines
    assert "\x1b[" not in "".join(lines), "no terminal codes when piped"


def test_watch_on_a_terminal_draws_a_table_and_quits_on_ctrl_c(
    ticker_server: type[ServerProcess],
) -> None:
    srv = ticker_server("--feed", "sim:symbols=AAPL+MSFT,rate=50,seed=1")
    pid, fd = pty.fork()
    if pid == 0:  # the child: ticker watch on the pseudo-terminal
        # (A signal mask or an ignored SIGINT of this test process would survive the exec.)
        signal.pthread_sigmask(signal.SIG_SETMASK, [])
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.chdir(ROOT)
        os.execve(
            sys.executable,
            [sys.executable, "-m", "ticker", "watch", "AAPL", "MSFT", "--url", srv.ws_url],
            _watch_env(),
        )
    screen = b""
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and not (b"AAPL" in screen and b"Chg %" in screen):
        ready, _, _ = select.select([fd], [], [], 0.5)
        if ready:
            try:
                screen += os.read(fd, 65536)
            except OSError:
                break
    os.kill(pid, signal.SIGINT)
    status = 0
    deadline = time.monotonic() + 15
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            pytest.fail("ticker watch did not quit on Ctrl-C")
        with_data, _, _ = select.select([fd], [], [], 0.1)
        try:
            if with_data:
                screen += os.read(fd, 65536)
        except OSError:  # (the terminal closed: the child is exiting)
            time.sleep(0.05)
    os.close(fd)
    text = screen.decode(errors="replace")
    assert "Symbol" in text and "AAPL" in text and "MSFT" in text, text[-2000:]
    assert "\x1b[" in text, "a terminal gets colours and in-place updates"
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0


def test_watch_says_so_when_no_server_is_there() -> None:
    r = subprocess.run(
        [sys.executable, "-m", "ticker", "watch", "AAPL", "--url", "ws://127.0.0.1:9/ws"],
        capture_output=True,
        text=True,
        env=_watch_env(),
        cwd=ROOT,
        timeout=30,
    )
    assert r.returncode == 1 and "cannot connect to ws://127.0.0.1:9/ws" in r.stderr


async def test_importing_the_client_pulls_in_no_server_code() -> None:
    code = (
        "import sys, ticker.client\n"
        "from ticker.client import Client\n"
        "bad = [m for m in sys.modules if m.startswith(('ticker.hub', 'ticker.net', "
        "'ticker.bus', 'ticker.store', 'ticker.replay', 'pandas', 'feeds'))]\n"
        "print(','.join(bad))"
    )
    out = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == ""
