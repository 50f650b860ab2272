"""Test helpers for adapter authors and our own tests: ``check_feed`` and a scriptable ``FakeFeed``.

``check_feed`` is the conformance check an adapter's own tests call: it builds the feed the way
``ticker serve --feed name:key=value`` does, runs it, and checks its shape and every event it
yields against what the core relies on. ``FakeFeed`` yields events pushed to it (``push``) or given
up front, so tests drive the server deterministically, with no clock and no mocks.

I/O shell (``check_feed`` runs the feed on the event loop); ``check_event`` is pure.
"""

from __future__ import annotations

import asyncio
import inspect
import math
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from typing import Any

from ticker.core.events import (
    Bar,
    Controllable,
    Event,
    Feed,
    HasHealth,
    HasNames,
    HasStallTimeout,
    HasStatus,
    Listing,
    LoadSummary,
    News,
    Preloadable,
    Tick,
)
from ticker.core.validate import event_problem

__all__ = ["FakeFeed", "FeedCheckError", "check_event", "check_feed"]

# Epoch milliseconds from 1973 to 5138: a time outside is in the wrong unit (s, µs, ns).
_MS_LO, _MS_HI = 1e11, 1e14


class FeedCheckError(AssertionError):
    """What ``check_feed`` found wrong, one problem per line."""


def _is_number(v: object) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _check_ts(ts: object, what: str) -> list[str]:
    if not _is_number(ts):
        return [f"{what}: ts must be a finite number (epoch ms), got {ts!r}"]
    assert isinstance(ts, int | float)
    if ts < _MS_LO:
        return [f"{what}: ts {ts!r} looks like seconds; ts is epoch milliseconds"]
    if ts > _MS_HI:
        return [f"{what}: ts {ts!r} looks like micro- or nanoseconds; ts is epoch milliseconds"]
    return []


def check_event(ev: object) -> list[str]:
    """What is wrong with one event (empty when nothing). Pure.

    Checks what the core relies on: the exact types ``Tick``/``News``/``Listing``/``Bar`` (the hub
    dispatches on them), finite positive prices, ``ts`` in epoch milliseconds, ``bid <= ask``,
    tuples of non-empty symbols, and news ids left at 0 (the core assigns them).
    """
    t = type(ev)
    e: Any = ev  # checked field by field: an adapter may have put anything in
    if t is Tick:
        what = f"Tick {e.symbol!r}"
        out = (
            []
            if isinstance(e.symbol, str) and e.symbol.strip() == e.symbol != ""
            else [f"{what}: symbol must be a non-empty string without surrounding spaces"]
        )
        if not _is_number(e.price) or e.price <= 0:
            out.append(f"{what}: price must be a finite number > 0, got {e.price!r}")
        out += _check_ts(e.ts, what)
        for name, lo_ok in (("size", 0.0), ("volume", 0.0)):
            v = getattr(e, name)
            if v is not None and (not _is_number(v) or v < lo_ok):
                out.append(f"{what}: {name} must be None or a finite number >= 0, got {v!r}")
        for name in ("bid", "ask", "prev_close"):
            v = getattr(e, name)
            if v is not None and (not _is_number(v) or v <= 0):
                out.append(f"{what}: {name} must be None or a finite number > 0, got {v!r}")
        if _is_number(e.bid) and _is_number(e.ask) and e.bid > e.ask:
            out.append(f"{what}: bid {e.bid} is above ask {e.ask}")
        return out
    if t is News:
        what = f"News {str(e.headline)[:40]!r}"
        out = (
            []
            if isinstance(e.headline, str) and e.headline.strip()
            else [f"{what}: headline must be non-empty text"]
        )
        out += _check_ts(e.ts, what)
        if not isinstance(e.source, str):
            out.append(f"{what}: source must be a string")
        if not isinstance(e.symbols, tuple) or not all(isinstance(s, str) and s for s in e.symbols):
            out.append(f"{what}: symbols must be a tuple of non-empty strings, got {e.symbols!r}")
        for name in ("url", "summary"):
            if getattr(e, name) is not None and not isinstance(getattr(e, name), str):
                out.append(f"{what}: {name} must be None or a string")
        if e.id != 0:
            out.append(f"{what}: id must be left at 0 (the core numbers news), got {e.id!r}")
        return out
    if t is Listing:
        if not isinstance(e.symbols, tuple) or not all(isinstance(s, str) and s for s in e.symbols):
            return [f"Listing: symbols must be a tuple of non-empty strings, got {e.symbols!r}"]
        return []
    if t is Bar:
        # The core's own check (interval, ts a multiple of it, low <= open, close <= high), and
        # the time unit.
        problem = event_problem(ev)
        return ([problem] if problem else []) + _check_ts(e.ts, f"Bar {e.symbol!r}")
    return [
        f"{t.__name__} is not a Tick, News or Listing, nor a Bar (exactly; the core drops the rest)"
    ]


