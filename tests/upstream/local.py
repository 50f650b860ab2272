"""A local aiohttp server for the life of an ``async with`` (the base of the fake upstreams)."""

from __future__ import annotations

from types import TracebackType
from typing import Self

from aiohttp import web

__all__ = ["LocalServer"]


class LocalServer:
    """Serves the app that :meth:`routes` builds on 127.0.0.1 (port 0) inside ``async with``;
    ``port`` is the port it got."""

    port = 0
    _runner: web.AppRunner | None = None

    def routes(self, app: web.Application) -> None:
        """Add the fake upstream's routes to ``app``."""
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        app = web.Application()
        self.routes(app)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.port = self._runner.addresses[0][1]
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
