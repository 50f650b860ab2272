"""Structured logs and secret scrubbing (ticker.ops.logs), and ``ticker serve --log-json`` for real.

The pure parts (:class:`Redactor`, :class:`JsonFormatter`, ``secrets_from_env``) get hypothesis
properties; the whole path is checked on real ``ticker serve`` processes whose feeds fail in ways
that would put a secret in a log line (an RSS URL with ``?token=``, an API key in the
environment, a password in the ``--bus`` URL): every stderr line must be one JSON object with
the expected keys, and no secret may appear anywhere.
"""

from __future__ import annotations

import io
import logging
import os
import signal
import string
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import orjson
import pytest
from hypothesis import assume, given, settings, strategies as st

from tests.conftest import MS, ROOT
from tests.redisutil import RedisServer, free_port
from tests.wsutil import RecordingTransport, until
from ticker.bus.redis import RedisBus
from ticker.bus.supervisor import FeedRunner, FeedSource
from ticker.config import HubConfig
from ticker.core.events import Event
from ticker.hub.broadcaster import Hub
from ticker.ops.logs import (
    MASK,
    JsonFormatter,
    RedactingFilter,
    Redactor,
    secrets_from_env,
    setup_logging,
)

SAFE = string.ascii_letters + string.digits + "-_.~"
secret_values = st.text(alphabet=SAFE, min_size=8, max_size=40)

CONTEXTS = (
    "GET https://api.example.com/v1/news?symbol=AAPL&token={s}&limit=5 failed",
    "connecting to wss://ws.finnhub.io?token={s}",
    "options: api_key={s}, symbols=AAPL",
    "env APCA_API_SECRET_KEY={s}",
    "password={s}",
    "x-api-key={s}&y=1",
    "Authorization: Bearer {s}",
    "headers {{'Authorization': 'Basic {s}'}}",
    "authorization={s}",
    "bus redis://:{s}@redis.internal:6379/0 is down",
    "proxy https://user:{s}@proxy.local:3128",
    'sent {{"action": "auth", "key": "{s}", "secret": "{s}"}}',
    "{{'X-Api-Key': '{s}', 'Accept': 'json'}}",
    "retry with bearer {s}",
)


# Redaction: pure


@given(
    s=secret_values,
    context=st.sampled_from(CONTEXTS),
    before=st.text(max_size=30),
    after=st.text(max_size=30),
)
def test_secrets_in_known_shapes_are_masked(s: str, context: str, before: str, after: str) -> None:
    assume(s not in before + after)
    out = Redactor()(f"{before} {context.format(s=s)} {after}")
    assert s not in out
    assert MASK in out


@given(s=secret_values, before=st.text(max_size=40), after=st.text(max_size=40))
def test_known_secret_values_are_masked_anywhere(s: str, before: str, after: str) -> None:
    assume(s not in before + after and "*" not in before + after)
    out = Redactor([s])(before + s + after)
    assert s not in out
    assert out.startswith(before[: max(0, len(before) - len(s))])


@given(st.text(max_size=200))
def test_redaction_is_idempotent(text: str) -> None:
    r = Redactor(["hunter2hunter2"])
    once = r(text)
    assert r(once) == once


@given(st.text(alphabet=string.ascii_letters + string.digits + " .,!?-_/()#%+", max_size=200))
def test_ordinary_text_is_left_alone(text: str) -> None:
    # No `=`, `:`, `@` or quotes: nothing shaped like a credential, nothing to mask.
    assume("bearer" not in text.lower())
    assert Redactor(["not-in-this-text-0"])(text) == text


def test_names_that_are_not_secrets_keep_their_values() -> None:
    r = Redactor()
    for text in (
        "key_env=FINNHUB_API_KEY",
        "monkey=banana",
        "symbols=AAPL+MSFT",
        "sim:symbols=5,rate=200,seed=1",
        "session=s-0123456789ab code=1013",
    ):
        assert r(text) == text, text


