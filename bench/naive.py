"""The naive baseline for ``make bench``: one message per tick to every client.

This is how the mainstream libraries broadcast (an aiohttp send loop, as in PERF-NOTES.md): the same
simulated market as Ticker, the same wire format (``hello``, ``subscribe`` -> ``snapshot``, then a
``delta`` per tick), no conflation, no throttling, ``await ws.send_str`` per client per tick.

    python -m bench.naive --port 0 --symbols 50 --rate 1000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

from aiohttp import WSMsgType, web

from ticker.core.book import Book
from ticker.core.events import Tick
from ticker_feeds.sim import SimFeed

__all__ = ["main"]


async def run(host: str, port: int, symbols: str, rate: float) -> None:
    book = Book()
    clients: dict[web.WebSocketResponse, list[int]] = {}

    async def ws_handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(compress=False)
        await ws.prepare(request)
        seq = [0]
        await ws.send_str(
            json.dumps(
                {
                    "type": "hello",
                    "v": 1,
                    "session": "naive",
                    "throttle_ms": 0,
                    "symbols": list(book.known),
                    "news_last_id": 0,
                }
            )
        )
        async for msg in ws:
            if msg.type is WSMsgType.TEXT:
                req = json.loads(msg.data)
                if req.get("op") == "subscribe":
                    seq[0] += 1
                    await ws.send_str(
                        json.dumps({"type": "snapshot", "seq": seq[0], "quotes": book.snapshot()})
                    )
                    clients[ws] = seq
        clients.pop(ws, None)
        return ws

    async def pump() -> None:
        feed = SimFeed({"symbols": symbols, "rate": str(rate), "burst": "1"})
        async for ev in feed.events():
            if isinstance(ev, Tick):
                q = book.apply(ev)
                for ws, seq in list(clients.items()):
                    seq[0] += 1
                    try:
                        await ws.send_str(
                            json.dumps(
                                {
                                    "type": "delta",
                                    "seq": seq[0],
                                    "t": time.time() * 1000,
                                    "quotes": {ev.symbol: q},
                                }
                            )
                        )
                    except (ConnectionError, RuntimeError):
                        clients.pop(ws, None)
            else:
                book.declare(getattr(ev, "symbols", ()))

    app = web.Application()
    app.router.add_get("/ws", ws_handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port, backlog=4096)  # (as Ticker's: no dropped connects)
    await site.start()
    addr = runner.addresses[0]
    print(f"listening on http://{addr[0]}:{addr[1]}", flush=True)
    task = asyncio.create_task(pump())
    try:
        await asyncio.Event().wait()
    finally:
        task.cancel()
        await runner.cleanup()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--symbols", default="50")
    p.add_argument("--rate", type=float, default=1000)
    a = p.parse_args()
    try:
        import uvloop
    except ImportError:
        asyncio.run(run(a.host, a.port, a.symbols, a.rate))
    else:
        uvloop.run(run(a.host, a.port, a.symbols, a.rate))


if __name__ == "__main__":
    main()
