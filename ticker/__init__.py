"""Ticker: live prices and news over WebSockets.

Kept deliberately light: importing ``ticker`` must not import aiohttp or asyncio, so that the
pure modules (``ticker.core.events``, ``book``, ``conflate``, ``protocol``) stay free of I/O.
"""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