@given(
    names=st.lists(
        st.sampled_from(
            (
                "FINNHUB_API_KEY",
                "APCA_API_KEY_ID",
                "APCA_API_SECRET_KEY",
                "GITHUB_TOKEN",
                "REDIS_PASSWORD",
                "MY_SERVICE_AUTH",
            )
        ),
        unique=True,
    ),
    values=st.lists(secret_values, min_size=6, max_size=6, unique=True),
    short=st.text(alphabet=SAFE, max_size=5),
)
def test_secrets_from_env_picks_secret_names_only(
    names: list[str], values: list[str], short: str
) -> None:
    env = {"HOME": "/home/someone", "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "TERM": "xterm"}
    env |= dict(zip(names, values, strict=False))
    env["SHORT_TOKEN"] = short  # too short to be told apart from ordinary words
    assert sorted(secrets_from_env(env)) == sorted(values[: len(names)])


# JSON lines: pure

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=8,
)
STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}
extra_names = st.from_regex(r"[a-z][a-z_]{0,12}", fullmatch=True).filter(
    lambda k: k not in STANDARD
)


def record(
    msg: str, extra: dict[str, Any] | None = None, exc_info: Any = None
) -> logging.LogRecord:
    return logging.getLogger("ticker.test").makeRecord(
        "ticker.test", logging.WARNING, __file__, 1, msg, (), exc_info, extra=extra
    )


@given(msg=st.text(), extra=st.dictionaries(extra_names, json_values, max_size=5))
def test_json_line_holds_message_and_extras(msg: str, extra: dict[str, Any]) -> None:
    line = JsonFormatter().format(record(msg, extra))
    assert "\n" not in line and "\r" not in line
    obj = orjson.loads(line)
    assert obj["msg"] == msg
    assert obj["level"] == "warning" and obj["logger"] == "ticker.test"
    assert datetime.fromisoformat(obj["ts"]).utcoffset() is not None
    renamed = {
        ("x_" + k if k in ("ts", "level", "logger", "msg", "exc", "stack") else k): v
        for k, v in extra.items()
    }
    for k, v in renamed.items():
        assert obj[k] == v, k
    assert set(obj) == {"ts", "level", "logger", "msg", *renamed}


@given(
    value=st.one_of(
        st.integers(min_value=2**64),
        st.text(alphabet=st.characters(categories=["Cs"]), min_size=1, max_size=3),
        st.builds(object),
        st.sets(st.integers(), max_size=3),
    )
)
def test_json_line_survives_values_json_cannot_hold(value: Any) -> None:
    obj = orjson.loads(JsonFormatter().format(record("odd", {"odd": value})))
    assert obj["msg"] == "odd" and "odd" in obj


def test_json_line_carries_the_traceback_on_one_line() -> None:
    try:
        1 / 0  # noqa: B018
    except ZeroDivisionError:
        rec = record("failed", exc_info=sys.exc_info())
    line = JsonFormatter().format(rec)
    assert "\n" not in line
    obj = orjson.loads(line)
    assert "ZeroDivisionError" in obj["exc"] and "Traceback" in obj["exc"]


def test_filter_scrubs_message_args_extras_and_traceback() -> None:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RedactingFilter(Redactor(["env-secret-value-1"])))
    logger = logging.getLogger("ticker.test.filter")
    logger.propagate = False
    logger.addHandler(handler)
    try:
        logger.warning(
            "rss %s: %s",
            "https://news.example/rss?token=url-secret-2",
            "env-secret-value-1 rejected",
            extra={"url": "https://u:pw-secret-3@h/x", "headers": {"Authorization": "Bearer b4"}},
        )
        try:
            raise ValueError("bad key=trace-secret-5")
        except ValueError:
            logger.exception("with a traceback")
    finally:
        logger.removeHandler(handler)
    text = out.getvalue()
    for secret in ("url-secret-2", "env-secret-value-1", "pw-secret-3", "trace-secret-5"):
        assert secret not in text
    first, second = (orjson.loads(line) for line in text.splitlines())
    assert first["msg"] == f"rss https://news.example/rss?token={MASK}: {MASK} rejected"
    assert first["url"] == f"https://u:{MASK}@h/x"
    assert first["headers"] == {"Authorization": MASK}
    assert f"key={MASK}" in second["exc"]


def test_setup_logging_refuses_unknown_levels_and_leaves_configured_roots_alone() -> None:
    with pytest.raises(ValueError, match="unknown log level 'loud'"):
        setup_logging("loud")
    # pytest has put handlers on the root logger: like basicConfig, setup leaves it alone.
    before = list(logging.getLogger().handlers)
    assert before
    assert setup_logging("info", json=True) is False
    assert logging.getLogger().handlers == before


