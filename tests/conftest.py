"""Shared fixtures. Tests share two cores with each other's processes: one torch thread each."""

from __future__ import annotations

import os
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
