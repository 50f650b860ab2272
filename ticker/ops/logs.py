"""Logging set-up: plain or JSON lines (``--log-json``), with secrets scrubbed from every record.

:class:`Redactor` and :class:`JsonFormatter` are pure (text in, text out). :func:`setup_logging`
is the I/O shell: one stderr handler on the root logger carrying a :class:`RedactingFilter`, so
whatever any logger emits (ours, aiohttp's, a plug-in's) passes through the same scrubbing. The
feed adapters already keep their keys out of their messages; this is the safety net behind them.

A JSON line holds ``ts`` (ISO 8601, UTC, ms), ``level``, ``logger``, ``msg``, then the record's
structured extras (``extra={"feed": ..., "session": ..., "code": ...}``), then ``exc`` (the
traceback) when there is one. Newlines inside values are escaped, so a record is one line.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import IO, Any
from urllib.parse import quote, quote_plus

import orjson

__all__ = [
    "LEVELS",
    "PLAIN_FORMAT",
    "JsonFormatter",
    "RedactingFilter",
    "Redactor",
    "protect",
    "secrets_from_env",
    "setup_logging",
]

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
PLAIN_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
MASK = "***"

# Names whose value is a secret, as a whole word or after a prefix (api_key, x-api-key,
# access_token, APCA_API_SECRET_KEY, redis_password...). Not `key_env`: that names a variable.
_NAME = (
    r"(?:[a-z0-9]+[_-])*"
    r"(?:token|secret|password|passwd|pwd|key|apikey|auth|authorization|signature|sig|"
    r"credentials?|cookie)s?"
)
_SECRET_NAME = re.compile(rf"(?i){_NAME}")
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # scheme://user:PASSWORD@host (a redis:// bus URL, a proxy URL)
    (re.compile(r"(?i)(\b[a-z][a-z0-9+.-]*://[^\s:/@]*:)[^\s@/]+(?=@)"), r"\1" + MASK),
    # Authorization: Bearer TOKEN, authorization=Basic ...
    (
        re.compile(
            r"(?i)(\b(?:proxy-)?authorization\s*[:=]\s*(?:(?:bearer|basic|token|digest)\s+)?)"
            r"[^\s,;'\"]+"
        ),
        r"\1" + MASK,
    ),
    (re.compile(r"(?i)(\bbearer\s+)[a-z0-9._~+/=-]+"), r"\1" + MASK),
    # "key": "value" and 'secret': 'value' (JSON, Python reprs of dicts)
    (
        re.compile(rf"(?i)((?P<q>[\"'])\b{_NAME}(?P=q)\s*:\s*(?P=q))[^\"']*(?P=q)"),
        r"\1" + MASK + r"\g<q>",
    ),
    # token=value, api_key=value (query strings, key=value options, environment dumps)
    # (a colon ends the value only where text follows it: "...?token=X: connection refused")
    (re.compile(rf"(?i)(\b{_NAME}=)(?:[^\s&;,'\"<>:]|:(?!\s|$))+"), r"\1" + MASK),
)

# Environment variables whose values are scrubbed wherever they appear.
_SECRET_ENV = re.compile(r"(?i)(token|secret|passw(or)?d|pwd|api_?key|_key(_id)?$|credential|auth)")
_MIN_SECRET = 6  # shorter values ("1", "yes") would scrub ordinary words


def secrets_from_env(environ: Mapping[str, str]) -> list[str]:
    """Values of variables named like secrets (``*TOKEN*``, ``*SECRET*``, ``*API_KEY*``,
    ``*PASSWORD*``, ``*_KEY``...), at least 6 characters long. Pure; no I/O."""
    return [v for k, v in environ.items() if _SECRET_ENV.search(k) and len(v) >= _MIN_SECRET]


class Redactor:
    """Replaces secrets in text by ``***``. Pure; no I/O.

    Two nets: patterns (``token=...``, ``Authorization: ...``, ``"secret": "..."``,
    ``scheme://user:password@``) and known secret values (from the environment, a bus URL),
    also in their URL-quoted forms.

    Args:
        secrets: literal values to scrub wherever they appear (shorter than 6 characters are
            ignored).
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._values: set[str] = set()
        self._literal: re.Pattern[str] | None = None
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        """Scrub these values too."""
        for s in secrets:
            if len(s) >= _MIN_SECRET:
                self._values.update({s, quote(s, safe=""), quote_plus(s)})
        if self._values:
            # Longest first, so a secret that contains another is masked whole.
            alts = sorted(self._values, key=len, reverse=True)
            self._literal = re.compile("|".join(re.escape(v) for v in alts))

    def __call__(self, text: str) -> str:
        if self._literal is not None:
            text = self._literal.sub(MASK, text)
        for pattern, repl in _PATTERNS:
            text = pattern.sub(repl, text)
        return text

    def scrub(self, value: Any, name: str | None = None) -> Any:
        """``value`` with every string in it redacted (through lists, tuples and dicts); a value
        held under a secret-like ``name`` (``token``, ``api_key``, ``Authorization``...) is
        masked whole."""
        if name is not None and _SECRET_NAME.fullmatch(name) and value is not None:
            if isinstance(value, str | int | float | bytes):
                return MASK
        if isinstance(value, str):
            return self(value)
        if isinstance(value, list | tuple):
            return [self.scrub(v) for v in value]
        if isinstance(value, dict):
            return {
                self.scrub(k): self.scrub(v, k if isinstance(k, str) else None)
                for k, v in value.items()
            }
        return value


# Attributes every LogRecord has; anything else on a record came from `extra=`.
_STANDARD = frozenset(
    logging.LogRecord("", 0, "", 0, "", None, None).__dict__.keys()
    | {"message", "asctime", "taskName"}
)


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    """The structured fields a caller attached with ``extra=``."""
    return {
        k: v for k, v in record.__dict__.items() if k not in _STANDARD and not k.startswith("_")
    }


class RedactingFilter(logging.Filter):
    """Scrubs a record's message, arguments, extras and traceback before any formatter sees it.

    Args:
        redactor: what to scrub.
    """

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        redact = self.redactor
        try:
            message = record.getMessage()
        except Exception:  # bad %-args: keep what we can, the record still goes out
            message = f"{record.msg!r} {record.args!r}"
        record.msg = redact(message)
        record.args = None
        for k, v in _extras(record).items():
            setattr(record, k, redact.scrub(v, k))
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


def _utf8(value: Any) -> Any:
    """Strings made encodable (lone surrogates replaced), through lists and dicts."""
    if isinstance(value, str):
        return value.encode("utf-8", "replace").decode("utf-8")
    if isinstance(value, list | tuple):
        return [_utf8(v) for v in value]
    if isinstance(value, dict):
        return {str(_utf8(k)): _utf8(v) for k, v in value.items()}
    return value


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line: ``ts``, ``level``, ``logger``, ``msg``, the
    extras, ``exc``. Pure; no I/O (it formats; the handler writes).

    An extra named like a standard key (``ts``, ``level``, ``logger``, ``msg``, ``exc``) is
    renamed with an ``x_`` prefix rather than dropped; a value JSON cannot hold becomes its
    ``repr``.
    """

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for k, v in _extras(record).items():
            out["x_" + k if k in out or k in ("exc", "stack") else k] = v
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            out["exc"] = record.exc_text
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        return _dumps(out)


def _dumps(out: dict[str, Any]) -> str:
    opts = orjson.OPT_NON_STR_KEYS
    try:
        return orjson.dumps(out, default=repr, option=opts).decode()
    except (TypeError, orjson.JSONEncodeError):
        pass
    # A value orjson refuses (an int over 64 bits, a lone surrogate, a cycle): per field.
    safe: dict[str, Any] = {}
    for k, v in out.items():
        try:
            orjson.dumps(v, default=repr, option=opts)
            safe[k] = v
        except (TypeError, orjson.JSONEncodeError):
            try:
                safe[k] = _utf8(v)
                orjson.dumps(safe[k], default=repr, option=opts)
            except (TypeError, orjson.JSONEncodeError, RecursionError):
                safe[k] = _utf8(repr(v))
    return orjson.dumps(safe, default=repr, option=opts).decode()


_active: list[Redactor] = []


def protect(*values: str) -> None:
    """Scrub these values from every log record from now on (a password in a ``--bus`` URL)."""
    for r in _active:
        r.add(v for v in values if v)


def setup_logging(
    level: str = "INFO",
    *,
    json: bool = False,
    stream: IO[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> bool:
    """Log to ``stream`` (stderr) at ``level``, as plain text or JSON lines, secrets scrubbed.

    Like ``logging.basicConfig``, it leaves a root logger that already has handlers alone (an
    application embedding ticker, or pytest).

    Args:
        level: one of :data:`LEVELS` (any case).
        json: one JSON object per line instead of plain text.
        stream: where to write (default ``sys.stderr``).
        environ: where to find secret values to scrub (default ``os.environ``).

    Returns:
        whether the handler was installed.

    Raises:
        ValueError: an unknown level.
    """
    name = level.upper()
    if name not in LEVELS:
        raise ValueError(f"unknown log level {level!r}; valid: {', '.join(LEVELS)}")
    root = logging.getLogger()
    if root.handlers:
        return False
    redactor = Redactor(secrets_from_env(os.environ if environ is None else environ))
    _active.append(redactor)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if json else logging.Formatter(PLAIN_FORMAT))
    handler.addFilter(RedactingFilter(redactor))
    root.addHandler(handler)
    root.setLevel(name)
    logging.captureWarnings(True)  # warnings become records: one format, scrubbed too
    return True