# Levels: an outage is a few lines, not one per retry


async def test_feed_failure_is_a_warning_with_its_fields(caplog: pytest.LogCaptureFixture) -> None:
    class Failing:
        name = "failing"

        async def events(self) -> AsyncIterator[Event]:
            for ev in self.fail():
                yield ev

        def fail(self) -> list[Event]:
            raise RuntimeError("upstream said no")

        async def aclose(self) -> None:
            pass

    caplog.set_level(logging.INFO, logger="ticker.feeds")
    runner = FeedRunner(
        FeedSource("failing", Failing), lambda ev: None, initial_backoff=0.01, max_backoff=0.02
    )
    runner.start()
    await until(lambda: runner.restarts >= 2, what="two restarts")
    await runner.stop()
    failed = [r for r in caplog.records if r.name == "ticker.feeds"]
    assert len(failed) >= 2 and all(r.levelno == logging.WARNING for r in failed)
    obj = orjson.loads(JsonFormatter().format(failed[0]))
    assert obj["level"] == "warning" and obj["logger"] == "ticker.feeds"
    assert obj["feed"] == "failing" and obj["error"] == "RuntimeError: upstream said no"
    assert 0.005 <= obj["restart_in_s"] <= 0.01
    assert obj["msg"].startswith("feed failing failed (RuntimeError: upstream said no)")


async def test_redis_outage_warns_once_per_operation_then_logs_it_back(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="ticker.redisbus")
    redis = RedisServer()  # our own: this test kills it
    bus = RedisBus(redis.url(), lambda ev: None, role="all", initial_backoff=0.02, max_backoff=0.1)

    def records(level: int, msg: str = "") -> list[logging.LogRecord]:
        return [
            r
            for r in caplog.records
            if r.name == "ticker.redisbus" and r.levelno == level and msg in r.getMessage()
        ]

    try:
        await bus.start()
        await until(lambda: bus.health()["state"] == "up", what="the bus up")
        redis.kill()
        # Several failed retries of reading (and renewing the lease, once a second)...
        await until(
            lambda: (
                len(records(logging.DEBUG, "redis read failed")) >= 3
                and len(records(logging.DEBUG, "redis lease failed")) >= 1
            ),
            within=8000 * MS,
            what="repeated failures",
        )
        # ...but one warning per operation.
        warned = [str(getattr(r, "op", "")) for r in records(logging.WARNING, "failed")]
        assert sorted(warned) == ["lease", "read"], warned
        redis.restart()
        await until(
            lambda: (
                bool(records(logging.INFO, "redis reader back"))
                and bool(records(logging.INFO, "redis lease back"))
            ),
            within=8000 * MS,
            what="the bus back in the log",
        )
        assert bus.health()["state"] == "up"
        # Failing again after recovery is news again: a warning.
        redis.kill()
        await until(
            lambda: len(records(logging.WARNING, "redis read failed")) == 2,
            within=8000 * MS,
            what="a second warning",
        )
    finally:
        await bus.stop()
        redis.close()


async def test_a_burst_of_policy_closes_is_logged_at_a_rate_then_summed_up(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="ticker.broadcaster")
    hub = Hub(HubConfig(rate=1.0, burst=1.0))
    hub.start()
    closed: list[int] = []

    async def close(code: int, reason: str) -> None:
        closed.append(code)

    n = 100
    clients = [hub.connect(RecordingTransport(), close, f"10.0.0.{i}") for i in range(n)]
    for c in clients:  # flooding past the rate limit: closed with 1008
        for _ in range(3):
            hub.receive(c, b'{"op":"ping","t":1}')
    await until(lambda: len(closed) == n, what="every flooder closed")

    def logged() -> tuple[list[logging.LogRecord], list[logging.LogRecord]]:
        recs = [r for r in caplog.records if r.name == "ticker.broadcaster"]
        return (
            [r for r in recs if r.getMessage().startswith("closing ")],
            [r for r in recs if r.getMessage().startswith("closed ")],
        )

    await until(lambda: bool(logged()[1]), what="the summary line")
    one_by_one, summary = logged()
    assert 20 <= len(one_by_one) < 30, len(one_by_one)
    assert {(getattr(r, "code", None)) for r in one_by_one} == {1008}
    assert len(one_by_one) + sum(getattr(r, "count", 0) for r in summary) == n
    await hub.stop()


