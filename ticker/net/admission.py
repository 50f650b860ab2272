"""Connection limits before the WebSocket upgrade: ``admit(request)`` in ``ws_handler``.

I/O shell around :class:`~ticker.core.limits.ConnectionLimits`. A refused client gets a plain HTTP
answer instead of the ``101``: ``503`` (the server is at ``max_connections``) or ``429`` (its
address is at ``max_connections_per_ip``), both with ``Retry-After`` and a JSON body
``{"error": "too_many_connections", "message": ...}``. Cheap (no upgrade, no hub state) and the
client knows why. An admitted request holds a :class:`Slot` until it is released: by the handler
when the handshake fails (however it fails: refused, lost peer, cancelled at shutdown), else by
the upgraded connection when its socket is gone.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from aiohttp import web

from ticker.config import ServerConfig
from ticker.core.limits import ConnectionLimits, Network, client_key, parse_networks
from ticker.net.responses import json_error

__all__ = ["ADMISSION", "Admission", "Slot", "admit", "install"]

log = logging.getLogger("ticker.server")


@dataclass
class Admission:
    """The app's connection counts and the proxies whose ``X-Forwarded-For`` is believed."""

    limits: ConnectionLimits
    trusted: tuple[Network, ...] = ()
    logged_at: float = field(default=-1e9)

    @classmethod
    def from_config(cls, config: ServerConfig) -> Admission:
        return cls(
            ConnectionLimits(config.max_connections, config.max_connections_per_ip),
            parse_networks(config.trusted_proxies),
        )


ADMISSION = web.AppKey("admission", Admission)


def install(app: web.Application, config: ServerConfig) -> None:
    """Set up the connection counts of ``app`` (from ``create_app``)."""
    app[ADMISSION] = Admission.from_config(config)


class Slot:
    """One admitted connection's place in the counts; :meth:`release` gives it back (once)."""

    __slots__ = ("_key", "_limits")

    def __init__(self, limits: ConnectionLimits, key: str) -> None:
        self._limits: ConnectionLimits | None = limits
        self._key = key

    def release(self) -> None:
        if self._limits is not None:
            self._limits.release(self._key)
            self._limits = None


def admit(request: web.Request) -> web.Response | Slot:
    """Admit the WebSocket request (its :class:`Slot`) or the HTTP response that refuses it.

    Call from the handler, before the upgrade; release the slot when the connection ends.
    """
    adm = request.app[ADMISSION]
    forwarded = request.headers.getall("X-Forwarded-For", ()) if adm.trusted else ()
    key = client_key(request.remote, forwarded, adm.trusted)
    refusal = adm.limits.admit(key)
    if refusal is None:
        return Slot(adm.limits, key)
    now = time.monotonic()
    if now - adm.logged_at >= 10.0:  # a flood of refusals must not flood the log
        adm.logged_at = now
        log.warning(
            "refused a connection from %s (%s); %s refused so far",
            key,
            refusal.message,
            dict(adm.limits.refused),
        )
    return json_error(
        refusal.status,
        refusal.code,
        refusal.message,
        headers={"Retry-After": str(refusal.retry_after)},
    )
