"""Options shared by several commands, declared once as ``Annotated`` aliases."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

Preset = Annotated[
    str, typer.Option("--preset", "-p", help="A shipped preset name (see `mtgc presets`) or a YAML path.")
]
Timesteps = Annotated[int | None, typer.Option("--timesteps", help="Override train.timesteps (env steps).")]
Seed = Annotated[int | None, typer.Option("--seed", help="Override train.seed.")]
Sets = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        metavar="KEY=VALUE",
        help="Override any preset key, type-checked: --set algo.batch_size=512 (repeatable).",
    ),
]


def _writable_runs_dir(value: Path) -> Path:
    # Checked as the option is read: exit 2 before anything is built or written.
    from mtgc_cli.runs import check_runs_dir

    check_runs_dir(value)
    return value


RunsDir = Annotated[
    Path, typer.Option("--runs-dir", help="Where run folders are written.", callback=_writable_runs_dir)
]


# The arguments of the running invocation, recorded in each run's command.txt.
_argv: list[str] = []


def record_invocation(argv: list[str]) -> None:
    _argv[:] = argv


def invocation() -> list[str]:
    """The command line as typed: ``["mtgc", "train", "--preset", ...]``."""
    return ["mtgc", *_argv]
