"""The application's typed state (``web.AppKey``): what ``create_app`` puts in the app and the
route modules read. A module of its own so that route modules (``ticker.net.publish``) and the
app factory (``ticker.net.server``) share it without importing each other.

I/O shell; no logic.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import web

from ticker.bus.memory import Bus
from ticker.bus.supervisor import FeedRunner, FeedSource
from ticker.config import HubConfig, ServerConfig
from ticker.hub.broadcaster import Hub
from ticker.net.wsconn import Sockets
from ticker.ops.metrics import Metrics

if TYPE_CHECKING:
    from ticker.store.recorder import Recorder

__all__ = [
    "BUS",
    "BUS_URL",
    "HISTORY",
    "HUB",
    "HUB_CONFIG",
    "METRICS",
    "RECORDER",
    "ROLE",
    "RUNNERS",
    "SERVER_CONFIG",
    "SOCKETS",
    "SOURCES",
    "STARTED",
]

HUB = web.AppKey("hub", Hub)
RUNNERS = web.AppKey("runners", list[FeedRunner])
BUS = web.AppKey("bus", Bus)
BUS_URL = web.AppKey("bus_url", str)
ROLE = web.AppKey("role", str)
HUB_CONFIG = web.AppKey("hub_config", HubConfig)
SERVER_CONFIG = web.AppKey("server_config", ServerConfig)
SOURCES = web.AppKey("sources", list[FeedSource])
STARTED = web.AppKey("started", float)
RECORDER: web.AppKey[Recorder] = web.AppKey("recorder")
HISTORY = web.AppKey("history", Path)
METRICS = web.AppKey("metrics", Metrics)
SOCKETS = web.AppKey("sockets", Sockets)
