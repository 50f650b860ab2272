"""What a client holds of the server's state, and what each frame does to it.

Pure; no I/O. :class:`ClientState` takes decoded server frames (``hello``, ``snapshot``,
``delta``, ``news``) and answers what the connection must do next: nothing, or a ``resync``
after a ``seq`` gap. It keeps the merged book (a quote per symbol, as a ``snapshot`` then the
``delta`` fields make it) and the id of the newest news item, so that a reconnect resumes news
with ``since`` and never shows an item twice.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["WINDOW_STATS", "ClientState", "NewsEvent", "QuoteEvent"]

WINDOW_STATS = frozenset({"w_high", "w_low", "w_count"})
"""Delta fields about the window, not the quote (docs/protocol.md, "Window stats")."""


@dataclass(frozen=True, slots=True)
class QuoteEvent:
    """A symbol's quote changed: ``changes`` as the server sent them (window stats included),
    ``quote`` the merged quote after them (a live view: it keeps changing)."""

    symbol: str
    changes: Mapping[str, Any]
    quote: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class NewsEvent:
    """One news item (``id`` increases across the service and its restarts)."""

    id: int
    ts: float
    headline: str
    source: str
    symbols: tuple[str, ...] = ()
    url: str | None = None
    summary: str | None = None


@dataclass
class ClientState:
    """The merged book, the frame sequence and the news position of one client.

    Attributes:
        quotes: symbol -> merged quote.
        seq: the last ``snapshot``/``delta`` number seen on this connection (0: none).
        news_last_id: the newest news id delivered (None: none yet): a reconnect asks
            ``since`` it, and an item at or below it is not delivered again.
        gaps: ``seq`` gaps seen (each answered by a ``resync``).
    """

    quotes: dict[str, dict[str, Any]] = field(default_factory=dict)
    seq: int = 0
    news_last_id: int | None = None
    gaps: int = 0

    def connected(self) -> None:
        """A new connection: its frames are numbered from 1 again."""
        self.seq = 0

    def apply(self, frame: Mapping[str, Any]) -> tuple[list[QuoteEvent | NewsEvent], bool]:
        """Take one server frame.

        Returns:
            the events it makes (quote changes, a news item not seen before), and whether the
            connection must ask for a ``resync`` (a ``seq`` gap: the book may have missed a
            change; the events of the frame are still applied).
        """
        kind = frame.get("type")
        if kind == "snapshot" or kind == "delta":
            seq = frame.get("seq")
            resync = False
            if isinstance(seq, int):
                if kind == "delta" and self.seq and seq != self.seq + 1:
                    self.gaps += 1
                    resync = True
                self.seq = seq
            return self._quotes(frame.get("quotes") or {}, kind == "snapshot"), resync
        if kind == "news":
            item = self._news(frame)
            return ([item] if item is not None else []), False
        return [], False

    def _quotes(self, quotes: Mapping[str, Any], whole: bool) -> list[QuoteEvent | NewsEvent]:
        out: list[QuoteEvent | NewsEvent] = []
        for symbol, fields in quotes.items():
            if not isinstance(fields, Mapping):
                continue
            if whole:
                q = self.quotes[symbol] = {k: v for k, v in fields.items() if k not in WINDOW_STATS}
            else:
                q = self.quotes.setdefault(symbol, {"symbol": symbol})
                q.update((k, v) for k, v in fields.items() if k not in WINDOW_STATS)
            out.append(QuoteEvent(symbol, dict(fields), q))
        return out

    def _news(self, frame: Mapping[str, Any]) -> NewsEvent | None:
        nid = frame.get("id")
        if not isinstance(nid, int):
            return None
        if self.news_last_id is not None and nid <= self.news_last_id:
            return None  # (a replay after a reconnect overlapping what was delivered)
        self.news_last_id = nid
        return NewsEvent(
            nid,
            float(frame.get("ts", 0.0)),
            str(frame.get("headline", "")),
            str(frame.get("source", "")),
            tuple(frame.get("symbols") or ()),
            frame.get("url"),
            frame.get("summary"),
        )
