"""What a server process holds, read from ``/proc``: resident memory, open descriptors and the
established TCP sockets on its port. The leak tests compare them with a baseline."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

__all__ = ["established", "fds", "rss_kb", "tcp_state"]


def fds(pid: int) -> int:
    """Open file descriptors of process ``pid``."""
    return len(os.listdir(f"/proc/{pid}/fd"))


def rss_kb(pid: int) -> int:
    """Resident memory of process ``pid`` in KiB (``VmRSS``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


TCP_ESTABLISHED = "01"


def _sockets() -> Iterator[tuple[int, int, str]]:
    """(local port, remote port, state) of every TCP socket on this machine (``/proc/net/tcp*``;
    the state in hex: ``01`` established, ``04`` FIN-WAIT-1, ...)."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(FileNotFoundError):
            for line in Path(table).read_text().splitlines()[1:]:
                cols = line.split()
                yield (
                    int(cols[1].rsplit(":", 1)[1], 16),
                    int(cols[2].rsplit(":", 1)[1], 16),
                    cols[3],
                )


def established(port: int) -> int:
    """Established TCP sockets whose local port is ``port`` (the server's side)."""
    return sum(1 for local, _, state in _sockets() if local == port and state == TCP_ESTABLISHED)


def tcp_state(local_port: int, remote_port: int) -> str | None:
    """The state of the socket from ``local_port`` to ``remote_port`` on this machine; None when
    there is none."""
    return next(
        (
            state
            for local, remote, state in _sockets()
            if (local, remote) == (local_port, remote_port)
        ),
        None,
    )
