"""Shared fixtures. Tests share two cores with each other's processes: one torch thread each."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

# Tests run in two pytest-xdist workers, and many start `mtgc` subprocesses: one thread each, or
# threads outnumber the cores (20-60x slower here). `mtgc train` keeps OMP_NUM_THREADS when it is
# set, in this process (CliRunner) and in the subprocesses that inherit it.
os.environ["OMP_NUM_THREADS"] = "1"

import pytest
import torch
from typer.testing import CliRunner

from mtgc_cli.cli.app import app

torch.set_num_threads(1)


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def invoke(runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Run `mtgc ARGS` in a fresh working directory (so runs/ lands in tmp_path)."""
    monkeypatch.chdir(tmp_path)

    def _invoke(*args: str):
        return runner.invoke(app, list(args))

    return _invoke


def run_dirs(root: Path) -> list[Path]:
    """Every run folder (one holding config.yaml) under ``root``.

    Tests poll this while a run is starting; `os.walk` skips a folder that vanishes
    mid-walk (mtgc's runs-dir write probe is made and removed at once), where
    `Path.rglob` raises FileNotFoundError.
    """
    return sorted(Path(top) for top, _, files in os.walk(root) if "config.yaml" in files)


def assert_one_line_error(result, code: int, *fragments: str) -> None:
    """``result`` (CliRunner's or a subprocess's) exited ``code`` with one ``mtgc: error:`` line on
    stderr holding every fragment, and no traceback."""
    exit_code = getattr(result, "exit_code", getattr(result, "returncode", None))
    output = getattr(result, "output", None) or (result.stdout + result.stderr)
    assert exit_code == code, output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mtgc: error: "), result.stderr
    assert "Traceback" not in output
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def stderr_lines(err: str, prefix: str) -> list[str]:
    """The lines of ``err`` that start with ``prefix`` (``mtgc: warning:``, ``mtgc: error:``)."""
    return [line for line in err.splitlines() if line.startswith(prefix)]


def mtgc_command(*args: str) -> list[str]:
    """``mtgc ARGS`` as a command line for a fresh process of this interpreter."""
    return [sys.executable, "-m", "mtgc_cli.cli.app", *args]


def mtgc_subprocess(
    args: list[str], cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """``mtgc ARGS`` in a fresh process (one torch thread unless ``env`` says otherwise)."""
    return subprocess.run(
        mtgc_command(*args),
        cwd=cwd,
        env=env or {**os.environ, "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
