"""Small asyncio helpers shared by the I/O shells."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

__all__ = ["cancel_and_wait", "retrieve"]


async def cancel_and_wait(task: asyncio.Task[Any] | None) -> None:
    """Cancel ``task`` (None or done: nothing to do) and wait until it has ended."""
    if task is None or task.done():
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def retrieve(task: asyncio.Task[Any]) -> None:
    """Fetch a done task's outcome, so asyncio never logs it as an exception nobody retrieved
    (also usable as a done callback for a task that is being given up on)."""
    if not task.cancelled():
        task.exception()
