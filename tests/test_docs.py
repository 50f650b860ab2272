"""The README documents every message type, op and error code of the protocol."""

from __future__ import annotations

import re

import orjson

from tests.conftest import ROOT
from ticker.protocol import _CLIENT_OPS, _SERVER_TYPES, ERROR_CODES


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
