"""Shared fixtures. Tests share two cores with each other's processes: one torch thread each."""

from __future__ import annotations

from pathlib import Path

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
    """Every run folder (one holding config.yaml) under ``root``."""
    return sorted(p.parent for p in root.rglob("config.yaml"))
