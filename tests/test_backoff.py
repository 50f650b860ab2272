"""Retry delays (ticker.core.backoff): exponential with equal jitter. Sync; hypothesis."""

from __future__ import annotations

import random

from hypothesis import given, strategies as st

from ticker.core.backoff import backoff_delay

delays = st.floats(min_value=1e-6, max_value=3600.0, allow_nan=False, allow_infinity=False)


@given(attempt=st.integers(-10, 10_000), initial=delays, maximum=delays, seed=st.integers())
def test_a_delay_is_in_the_upper_half_of_its_step_and_never_past_the_cap(
    attempt: int, initial: float, maximum: float, seed: int
) -> None:
    d = min(maximum, initial * 2.0 ** min(max(attempt, 0), 60))
    delay = backoff_delay(attempt, initial=initial, maximum=maximum, rng=random.Random(seed))
    assert d / 2 <= delay <= d
    assert delay <= maximum
    assert delay >= min(initial, maximum) / 2


@given(initial=delays, maximum=delays, seed=st.integers())
def test_the_floor_doubles_until_the_cap(initial: float, maximum: float, seed: int) -> None:
    """The fixed half grows with every failure: attempt n never waits less than the random
    half of attempt n - 1 could at most give, until both reach the cap."""
    rng = random.Random(seed)
    drawn = [backoff_delay(n, initial=initial, maximum=maximum, rng=rng) for n in range(70)]
    for n in range(1, 70):
        step = min(maximum, initial * 2.0**n)
        assert drawn[n] >= step / 2 >= min(maximum, initial * 2.0 ** (n - 1)) / 2


def test_a_long_outage_does_not_overflow() -> None:
    rng = random.Random(1)
    assert 15.0 <= backoff_delay(10**9, initial=0.5, maximum=30.0, rng=rng) <= 30.0


def test_the_same_seed_gives_the_same_delays() -> None:
    def draw(seed: int) -> list[float]:
        rng = random.Random(seed)
        return [backoff_delay(n, initial=0.1, maximum=5.0, rng=rng) for n in range(10)]

    assert draw(7) == draw(7) != draw(8)