def _plain_method(method: object, name: str, *args: object, **kwargs: object) -> list[str]:
    """A capability's method is a plain ``def`` (the core calls it without awaiting) that takes
    these arguments."""
    if not callable(method):
        return [f"`{name}` must be a method"]
    if inspect.iscoroutinefunction(method):
        return [f"{name}() must be a plain `def`: the core calls it without awaiting"]
    try:
        inspect.signature(method).bind(*args, **kwargs)
    except TypeError as exc:
        return [f"{name}() has the wrong parameters ({exc})"]
    except ValueError:  # no signature to inspect (a builtin): nothing to check
        pass
    return []


def _returns(method: Any, name: str, ok: Callable[[Any], bool], shape: str) -> list[str]:
    """Call a capability's method that takes no argument; its result must have ``shape``."""
    problems = _plain_method(method, name)
    if problems:
        return problems
    try:
        result = method()
    except Exception as exc:
        return [f"{name}() raised {type(exc).__name__}: {exc}"]
    return [] if ok(result) else [f"{name}() must return {shape}, got {result!r:.80}"]


def _check_capabilities(feed: object) -> list[str]:
    """A feed that has a capability's attribute claims it (ticker.core.events): it must have the
    declared shape. Call while the feed runs (``replay_status()`` needs the loop)."""
    out: list[str] = []
    if isinstance(feed, HasStallTimeout):
        t = feed.stall_timeout
        if t is not None and not (_is_number(t) and t >= 0):
            out.append(f"stall_timeout must be None or seconds (a number >= 0), got {t!r}")
    if isinstance(feed, HasHealth):
        out += _returns(
            feed.health,
            "health",
            lambda v: isinstance(v, dict) and isinstance(v.get("stale", []), list),
            "a dict (its `stale`, if any, a list of symbols)",
        )
    if isinstance(feed, HasStatus):
        out += _returns(feed.status, "status", lambda v: isinstance(v, str), "a string")
    if isinstance(feed, HasNames):
        out += _returns(
            feed.names,
            "names",
            lambda v: (
                isinstance(v, Mapping)
                and all(isinstance(k, str) and isinstance(n, str) for k, n in v.items())
            ),
            "a mapping of symbol to name (strings)",
        )
    if isinstance(feed, Controllable):
        out += _returns(
            feed.replay_status,
            "replay_status",
            lambda v: v is None or isinstance(v, dict),
            "a dict or None",
        )
        out += _plain_method(feed.replay_control, "replay_control", "pause", to=None, speed=None)
    if isinstance(feed, Preloadable):
        out += _returns(
            feed.load,
            "load",
            lambda v: isinstance(v, LoadSummary) and isinstance(v.events, int),
            "a report with `events` (an int) and `summary()`",
        )
    return out


def _check_factory(factory: Callable[..., Any], options: Mapping[str, str]) -> list[str]:
    """What ``ticker feeds`` and ``--feed`` need of the class an entry point names."""
    out: list[str] = []
    desc = getattr(factory, "description", None)
    if desc is None and not (factory.__doc__ or "").strip():
        out.append("no `description` (or docstring): `ticker feeds` has nothing to show")
    elif desc is not None and (not isinstance(desc, str) or not desc.strip() or "\n" in desc):
        out.append("`description` must be one non-empty line of text")
    opts = getattr(factory, "options", None)
    if opts is not None and not (
        isinstance(opts, Mapping)
        and all(isinstance(k, str) and isinstance(v, str) for k, v in opts.items())
    ):
        out.append(
            "`options` must map option names to help strings (see ticker_feeds.base.help_of)"
        )
    bogus = "no_such_option_for_check_feed"
    try:
        extra = factory({**options, bogus: "1"})
    except ValueError as exc:
        if "\n" in str(exc).strip():
            out.append("the ValueError for an unknown option must be one line")
    except Exception as exc:
        out.append(f"an unknown option must raise ValueError, not {type(exc).__name__}")
    else:
        out.append(
            f"an unknown option ({bogus}=1) was accepted; raise ValueError naming "
            f"the valid options (ticker_feeds.base.parse_options does)"
        )
        close = getattr(extra, "aclose", None)
        if callable(close):
            result = close()
            if inspect.isawaitable(result):
                result.close()  # type: ignore[attr-defined]
    return out


