"""The README and docs/protocol.md document every message type, op, error code and close code."""

from __future__ import annotations

import inspect
import re

import orjson

from tests.conftest import ROOT
from ticker.core import wsframe
from ticker.core.protocol import _CLIENT_OPS, _SERVER_TYPES, ERROR_CODES
from ticker.hub.broadcaster import CLOSE_GOING_AWAY, CLOSE_POLICY, CLOSE_TRY_AGAIN
from ticker.net.wsconn import CLOSE_ABNORMAL


def _section(title: str) -> str:
    text = (ROOT / "README.md").read_text()
    m = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## )", text, re.S | re.M)
    assert m, f"README has no '## {title}' section"
    return m.group(1)


def test_readme_starts_with_the_two_commands() -> None:
    text = (ROOT / "README.md").read_text()
    first_block = text.split("```")[1]
    assert "make run" in first_block and "make test" in first_block


def test_wire_protocol_section_shows_every_type_op_and_code() -> None:
    section = _section("Wire protocol")
    examples = [orjson.loads(line) for line in section.splitlines() if line.startswith("{")]
    types = {e["type"] for e in examples if "type" in e}
    ops = {e["op"] for e in examples if "op" in e}
    assert set(_SERVER_TYPES.values()) <= types
    assert set(_CLIENT_OPS.values()) <= ops
    for code in ERROR_CODES:
        assert f"`{code}`" in section


def test_the_protocol_doc_shows_every_message_op_error_and_close_code() -> None:
    """docs/protocol.md is the contract: one example of every message type and op, and every
    error code and close code the server sends."""
    doc = (ROOT / "docs" / "protocol.md").read_text()
    examples = [orjson.loads(line) for line in doc.splitlines() if line.startswith("{")]
    assert set(_SERVER_TYPES.values()) <= {e["type"] for e in examples if "type" in e}
    assert set(_CLIENT_OPS.values()) <= {e["op"] for e in examples if "op" in e}
    for code in ERROR_CODES:
        assert f"| `{code}` |" in doc, code
    close_codes = {int(c) for c in re.findall(r"^\| (\d{4})\b", doc, re.M)}
    sent = {CLOSE_GOING_AWAY, CLOSE_POLICY, CLOSE_TRY_AGAIN, CLOSE_ABNORMAL, 1002, 1007, 1009}
    assert sent <= close_codes, sent - close_codes
    # Every close code the frame reader raises is among them.
    raised = {int(c) for c in re.findall(r"FrameError\((\d{4})", inspect.getsource(wsframe))}
    assert raised <= close_codes, raised - close_codes
