"""The wheel: every package in it, the dashboard's files too, and it serves from a fresh venv.

Builds the wheel offline (``pip wheel --no-build-isolation``), installs it (not editable, no
dependencies) into a new venv that sees this environment's dependencies but not its editable
``ticker``, then runs that venv's ``ticker serve`` from a directory outside the checkout and fetches
``/``, ``/static/…`` and ``/vendor/plotly.min.js``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import urllib.request
import zipfile
from pathlib import Path

from tests.conftest import ROOT


def test_every_package_is_listed_in_pyproject() -> None:
    listed = set(
        tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    )
    found = {
        ".".join(p.parent.relative_to(ROOT).parts)
        for top in ("ticker", "ticker_feeds")
        for p in (ROOT / top).rglob("__init__.py")
    }
    assert found | {"ticker.web"} == listed


def _get(url: str) -> tuple[int, bytes, str]:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return resp.status, resp.read(), resp.headers.get("Content-Type", "")


def test_the_wheel_installs_and_serves_the_dashboard(tmp_path: Path) -> None:
    # Built from a clean copy: setuptools packs whatever a build/ folder holds, stale or not.
    src = tmp_path / "src"
    shutil.copytree(
        ROOT,
        src,
        ignore=shutil.ignore_patterns(
            ".git",
            ".venv",
            "build",
            "node_modules",
            "*.egg-info",
            "__pycache__",
            ".*_cache",
            ".hypothesis",
            "test-artifacts",
            "results",
        ),
    )
    dist = tmp_path / "dist"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(dist),
            str(ROOT),
        ],
        check=True,
        cwd=tmp_path,
        capture_output=True,
    )
    (wheel,) = dist.glob("ticker-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert {"ticker/web/index.html", "ticker/web/app.js", "ticker/web/style.css"} <= set(names)
    assert any(n.startswith("ticker/web/logic/") for n in names)
    assert "ticker/client/client.py" in names and "ticker_feeds/sim.py" in names

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    # The dependencies from this environment, as a plain path: its .pth files (the editable
    # install of this checkout) do not run, so `ticker` can only come from the wheel.
    (site / "_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)],
        check=True,
        capture_output=True,
    )
    where = subprocess.run(
        [str(python), "-c", "import ticker, json; print(json.dumps(ticker.__file__))"],
        check=True,
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert json.loads(where.stdout).startswith(str(venv)), where.stdout

    proc = subprocess.Popen(
        [str(venv / "bin" / "ticker"), "serve", "--port", "0", "--feed", "sim:seed=1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line.startswith("listening on "), (line, proc.stderr.read() if proc.stderr else "")
        base = line.split()[-1]
        status, body, ctype = _get(base + "/")
        assert status == 200 and b"<html" in body.lower() and "text/html" in ctype
        status, body, _ = _get(base + "/static/app.js")
        assert status == 200 and b"import" in body
        status, body, _ = _get(base + "/vendor/plotly.min.js")
        assert status == 200 and len(body) > 1_000_000
    finally:
        proc.terminate()
        proc.communicate(timeout=10)  # (and closes its pipes)