async def check_feed(
    feed: Feed | Callable[[Mapping[str, str]], Feed],
    options: Mapping[str, str] | None = None,
    *,
    min_events: int = 1,
    max_events: int = 100,
    within: float = 5.0,
) -> list[Event]:
    """Conformance check for a feed adapter; returns the events it yielded for more asserts.

    Give the factory (the class your entry point names) and options as ``--feed`` would pass
    them, or a ready instance. Checks: the factory has a one-line ``description`` and help
    strings in ``options``, rejects an unknown option with ``ValueError``; the feed has a
    ``name``, an ``events()`` async iterator and an ``aclose()`` coroutine; it yields at least
    ``min_events`` valid events (:func:`check_event`) within ``within`` seconds (stopping at
    ``max_events``); the optional capabilities it has (``ticker.core.events``: ``health()``,
    ``status()``, ``stall_timeout``, ``replay_status()``/``replay_control()``, ``load()``) have
    the declared shape; its iterator closes cleanly mid-stream, and ``aclose()`` returns promptly
    and may be called twice.

    Raises:
        FeedCheckError: every problem found, one per line.
    """
    problems: list[str] = []
    opts = dict(options or {})
    if isinstance(feed, type) or (callable(feed) and not isinstance(feed, Feed)):
        problems += _check_factory(feed, opts)
        try:
            instance: Any = feed(opts)
        except Exception as exc:
            raise FeedCheckError(
                f"the factory failed with {opts}: {type(exc).__name__}: {exc}"
            ) from exc
    else:
        instance = feed
    label = getattr(instance, "name", None)
    if not isinstance(label, str) or not label:
        problems.append("`name` must be a non-empty string")
    if not isinstance(instance, Feed):
        raise FeedCheckError("\n".join([*problems, "not a Feed: needs name, events(), aclose()"]))
    if not inspect.iscoroutinefunction(instance.aclose):
        problems.append("aclose() must be `async def`")
    agen: Any = instance.events()
    if inspect.iscoroutine(agen) or not hasattr(agen, "__anext__"):
        if inspect.iscoroutine(agen):
            agen.close()
        raise FeedCheckError(
            "\n".join(
                [
                    *problems,
                    "events() must return an async iterator "
                    "(write it as `async def events(self): ... yield ev`)",
                ]
            )
        )
    events: list[Event] = []
    try:
        async with asyncio.timeout(within):
            async for ev in agen:
                events.append(ev)
                problems += check_event(ev)
                if len(events) >= max_events:
                    break
    except TimeoutError:
        pass
    except Exception as exc:
        problems.append(f"events() raised {type(exc).__name__}: {exc}")
    if len(events) < min_events:
        problems.append(
            f"yielded {len(events)} events in {within:g}s; expected at least "
            f"{min_events} (pass options that make it produce events quickly)"
        )
    problems += _check_capabilities(instance)
    close_gen = getattr(agen, "aclose", None)
    if callable(close_gen):
        try:
            async with asyncio.timeout(within):
                await close_gen()
        except TimeoutError:
            problems.append("its events() iterator did not close within the timeout")
        except Exception as exc:
            problems.append(f"closing its events() iterator raised {type(exc).__name__}: {exc}")
    for attempt in ("aclose()", "a second aclose()"):
        try:
            async with asyncio.timeout(within):
                await instance.aclose()
        except TimeoutError:
            problems.append(f"{attempt} did not return within {within:g}s")
        except Exception as exc:
            problems.append(f"{attempt} raised {type(exc).__name__}: {exc}")
    if problems:
        shown = list(dict.fromkeys(problems))
        more = len(shown) - 20
        raise FeedCheckError(
            f"feed {label!r} does not conform:\n  "
            + "\n  ".join(shown[:20])
            + (f"\n  ... and {more} more" if more > 0 else "")
        )
    return events


class FakeFeed:
    """A feed that yields ``events`` and then whatever is ``push``-ed, until ``end()``.

    Args:
        events: yielded first, in order.
        name: the feed's name.
    """

    def __init__(self, events: Iterable[Event] = (), name: str = "fake") -> None:
        self.name = name
        self._queue: asyncio.Queue[Event | None] = asyncio.Queue()
        for ev in events:
            self._queue.put_nowait(ev)
        self.closed = False

    def push(self, *events: Event) -> None:
        """Make events available to the running ``events()`` iterator."""
        for ev in events:
            self._queue.put_nowait(ev)

    def end(self) -> None:
        """Finish the iterator after what was pushed so far."""
        self._queue.put_nowait(None)

    async def events(self) -> AsyncIterator[Event]:
        while True:
            ev = await self._queue.get()
            if ev is None:
                return
            yield ev

    async def aclose(self) -> None:
        self.closed = True
