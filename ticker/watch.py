"""``ticker watch``: a live ticker in the terminal, built on :class:`ticker.client.Client`.

On a terminal: a table that updates in place (``rich``), green/red by the day's change, the
latest news lines below it. Piped: one plain line per quote change and per news item, so that
``ticker watch AAPL | grep`` works. Ctrl-C (or SIGTERM) quits cleanly with exit code 0.

The row and line formats are pure (:func:`quote_row`, :func:`quote_line`, :func:`news_line`).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import time
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any, TextIO

from ticker.client.client import Client, TickerError
from ticker.client.state import NewsEvent, QuoteEvent

__all__ = ["COLUMNS", "news_line", "quote_line", "quote_row", "watch"]

COLUMNS = ("Symbol", "Last", "Chg", "Chg %", "Bid", "Ask", "Volume", "Time")


def _num(v: Any, places: int = 2) -> str:
    if not isinstance(v, int | float):
        return ""
    if abs(v) < 1 and v != 0 and places == 2:
        places = 4  # sub-dollar prices keep their digits
    return f"{v:,.{places}f}"


def _clock(ts: Any) -> str:
    return (
        time.strftime("%H:%M:%S", time.gmtime(ts / 1000.0)) if isinstance(ts, int | float) else ""
    )


def quote_row(symbol: str, q: Mapping[str, Any]) -> tuple[tuple[str, ...], str]:
    """The table cells of one quote, and its style (``green`` up, ``red`` down, ``""``). Pure."""
    change = q.get("change")
    style = ""
    if isinstance(change, int | float) and change:
        style = "green" if change > 0 else "red"
    pct = q.get("change_pct")
    cells = (
        symbol,
        _num(q.get("price")),
        "" if change is None else f"{change:+,.2f}",
        "" if not isinstance(pct, int | float) else f"{pct:+.2f}%",
        _num(q.get("bid")),
        _num(q.get("ask")),
        _num(q.get("volume"), 0),
        _clock(q.get("ts")),
    )
    return cells, style


def quote_line(symbol: str, q: Mapping[str, Any]) -> str:
    """One plain line for a quote (piped output). Pure."""
    cells, _ = quote_row(symbol, q)
    return " ".join(c for c in (cells[7], cells[0], cells[1], cells[3]) if c)


def news_line(item: NewsEvent) -> str:
    """One plain line for a news item. Pure."""
    tags = f" [{','.join(item.symbols)}]" if item.symbols else ""
    return f"{_clock(item.ts)} NEWS {item.headline} ({item.source}){tags}"


async def watch(
    url: str,
    symbols: Sequence[str],
    *,
    news: bool = False,
    token: str | None = None,
    out: TextIO | None = None,
    tty: bool | None = None,
    stop: asyncio.Event | None = None,
) -> int:
    """Show ``symbols`` (and news on them) until ``stop`` or a signal. Returns the exit code."""
    out = out or sys.stdout
    tty = out.isatty() if tty is None else tty
    if stop is None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
    try:
        client = Client(url, token)
        await client.connect()
    except (OSError, TimeoutError, ConnectionError, Exception) as exc:
        print(f"ticker watch: cannot connect to {url}: {exc}", file=sys.stderr)
        return 1
    try:
        try:
            await client.subscribe(symbols, throttle_ms=250)
        except TickerError as exc:
            print(f"ticker watch: {exc}", file=sys.stderr)
            if not (exc.ack and exc.ack.get("symbols")):
                return 1
        if news:
            await client.news(list(symbols))
        reader = asyncio.ensure_future(
            _live(client, symbols, out, stop) if tty else _plain(client, out)
        )
        stopper = asyncio.ensure_future(stop.wait())
        await asyncio.wait({reader, stopper}, return_when=asyncio.FIRST_COMPLETED)
        for t in (reader, stopper):
            t.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await t
    finally:
        await client.close()
    return 0


async def _plain(client: Client, out: TextIO) -> None:
    async for ev in client:
        if isinstance(ev, QuoteEvent):
            line = quote_line(ev.symbol, ev.quote)
        else:
            line = news_line(ev)
        out.write(line + "\n")
        out.flush()


async def _live(client: Client, symbols: Sequence[str], out: TextIO, stop: asyncio.Event) -> None:
    from rich.console import Console, Group
    from rich.live import Live
    from rich.table import Table
    from rich.text import Text

    console = Console(file=out, force_terminal=True)
    headlines: deque[str] = deque(maxlen=5)

    def render() -> Group:
        table = Table(expand=False, header_style="bold")
        for i, name in enumerate(COLUMNS):
            table.add_column(name, justify="left" if i == 0 else "right")
        order = [s for s in symbols if s in client.quotes] or sorted(client.quotes)
        for sym in order:
            cells, style = quote_row(sym, client.quotes[sym])
            table.add_row(*cells, style=style or None)
        lines = [Text(h, style="cyan") for h in headlines]
        return Group(table, *lines)

    async def collect() -> None:
        async for ev in client:
            if isinstance(ev, NewsEvent):
                headlines.appendleft(news_line(ev))

    task = asyncio.ensure_future(collect())
    try:
        with Live(render(), console=console, refresh_per_second=4, transient=False) as live:
            while not stop.is_set():
                await asyncio.sleep(0.25)
                live.update(render())
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
