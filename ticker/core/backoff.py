"""How long to wait before retrying something that failed: exponential backoff with jitter.

Pure; no I/O. Used by the feed supervisor, the Redis bus and the WebSocket feed adapters (part of
the feed API: feeds may import it).
"""

from __future__ import annotations

import random

__all__ = ["backoff_delay"]

# 2**60 times any sensible initial delay is past any sensible maximum; beyond it 2.0**n would
# overflow a float (at n = 1024) for a retry loop that has been failing for a long time.
_MAX_DOUBLINGS = 60


def backoff_delay(attempt: int, *, initial: float, maximum: float, rng: random.Random) -> float:
    """Exponential backoff with "equal jitter": uniform in ``[d/2, d]``.

    ``d = min(maximum, initial * 2**attempt)``. Half of each delay is fixed, so the wait still
    grows with every failure; the random half spreads many clients retrying together.

    Args:
        attempt: failures so far before this retry (0 for the first; a negative counts as 0).
        initial: the delay of attempt 0, seconds.
        maximum: the cap, seconds.
        rng: the random source (seeded in tests).

    Returns:
        the delay in seconds.
    """
    d = min(maximum, initial * (2.0 ** max(0, min(attempt, _MAX_DOUBLINGS))))
    return rng.uniform(d / 2.0, d)
