"""The news-id rule (ticker.core.news_id), and the Redis bus's Lua script held to it: hypothesis
runs the script on a private ``redis-server`` (tests/redisutil.py) and the Python rule on the same
inputs, and they must agree."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator

import pytest
import redis
from hypothesis import given, settings, strategies as st

from tests.redisutil import RedisServer, redis_server  # noqa: F401 (a fixture)
from ticker.bus.redis import NEWS_SCRIPT
from ticker.core.news_id import news_id_floor, next_news_id

# Lua numbers are doubles: ids are exact up to 2**53 (epoch ms will not reach it for 285,000
# years). Clocks from 1970 to 2100, and before (a clock set wrong).
last_ids = st.integers(0, 2**50)
clocks = st.floats(0, 4.1e9, allow_nan=False, allow_infinity=False)


# The rule


@given(last=last_ids, now=clocks)
def test_an_id_is_past_the_last_and_not_before_the_clock(last: int, now: float) -> None:
    nid = next_news_id(last, now)
    assert nid > last
    assert nid >= news_id_floor(now) == int(now * 1000)
    assert nid in (last + 1, news_id_floor(now))


@given(start=last_ids, nows=st.lists(clocks, max_size=30))
def test_ids_strictly_increase_whatever_the_clock_does(start: int, nows: list[float]) -> None:
    ids = list(itertools.accumulate(nows, next_news_id, initial=start))
    assert all(a < b for a, b in itertools.pairwise(ids))


# The Lua script against it


@pytest.fixture(scope="module")
def client(redis_server: RedisServer) -> Iterator[redis.Redis]:  # noqa: F811
    r = redis.Redis(port=redis_server.port)
    try:
        yield r
    finally:
        r.close()


def run_script(r: redis.Redis, counter: str, now: float) -> int:
    """Give one new item its id as RedisBus does (a fresh dedupe key: a new item)."""
    prefix = counter.rsplit(":", 1)[0]
    nid = r.eval(
        NEWS_SCRIPT,
        3,
        counter,
        f"{prefix}:news",
        f"{prefix}:news_seen:{uuid.uuid4().hex}",
        news_id_floor(now),
        100,
        b'["N","H",1.0,"S",[],null,null]',
        60,
    )
    assert isinstance(nid, int)
    return nid


@settings(max_examples=100, deadline=None)
@given(last=last_ids, nows=st.lists(clocks, min_size=1, max_size=8))
def test_the_lua_script_gives_the_ids_of_the_python_rule(
    client: redis.Redis, last: int, nows: list[float]
) -> None:
    counter = f"t{uuid.uuid4().hex[:10]}:news_id"
    if last:  # (an absent counter is 0, as before the first item)
        client.set(counter, last)
    got = [run_script(client, counter, now) for now in nows]
    want = list(itertools.accumulate(nows, next_news_id, initial=last))[1:]
    assert got == want
    assert int(client.get(counter) or 0) == want[-1]
