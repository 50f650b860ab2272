"""Optional capabilities are found by declared Protocols (ticker.core.events, ticker.bus.memory),
and ``--feed`` specs become supervised sources (ticker.bus.registry.sources_from_specs).

The capabilities' effects are tested where they show: ``health()``/``status()`` in test_bus.py and
test_stall.py, ``replay_status()``/``replay_control()`` in test_replay_feed.py, ``load()`` in
test_replay_layouts.py, ``post()`` in test_redis.py; check_feed's shape checks in
tests/feeds/test_conformance.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from importlib.metadata import EntryPoint
from typing import ClassVar

import pytest

from ticker.bus.memory import MemoryBus, Transactional
from ticker.bus.redis import RedisBus
from ticker.bus.registry import PluginError, SpecError, sources_from_specs
from ticker.bus.supervisor import FeedSource
from ticker.config import QUARANTINE_AFTER, Supervision
from ticker.core.events import Event, Tick


class Patient:
    """A feed whose own stall timeout is a class attribute."""

    stall_timeout: ClassVar[float] = 12.0

    def __init__(self, options: Mapping[str, str] | None = None) -> None:
        self.name = "patient"

    async def events(self) -> AsyncIterator[Event]:
        yield Tick("P", 1.0, 1.7e12)

    async def aclose(self) -> None:
        pass


class Plain(Patient):
    stall_timeout = None  # type: ignore[assignment]  # claims it, with "never"


EPS = {
    name: EntryPoint(name=name, value=value, group="ticker.feeds")
    for name, value in (
        ("patient", "tests.test_capabilities:Patient"),
        ("broken", "ticker_no_such_module_for_tests:Feed"),
    )
}


def test_only_the_redis_bus_posts_in_one_transaction() -> None:
    assert issubclass(RedisBus, Transactional)
    assert not isinstance(MemoryBus(lambda ev: None), Transactional)


def test_a_ready_feed_brings_its_stall_timeout() -> None:
    assert FeedSource.of(Patient()).stall_timeout == 12.0
    assert FeedSource.of(Plain()).stall_timeout is None


def test_specs_become_labelled_sources_with_the_supervision_settings() -> None:
    sources, broken = sources_from_specs(["patient", "patient"], eps=EPS)
    assert [s.name for s in sources] == ["patient", "patient#2"] and broken == []
    assert [s.stall_timeout for s in sources] == [12.0, 12.0], "the feed's own"
    assert sources[0].quarantine_after == QUARANTINE_AFTER
    policy = Supervision(stall_timeout=3.0, quarantine_after=2, quarantine_window=9.0)
    (src,), _ = sources_from_specs(["patient"], policy, EPS)
    assert (src.stall_timeout, src.quarantine_after, src.quarantine_window) == (3.0, 2, 9.0)


def test_a_plugin_that_fails_to_import_is_deferred_unless_it_is_alone() -> None:
    sources, broken = sources_from_specs(["patient", "broken"], eps=EPS)
    assert [s.name for s in sources] == ["patient", "broken"]
    assert len(broken) == 1 and "'broken' failed to load" in str(broken[0])
    with pytest.raises(PluginError, match="'broken' failed to load"):
        sources_from_specs(["broken"], eps=EPS)
    with pytest.raises(SpecError, match="unknown feed 'nope'"):
        sources_from_specs(["patient", "nope"], eps=EPS)
