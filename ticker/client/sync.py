"""A blocking wrapper of :class:`~ticker.client.client.Client` for scripts and notebooks.

The asyncio client runs on an event loop in a daemon thread; each method hands a coroutine to it
and waits for the result. The book (``quotes``, ``frame()``) is read as the loop leaves it.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Coroutine, Iterable, Iterator
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from ticker.client.client import Client, Event

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["SyncClient"]

T = TypeVar("T")


class SyncClient:
    """``with SyncClient("ws://127.0.0.1:8080/ws") as c: c.subscribe(["AAPL"]); c.frame()``.

    Takes the arguments of :class:`~ticker.client.client.Client`.
    """

    def __init__(self, url: str, token: str | None = None, **kw: Any) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._events: queue.Queue[Event | None] = queue.Queue()
        self._pump: Any = None

        async def make() -> Client:
            return Client(url, token, **kw)

        self.client = self._call(make())

    def _call(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def __enter__(self) -> SyncClient:
        self.connect()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def connect(self) -> None:
        """Connect (raises when the server cannot be reached)."""
        self._call(self.client.connect())

    def close(self) -> None:
        """Close the connection and stop the loop's thread."""
        if self._loop.is_closed():
            return
        self._call(self.client.close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5.0)
        self._loop.close()
        self._events.put(None)

    @property
    def quotes(self) -> dict[str, dict[str, Any]]:
        """Symbol -> the merged quote."""
        return self.client.quotes

    def frame(self) -> pd.DataFrame:
        """The current quotes as a DataFrame (:meth:`Client.frame`)."""
        return self._call(self._frame())

    async def _frame(self) -> pd.DataFrame:
        return self.client.frame()

    def subscribe(self, symbols: Iterable[str], throttle_ms: float | None = None) -> list[str]:
        """:meth:`Client.subscribe`."""
        return self._call(self.client.subscribe(list(symbols), throttle_ms))

    def unsubscribe(self, symbols: Iterable[str]) -> None:
        """:meth:`Client.unsubscribe`."""
        self._call(self.client.unsubscribe(list(symbols)))

    def news(self, topics: Iterable[str], since: int | None = None) -> dict[str, Any]:
        """:meth:`Client.news`."""
        return self._call(self.client.news(list(topics), since))

    def throttle(self, ms: float) -> float:
        """:meth:`Client.throttle`."""
        return self._call(self.client.throttle(ms))

    def bars(
        self, symbol: str, interval: str = "1m", limit: int = 500, before: float | None = None
    ) -> pd.DataFrame:
        """:meth:`Client.bars`."""
        return self._call(self.client.bars(symbol, interval, limit, before))

    def events(self, timeout: float | None = None) -> Iterator[Event]:
        """Events as they arrive; stops after ``timeout`` seconds without one (None: never)."""
        if self._pump is None:
            self._pump = asyncio.run_coroutine_threadsafe(self._forward(), self._loop)
        while True:
            try:
                ev = self._events.get(timeout=timeout)
            except queue.Empty:
                return
            if ev is None:
                return
            yield ev

    async def _forward(self) -> None:
        async for ev in self.client:
            self._events.put(ev)
        self._events.put(None)
