"""What one ``ticker serve`` process does with the bus: its role (``--role``).

Pure; no I/O. ``all``: run the feeds and serve clients (the only role on the in-memory bus);
``ingest``: run the feeds and publish to a shared bus (Redis); ``edge``: serve clients from the
shared bus, no feeds.
"""

from __future__ import annotations

__all__ = ["ROLES", "check_role", "ingests", "serves"]

ROLES = ("all", "ingest", "edge")
"""Every role, the default first."""


def check_role(role: str) -> str:
    """``role``, when it is one of :data:`ROLES`.

    Raises:
        ValueError: it is not.
    """
    if role not in ROLES:
        raise ValueError(f"role must be {', '.join(ROLES[:-1])} or {ROLES[-1]}, got {role!r}")
    return role


def ingests(role: str) -> bool:
    """Whether a process of ``role`` runs feeds and publishes their events."""
    return role in ("all", "ingest")


def serves(role: str) -> bool:
    """Whether a process of ``role`` hands the bus's events to its hub (clients)."""
    return role in ("all", "edge")
