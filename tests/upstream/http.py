"""A loopback HTTP server that serves news documents and honours conditional GET.

I/O shell for tests: ``NewsServer`` serves ``{name: bytes}`` at ``/<name>`` with an ETag and a
Last-Modified, answers 304 to a matching ``If-None-Match``, and records every request's headers.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

from aiohttp import web

from tests.upstream.local import LocalServer

__all__ = ["NewsServer"]


class NewsServer(LocalServer):
    """Serve documents on 127.0.0.1 (port 0); ``url(name)`` is where each one is."""

    LAST_MODIFIED = "Mon, 01 Jul 2024 12:00:00 GMT"

    def __init__(self, docs: Mapping[str, bytes], *, conditional: bool = True) -> None:
        self.docs = dict(docs)
        self.conditional = conditional
        self.requests: list[dict[str, str]] = []
        self.sent_304 = 0

    def url(self, name: str) -> str:
        return f"{self.base}/{name}"

    def etag(self, name: str) -> str:
        return '"' + hashlib.sha1(self.docs[name]).hexdigest()[:16] + '"'

    async def _serve(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        self.requests.append({"path": name, **request.headers})
        if name not in self.docs:
            return web.Response(status=404)
        etag = self.etag(name)
        if self.conditional and request.headers.get("If-None-Match") == etag:
            self.sent_304 += 1
            return web.Response(status=304, headers={"ETag": etag})
        headers = {"Content-Type": "application/xml"}
        if self.conditional:
            headers |= {"ETag": etag, "Last-Modified": self.LAST_MODIFIED}
        return web.Response(body=self.docs[name], headers=headers)

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/{name:.+}", self._serve)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"
