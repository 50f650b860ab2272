"""Feed adapters: each turns a source (simulated, recorded or real) into ``ticker.core.events``.

Adapters are found through entry points (group ``ticker.feeds``); this package imports only
``ticker.core.events``.
"""

from __future__ import annotations

__all__: list[str] = []
