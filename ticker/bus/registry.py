"""Feed discovery through entry points (group ``ticker.feeds``) and ``SPEC`` parsing.

A plug-in is loaded only when selected (or listed), so a broken one cannot take the server down:
its import error is reported by name (:class:`PluginError`), and ``deferred_source`` lets the
server run the other feeds while the supervisor retries the import with backoff. Built-in feeds
register through the same group.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from ticker.bus.supervisor import FeedSource, stall_timeout_of
from ticker.config import Supervision
from ticker.core.events import Feed, FeedFactory

__all__ = [
    "GROUP",
    "FeedInfo",
    "PluginError",
    "SpecError",
    "available",
    "deferred_source",
    "describe",
    "load",
    "parse_spec",
    "source_from_options",
    "source_from_spec",
    "sources_from_specs",
]

GROUP = "ticker.feeds"


class SpecError(ValueError):
    """A ``--feed`` SPEC that cannot be served: unknown feed, unknown or bad option."""


class PluginError(SpecError):
    """An installed plug-in that fails to import, or whose constructor raises something other
    than ``ValueError`` (a bug, a missing resource): its name and the error are in the message.
    Unlike a bad option, the server runs the other feeds and keeps retrying this one."""


def available(eps: Iterable[EntryPoint] | None = None) -> dict[str, EntryPoint]:
    """Every feed name an entry point declares (not imported yet)."""
    found = entry_points(group=GROUP) if eps is None else eps
    return {ep.name: ep for ep in found}


def parse_spec(spec: str) -> tuple[str, dict[str, str]]:
    """``name[:key=value,key=value...]`` -> (name, options).

    Raises:
        SpecError: empty name, or an option without ``=``.
    """
    name, _, rest = spec.strip().partition(":")
    name = name.strip()
    if not name:
        raise SpecError(f"feed spec {spec!r}: missing feed name")
    opts: dict[str, str] = {}
    for part in rest.split(",") if rest else []:
        if not part.strip():
            continue
        key, eq, value = part.partition("=")
        if not eq or not key.strip():
            raise SpecError(f"feed spec {spec!r}: option {part!r} is not key=value")
        opts[key.strip()] = value.strip()
    return name, opts


def load(name: str, eps: Mapping[str, EntryPoint] | None = None) -> FeedFactory:
    """Import the factory of feed ``name``.

    Raises:
        SpecError: no such feed (the message names the valid ones), or its plug-in fails to import.
    """
    eps = available() if eps is None else eps
    ep = eps.get(name)
    if ep is None:
        valid = ", ".join(sorted(eps)) or "(none installed)"
        raise SpecError(f"unknown feed {name!r}; available feeds: {valid}")
    try:
        factory: FeedFactory = ep.load()
    except Exception as exc:
        raise PluginError(f"feed {name!r} failed to load: {type(exc).__name__}: {exc}") from exc
    return factory


def source_from_spec(
    spec: str, eps: Mapping[str, EntryPoint] | None = None, label: str | None = None
) -> FeedSource:
    """A restartable :class:`FeedSource` for ``spec``; the options are checked now.

    Raises:
        SpecError: unknown feed, unknown option or bad value (:class:`PluginError`: the plug-in
            fails to import).
    """
    name, opts = parse_spec(spec)
    return source_from_options(name, opts, eps, label)


def source_from_options(
    name: str,
    opts: Mapping[str, str],
    eps: Mapping[str, EntryPoint] | None = None,
    label: str | None = None,
    *,
    stall_timeout: float | None = None,
) -> FeedSource:
    """Like :func:`source_from_spec`, options given as a mapping (values need no escaping).

    Args:
        stall_timeout: restart the feed after this many seconds without an event; default the
            feed's own ``stall_timeout`` (``HasStallTimeout``), if it has one (else never).

    Raises:
        SpecError: unknown feed, unknown option or bad value.
    """
    factory = load(name, eps)
    try:
        first: list[Feed] = [factory(opts)]
    except ValueError as exc:
        raise SpecError(f"feed {name!r}: {exc}") from exc
    except Exception as exc:  # a plug-in's bug is still one line, not a traceback
        raise PluginError(f"feed {name!r} failed to start: {type(exc).__name__}: {exc}") from exc

    def make() -> Feed:
        return first.pop() if first else factory(opts)

    if stall_timeout is None:
        stall_timeout = stall_timeout_of(first[0])
    return FeedSource(label or name, make, stall_timeout)


def deferred_source(
    spec: str, eps: Mapping[str, EntryPoint] | None = None, label: str | None = None
) -> FeedSource:
    """A source that imports and builds its feed at every (re)start: for a plug-in that fails
    to import or to construct.

    The supervisor shows the error in ``/healthz`` and retries with backoff (construction is
    supervised like ``events()``), so the other feeds run meanwhile, and installing a missing
    dependency (or whatever the constructor lacked) heals it without a restart.
    """
    name, opts = parse_spec(spec)

    def make() -> Feed:
        return load(name, eps)(opts)

    return FeedSource(label or name, make)


def sources_from_specs(
    specs: Sequence[str],
    supervision: Supervision | None = None,
    eps: Mapping[str, EntryPoint] | None = None,
) -> tuple[list[FeedSource], list[PluginError]]:
    """Feed sources for ``specs`` (``--feed``), labelled ``name``, ``name#2``..., with the
    supervision settings; and the plug-ins among them that fail to import.

    Such a plug-in, when other feeds are fine, is kept as a source that retries its import with
    backoff (shown in /healthz) while the others run: the caller reports it.

    Raises:
        SpecError: a bad spec, unknown feed or option; or every plug-in fails to import.
    """
    policy = supervision or Supervision()
    sources: list[FeedSource] = []
    broken: list[PluginError] = []
    counts: dict[str, int] = {}
    for spec in specs:
        name, opts = parse_spec(spec)
        counts[name] = counts.get(name, 0) + 1
        label = name if counts[name] == 1 else f"{name}#{counts[name]}"
        try:
            src = source_from_options(name, opts, eps, label, stall_timeout=policy.stall_timeout)
        except PluginError as exc:
            broken.append(exc)
            src = deferred_source(spec, eps, label)
        sources.append(src)
    if broken and len(broken) == len(sources):
        raise broken[0]
    sources = [
        dataclasses.replace(
            src,
            quarantine_after=policy.quarantine_after,
            quarantine_window=policy.quarantine_window,
            max_time_skew_s=policy.max_time_skew_s,
        )
        for src in sources
    ]
    return sources, broken


@dataclass(frozen=True, slots=True)
class FeedInfo:
    """What ``ticker feeds`` shows for one adapter."""

    name: str
    description: str
    options: Mapping[str, str]
    error: str | None = None


def describe(eps: Mapping[str, EntryPoint] | None = None) -> list[FeedInfo]:
    """Every available feed with its description and options; broken plug-ins carry ``error``."""
    eps = available() if eps is None else eps
    out: list[FeedInfo] = []
    for name in sorted(eps):
        try:
            factory: Any = load(name, eps)
        except SpecError as exc:
            out.append(FeedInfo(name, "", {}, str(exc)))
            continue
        doc = (
            getattr(factory, "description", None) or (factory.__doc__ or "").strip().split("\n")[0]
        )
        opts = getattr(factory, "options", None) or {}
        out.append(FeedInfo(name, str(doc), {str(k): str(v) for k, v in dict(opts).items()}))
    return out
