"""Recorded WebSocket sessions (cryptofeed's format) and a loopback server that replays them.

``load_recording`` is pure: line 1 is ``<url> <-> <connect_ts>``, ``<url> <- <ts>: <json>`` lines
are what the client sent, ``<recv_ts>: <json>`` lines what the upstream sent. ``ReplayServer`` is
the I/O shell: each connection waits for the client's first message (as Coinbase does, closing
after ``subscribe_within`` s without one), then sends the recorded upstream frames from where the
previous connection stopped, optionally dropping the connection after ``drop_after`` frames and
mixing ``garbage`` frames in. It records what every connection received.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import WSCloseCode, web

from tests.upstream.local import LocalServer

__all__ = ["Recording", "ReplayServer", "load_recording"]


@dataclass
class Recording:
    """One recorded session: where it connected, what each side sent (with times, seconds)."""

    url: str
    connect_ts: float
    client: list[tuple[float, str]] = field(default_factory=list)
    server: list[tuple[float, str]] = field(default_factory=list)


def load_recording(path: Path) -> Recording:
    """Pure (given the text). Parse a cryptofeed ``*.ws.*.txt`` recording."""
    lines = path.read_text().splitlines()
    url, _, ts = lines[0].partition(" <-> ")
    rec = Recording(url=url, connect_ts=float(ts))
    for line in lines[1:]:
        if not line.strip():
            continue
        if " <- " in line.split(": ", 1)[0]:
            head, _, payload = line.partition(": ")
            rec.client.append((float(head.rsplit(" ", 1)[1]), payload))
        else:
            head, _, payload = line.partition(": ")
            rec.server.append((float(head), payload))
    return rec


class ReplayServer(LocalServer):
    """Replays ``frames`` to each connection in turn, resuming where the last one stopped."""

    def __init__(
        self,
        frames: Sequence[str | bytes],
        *,
        drop_after: int | None = None,
        garbage: Sequence[tuple[int, str | bytes]] = (),
        subscribe_within: float = 5.0,
        hold: bool = True,
        reject_first: int = 0,
    ) -> None:
        self.frames = list(frames)
        self.drop_after = drop_after
        self.garbage = dict(garbage)  # before frame index -> frame
        self.subscribe_within = subscribe_within
        self.hold = hold
        self.reject_first = reject_first  # answer the first N handshakes with HTTP 401
        self.queries: list[str] = []  # the query string of every handshake
        self.received: list[list[str]] = []  # per connection
        self.position = 0
        self.sent = 0  # every frame sent, garbage included
        self.done = asyncio.Event()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.queries.append(request.query_string)
        if len(self.queries) <= self.reject_first:
            return web.Response(status=401, text="unauthorized")
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        got: list[str] = []
        self.received.append(got)
        first = len(self.received) == 1
        try:
            msg = await ws.receive(timeout=self.subscribe_within)
        except TimeoutError:
            await ws.close(code=WSCloseCode.POLICY_VIOLATION, message=b"subscribe within 5 s")
            return ws
        got.append(msg.data)
        sent = 0
        while self.position < len(self.frames):
            if first and self.drop_after is not None and sent >= self.drop_after:
                await ws.close(code=WSCloseCode.GOING_AWAY)  # mid-stream drop
                return ws
            if self.position in self.garbage:
                g = self.garbage.pop(self.position)
                await (ws.send_bytes(g) if isinstance(g, bytes) else ws.send_str(g))
                self.sent += 1
            f = self.frames[self.position]
            await (ws.send_bytes(f) if isinstance(f, bytes) else ws.send_str(f))
            self.position += 1
            self.sent += 1
            sent += 1
            if sent % 50 == 0:
                await asyncio.sleep(0)
        self.done.set()
        if self.hold:  # keep the link open (and read later subscribes) until the client leaves
            async for later in ws:
                got.append(later.data)
        return ws

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/{tail:.*}", self._handle)

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/stream"
