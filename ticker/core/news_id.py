"""The news-id rule: service-wide ids that start from the wall clock and strictly increase.

Pure; no I/O. The hub assigns ids with :func:`next_news_id` in one process; on Redis, the bus's Lua
script (``NEWS_SCRIPT`` in :mod:`ticker.bus.redis`) applies the same rule inside Redis, so every
node sees the same id (``tests/test_news_id.py`` runs the script against this function).

Ids start from the wall clock in milliseconds, so they keep increasing across restarts too: a
client that resumes with ``since`` after a server restart never sees an id twice.
"""

from __future__ import annotations

__all__ = ["news_id_floor", "next_news_id"]


def news_id_floor(now: float) -> int:
    """The smallest id an item may get at wall-clock time ``now`` (epoch seconds): epoch ms."""
    return int(now * 1000)


def next_news_id(last: int, now: float) -> int:
    """The id of the next news item.

    Args:
        last: the last id given (0 before any).
        now: the wall clock, epoch seconds (``time.time()``).

    Returns:
        ``last + 1``, or the wall clock in ms when that is later.
    """
    return max(last + 1, news_id_floor(now))
