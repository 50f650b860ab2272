"""A process's role (ticker.core.roles): one list, used by the CLI, the server and the Redis bus."""

from __future__ import annotations

import pytest

from ticker.bus.redis import RedisBus
from ticker.cli import main
from ticker.core.roles import ROLES, check_role, ingests, serves
from ticker.net.server import create_app


def test_what_each_role_does() -> None:
    assert ROLES[0] == "all"
    assert [(r, ingests(r), serves(r)) for r in ROLES] == [
        ("all", True, True),
        ("ingest", True, False),
        ("edge", False, True),
    ]
    assert [check_role(r) for r in ROLES] == list(ROLES)


def test_every_entry_point_takes_the_roles_and_only_them(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["serve", "--role", "both"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'both'" in err and all(repr(r) in err or r in err for r in ROLES)
    message = "role must be all, ingest or edge, got 'both'"
    with pytest.raises(ValueError, match=message):
        check_role("both")
    with pytest.raises(ValueError, match=message):
        create_app(role="both")
    with pytest.raises(ValueError, match=message):
        RedisBus("redis://127.0.0.1:1/0", lambda ev: None, role="both")
