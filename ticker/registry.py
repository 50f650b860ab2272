"""Feed discovery through entry points (group ``ticker.feeds``) and ``SPEC`` parsing.

A plug-in is loaded only when selected (or listed), so a broken one cannot take the server down:
its import error is reported by name. Built-in feeds register through the same group.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from ticker.bus import FeedSource
from ticker.events import Feed, FeedFactory

__all__ = [
    "GROUP",
    "FeedInfo",
    "SpecError",
    "available",
    "describe",
    "load",
    "parse_spec",
    "source_from_spec",
]

GROUP = "ticker.feeds"


class SpecError(ValueError):
    """A ``--feed`` SPEC that cannot be served: unknown feed, unknown or bad option."""


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
        raise SpecError(f"feed {name!r} failed to load: {type(exc).__name__}: {exc}") from exc
    return factory


def source_from_spec(
    spec: str, eps: Mapping[str, EntryPoint] | None = None, label: str | None = None
) -> FeedSource:
    """A restartable :class:`FeedSource` for ``spec``; the options are checked now.

    Raises:
        SpecError: unknown feed, unknown option or bad value.
    """
    name, opts = parse_spec(spec)
    factory = load(name, eps)
    try:
        first: list[Feed] = [factory(opts)]
    except ValueError as exc:
        raise SpecError(f"feed {name!r}: {exc}") from exc

    def make() -> Feed:
        return first.pop() if first else factory(opts)

    return FeedSource(label or name, make)


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
