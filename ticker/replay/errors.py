"""Pure; no I/O. The error every replay module raises for data or requests it cannot use."""

from __future__ import annotations

__all__ = ["ReplayError"]


class ReplayError(ValueError):
    """Data that cannot be replayed (a missing or unreadable file, undetectable columns), or a
    replay option or control request that is not understood.

    The message is one line, fit to show a user as it is.
    """