# ticker serve, for real

URL_SECRET = "urlTok3n-9f8e7d6c5b4a"
ENV_SECRET = "envKey-0a1b2c3d4e5f6789"
BUS_SECRET = "busPassw0rd-1357924680"


def serve(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "ticker", "serve", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.startswith("listening on "), line
    return proc


def stop(proc: subprocess.Popen[str], after: float) -> str:
    """Let ``proc`` run ``after`` more seconds, SIGTERM it, return its stderr."""
    time.sleep(after)
    proc.send_signal(signal.SIGTERM)
    try:
        _, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err[-3000:]
    return err


def failing_feeds(dead: int) -> list[str]:
    """Feeds that fail at once, each with a secret where a careless log line would show it."""
    return [
        "--feed",
        "sim:symbols=3,rate=50,seed=1",
        "--feed",
        f"rss:urls=http://127.0.0.1:{dead}/feed.xml?token={URL_SECRET},interval=1,timeout=1",
        "--feed",
        f"finnhub:url=ws://127.0.0.1:{dead}/ws,backoff=0.05",
    ]


@pytest.mark.slow
def test_serve_log_json_every_line_is_json_and_no_secret_leaks() -> None:
    dead = free_port()
    proc = serve(
        "--log-json",
        *failing_feeds(dead),
        "--bus",
        f"redis://:{BUS_SECRET}@127.0.0.1:{dead}/0",
        env={"FINNHUB_API_KEY": ENV_SECRET},
    )
    err = stop(proc, 1500 * MS)
    for secret in (URL_SECRET, ENV_SECRET, BUS_SECRET):
        assert secret not in err
    lines = err.splitlines()
    records = []
    for line in lines:
        obj = orjson.loads(line)  # every line is one JSON object
        assert isinstance(obj, dict)
        assert {"ts", "level", "logger", "msg"} <= set(obj), obj
        assert obj["level"] in ("debug", "info", "warning", "error", "critical")
        datetime.fromisoformat(obj["ts"])
        records.append(obj)
    by_logger: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        by_logger.setdefault(r["logger"], []).append(r)
    listening = by_logger["ticker.server"][0]
    assert listening["msg"].startswith("listening on http://127.0.0.1:")
    assert listening["feeds"] == ["sim", "rss", "finnhub"] and listening["port"] > 0
    assert any(r["msg"] == "shutting down" for r in by_logger["ticker.server"])
    # The RSS failure names its URL: the token in it is masked, the rest is kept.
    rss = by_logger["ticker.feeds.rss"][0]
    assert rss["level"] == "warning"
    assert f"/feed.xml?token={MASK}" in rss["msg"]
    # The Redis bus is down: warnings with the operation as a field.
    redis = by_logger["ticker.redisbus"]
    ops = [r["op"] for r in redis]
    assert set(ops) >= {"lease", "read"}
    assert len(ops) == len(set(ops)), "one warning per operation, not one per retry"
    assert all(r["level"] == "warning" for r in redis)


@pytest.mark.slow
def test_serve_plain_logs_are_scrubbed_too() -> None:
    dead = free_port()
    proc = serve(*failing_feeds(dead), env={"FINNHUB_API_KEY": ENV_SECRET})
    err = stop(proc, 1000 * MS)
    assert URL_SECRET not in err and ENV_SECRET not in err
    assert f"/feed.xml?token={MASK}" in err
    assert " INFO ticker.server: listening on http://127.0.0.1:" in err
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(err.splitlines()[0])


def test_unknown_log_level_is_a_usage_error() -> None:
    r = subprocess.run(
        [sys.executable, "-m", "ticker", "serve", "--port", "0", "--log-level", "loud"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=30,
    )
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.strip().splitlines() == [
        "ticker: unknown log level 'loud'; valid: DEBUG, INFO, WARNING, ERROR, CRITICAL"
    ]


@settings(max_examples=25)
@given(level=st.sampled_from(["debug", "INFO", "Warning", "error"]))
def test_known_levels_in_any_case_are_accepted(level: str) -> None:
    root = logging.getLogger()
    assert root.handlers  # so setup_logging validates, then leaves pytest's handlers alone
    assert setup_logging(level) is False
