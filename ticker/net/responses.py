"""JSON responses of the HTTP API, errors above all.

I/O shell (aiohttp responses). Every refusal the app answers over HTTP has one shape,
``{"error": CODE, "message": TEXT}`` (docs/protocol.md, "The opening handshake"), built here and
nowhere else: :func:`json_error`. Other JSON answers go through :func:`json_response`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from aiohttp import web

__all__ = ["Detached", "bad_request", "json_error", "json_response"]


def json_response(
    data: Any, status: int = 200, *, headers: Mapping[str, str] | None = None
) -> web.Response:
    """``data`` as an ``application/json`` response (orjson: dataclasses and tuples welcome)."""
    return web.Response(
        body=orjson.dumps(data), status=status, content_type="application/json", headers=headers
    )


def json_error(
    status: int,
    code: str,
    message: str,
    *,
    headers: Mapping[str, str] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> web.Response:
    """An error response: ``{"error": code, "message": message}``, then ``extra``'s fields.

    Args:
        status: the HTTP status.
        code: the machine-readable error code (``bad_request``, ``unauthorized``, ...).
        message: what is wrong, for a person.
        headers: more headers (``Retry-After``, ``WWW-Authenticate``, ...).
        extra: more fields after those two (the publish API's ``index`` and ``field``).
    """
    body = {"error": code, "message": message}
    if extra:
        body.update(extra)
    return json_response(body, status, headers=headers)


def bad_request(message: str) -> web.Response:
    """A 400 ``bad_request`` error saying ``message``."""
    return json_error(400, "bad_request", message)


class Detached(web.StreamResponse):
    """What a handler returns once it has taken the socket over (``/ws`` after its ``101``,
    ``/sse`` after its head): aiohttp then ends the request writing nothing."""

    async def prepare(self, request: web.BaseRequest) -> None:
        return None

    async def write_eof(self, data: bytes = b"") -> None:
        return None
