"""HTTP error bodies: one shape, ``{"error": CODE, "message": TEXT}``, built in one place
(ticker.net.responses). The endpoints' own tests check each refusal over a real server."""

from __future__ import annotations

import ast

import orjson

from tests.conftest import ROOT
from ticker.net.responses import json_error, json_response


def test_an_error_is_code_then_message_then_extra_fields() -> None:
    resp = json_error(429, "too_many_connections", "slow down", headers={"Retry-After": "3"})
    assert resp.status == 429
    assert resp.content_type == "application/json"
    assert resp.headers["Retry-After"] == "3"
    assert isinstance(resp.body, bytes)
    assert resp.body == b'{"error":"too_many_connections","message":"slow down"}'
    extra = json_error(400, "bad_request", "no", extra={"index": 3, "field": None})
    assert isinstance(extra.body, bytes)
    assert list(orjson.loads(extra.body)) == ["error", "message", "index", "field"]


def test_a_json_response() -> None:
    resp = json_response({"accepted": 2}, 202)
    assert (resp.status, resp.content_type, resp.body) == (
        202,
        "application/json",
        b'{"accepted":2}',
    )


def test_no_other_module_builds_an_error_body() -> None:
    """A dict with both ``error`` and ``message`` keys is an HTTP error body: only
    ticker/net/responses.py writes one."""
    found = []
    for path in sorted((ROOT / "ticker").rglob("*.py")):
        if path.name == "responses.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Dict):
                keys = {k.value for k in node.keys if isinstance(k, ast.Constant)}
                if {"error", "message"} <= keys:
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not found, found
