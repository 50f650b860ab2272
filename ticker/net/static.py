"""The dashboard's files over HTTP: ``/``, ``/static/{path}`` (``web/``) and
``/vendor/plotly.min.js`` (the installed ``plotly`` package), compressed and cacheable.

I/O shell. Each file is read and gzipped once, at its first request (plotly's 4.8 MB becomes
~1.4 MB; in a thread, so the loop stays free), and kept with its ETag until its mtime or size
changes. Every answer carries an ETag and a Last-Modified, so a browser revalidates with a 304 and
no body. Caching: plotly asked for as ``?v=<its version>`` (the URL index.html is served with) is
``immutable`` for a year: a new plotly is a new URL. The rest (index.html, ``web/``'s modules,
whose import URLs carry no version) is ``no-cache``: always revalidated, a 304 when unchanged.

Only regular files found under ``web/`` (no symlinks, no dot-files) are served: a request names
one of them exactly or gets a 404, so no path from a request is ever joined to a directory.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import mimetypes
import os
import posixpath
import re
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import formatdate
from pathlib import Path

from aiohttp import web

__all__ = ["IMMUTABLE", "REVALIDATE", "StaticFiles", "module_graph"]

IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "no-cache"
_TYPES = {".js": "text/javascript", ".mjs": "text/javascript", ".css": "text/css"}
_COMPRESSIBLE = (".html", ".js", ".mjs", ".css", ".json", ".svg", ".txt", ".map")
_MIN_GZIP = 512  # smaller files gain nothing from gzip


@dataclass(frozen=True, slots=True)
class _Entry:
    """One file as served: its body (plain and gzipped), validators and type."""

    key: tuple[int, int]  # (mtime_ns, size): a change means read it again
    body: bytes
    gz: bytes | None
    etag: str
    last_modified: str
    content_type: str


def _load(path: Path, plotly_version: str | None = None) -> _Entry:
    """Read and gzip one file; with ``plotly_version``, render it as the page (:func:`_page`).
    Blocking: run it in a thread."""
    st = path.stat()
    body = path.read_bytes()
    if plotly_version is not None:
        body = _page(body, path.parent, plotly_version)
    ctype = (
        _TYPES.get(path.suffix) or mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    )
    if ctype.startswith("text/") or ctype.endswith("javascript"):
        ctype += "; charset=utf-8"
    gz = None
    if path.suffix in _COMPRESSIBLE and len(body) >= _MIN_GZIP:
        # mtime=0: the same bytes every time (and in every process behind a balancer).
        gz = gzip.compress(body, compresslevel=9, mtime=0)
    etag = hashlib.blake2b(body, digest_size=10).hexdigest()
    return _Entry(
        (st.st_mtime_ns, st.st_size),
        body,
        gz,
        etag,
        formatdate(st.st_mtime, usegmt=True),
        ctype,
    )


class StaticFiles:
    """The files of ``web_dir`` and plotly, each read and gzipped once and revalidated by ETag.

    Args:
        web_dir: the dashboard's directory (``index.html`` and the ES modules).
        plotly: the path of ``plotly.min.js`` and plotly's version (in its URL, ``?v=``: a
            request with it is immutable); called at the first request that needs them.
    """

    def __init__(self, web_dir: Path, plotly: Callable[[], tuple[Path, str]]) -> None:
        self.web_dir = web_dir
        self.plotly = plotly
        self._cache: dict[Path, _Entry] = {}
        self._loading: dict[Path, asyncio.Future[_Entry]] = {}
        self._names: dict[str, Path] = {}

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/", self.index)
        app.router.add_get("/static/{name:.+}", self.web_file)
        app.router.add_get("/vendor/plotly.min.js", self.plotly_js)

    # Handlers

    async def index(self, request: web.Request) -> web.StreamResponse:
        # Rendered for each request (a few KB and a few small reads, in a thread): it names the
        # modules of the moment, and its ETag (of its bytes) still gets a 304 when nothing changed.
        version = self.plotly()[1]
        try:
            entry = await asyncio.to_thread(_load, self.web_dir / "index.html", version)
        except (FileNotFoundError, NotADirectoryError):
            raise web.HTTPNotFound() from None
        return _respond(request, entry, REVALIDATE)

    async def web_file(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        path = self._names.get(name)
        if path is None:
            # A file added since the last scan (a checkout being edited): look again, once.
            self._names = await asyncio.to_thread(_scan, self.web_dir)
            path = self._names.get(name)
        if path is None:
            raise web.HTTPNotFound()
        return await self._serve(request, path, REVALIDATE)

    async def plotly_js(self, request: web.Request) -> web.StreamResponse:
        path, version = self.plotly()
        versioned = request.query.get("v") == version
        return await self._serve(request, path, IMMUTABLE if versioned else REVALIDATE)

    # Serving

    async def _serve(
        self, request: web.Request, path: Path, cache_control: str
    ) -> web.StreamResponse:
        try:
            entry = await self._entry(path)
        except (FileNotFoundError, NotADirectoryError):
            raise web.HTTPNotFound() from None
        return _respond(request, entry, cache_control)

    async def _entry(self, path: Path) -> _Entry:
        # A stat of a local file takes microseconds: done on the loop (a thread's hop per request
        # cost more, and under load delayed each of the page's 30 modules).
        st = os.stat(path)
        cached = self._cache.get(path)
        if cached is not None and cached.key == (st.st_mtime_ns, st.st_size):
            return cached
        # One read per file however many requests ask for it at once (the first page load asks
        # for plotly from every tab a restart reconnects).
        pending = self._loading.get(path)
        if pending is None:
            pending = asyncio.ensure_future(asyncio.to_thread(_load, path))
            self._loading[path] = pending
            pending.add_done_callback(lambda _: self._loading.pop(path, None))
        entry = await asyncio.shield(pending)
        self._cache[path] = entry
        return entry


def _respond(request: web.Request, entry: _Entry, cache_control: str) -> web.Response:
    """The response for one file: gzipped when the client takes it, a 304 when its ETag matches."""
    gzip_ok = entry.gz is not None and _accepts_gzip(request.headers.get("Accept-Encoding", ""))
    # A representation's ETag names its bytes: the gzipped one has its own.
    etag = f'"{entry.etag}-gz"' if gzip_ok else f'"{entry.etag}"'
    headers = {
        "Cache-Control": cache_control,
        "ETag": etag,
        "Last-Modified": entry.last_modified,
        "Vary": "Accept-Encoding",
    }
    if _etag_matches(request.headers.get("If-None-Match"), etag):
        return web.Response(status=304, headers=headers)
    if gzip_ok:
        headers["Content-Encoding"] = "gzip"
    body = entry.gz if gzip_ok and entry.gz is not None else entry.body
    headers["Content-Type"] = entry.content_type
    return web.Response(body=body, headers=headers)


# A static `import ... from "./x.js"`, `export ... from "./x.js"` or `import "./x.js"`.
_IMPORT = re.compile(
    rb"""^[ \t]*(?:import|export)\b[^;'"]*?\bfrom[ \t]*["'](\.\.?/[^"']+)["']"""
    rb"""|^[ \t]*import[ \t]*["'](\.\.?/[^"']+)["']""",
    re.M,
)


def module_graph(web_dir: Path, entry: str = "app.js") -> list[str]:
    """The modules ``entry`` imports, directly or not, by their names under ``web_dir`` (static
    imports only; ``entry`` first). Blocking."""
    seen: list[str] = []
    todo = [entry]
    while todo:
        name = todo.pop(0)
        path = web_dir / name
        if name in seen or name.startswith("../") or not path.is_file():
            continue
        seen.append(name)
        for m in _IMPORT.finditer(path.read_bytes()):
            rel = (m.group(1) or m.group(2)).decode()
            todo.append(posixpath.normpath(posixpath.join(posixpath.dirname(name), rel)))
    return seen


def _page(html: bytes, web_dir: Path, plotly_version: str) -> bytes:
    """index.html as served: plotly named by its versioned URL (cacheable for a year, a new URL
    on an upgrade), and a ``modulepreload`` for every module app.js imports, so that the browser
    asks for them all at once instead of one level of imports per round trip."""
    html = html.replace(
        b'"/vendor/plotly.min.js"', f'"/vendor/plotly.min.js?v={plotly_version}"'.encode()
    )
    links = "".join(
        f'<link rel="modulepreload" href="/static/{m}">\n' for m in module_graph(web_dir)[1:]
    )
    return html.replace(b"</head>", links.encode() + b"</head>", 1)


def _scan(root: Path) -> dict[str, Path]:
    """The regular files under ``root`` by their ``/``-separated relative names. Symlinks (files
    or directories) and dot-files are left out: nothing outside ``root`` is ever reachable."""
    out: dict[str, Path] = {}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        base = Path(dirpath)
        dirnames[:] = [d for d in dirnames if not d.startswith(".") and not (base / d).is_symlink()]
        for f in filenames:
            p = base / f
            if f.startswith(".") or p.is_symlink() or not p.is_file():
                continue
            out[p.relative_to(root).as_posix()] = p
    return out


def _accepts_gzip(accept: str) -> bool:
    """``Accept-Encoding`` allows gzip (named, or ``*``, without ``q=0``)."""
    for part in accept.lower().split(","):
        coding, _, params = part.partition(";")
        if coding.strip() not in ("gzip", "*"):
            continue
        name, _, value = params.replace(" ", "").partition("=")
        try:
            return name != "q" or float(value) > 0
        except ValueError:
            return False
    return False


def _etag_matches(header: str | None, etag: str) -> bool:
    if not header:
        return False
    if header.strip() == "*":
        return True
    # Weak comparison (RFC 9110 13.1.2): W/"x" matches "x".
    return any(t.strip().removeprefix("W/") == etag for t in header.split(","))
