"""`mtgc compare`: relabel strategies x seeds for one preset, in parallel, with a summary."""

from __future__ import annotations

import shlex
import signal
from pathlib import Path
from typing import Annotated

import typer

from mtgc_cli.cli import options
from mtgc_cli.cli.app import app, invocation
from mtgc_cli.console import compare_table, stdout


@app.command()
def compare(
    preset: options.Preset,
    strategies: Annotated[
        str, typer.Option(help="Comma-separated: none,final,future,episode,random-task,future+best-task, ...")
    ] = "none,future",
    seeds: Annotated[int, typer.Option(help="Seeds per strategy (the preset's seed, +1, ...).")] = 3,
    workers: Annotated[int, typer.Option(help="Runs in parallel, one torch thread each.")] = 2,
    name: Annotated[
        str | None, typer.Option(help="Folder under runs/compare/ (default: the preset name).")
    ] = None,
    timesteps: options.Timesteps = None,
    sets: options.Sets = None,
    runs_dir: options.RunsDir = Path("runs"),
    baseline: Annotated[
        str | None,
        typer.Option(help="Strategy the others are compared with, seed by seed (default: the first)."),
    ] = None,
) -> None:
    """Compare relabel strategies across seeds: table, compare.json, compare.csv, curves.png."""
    from mtgc_cli.comparison import compare as run_compare

    names = [s.strip() for s in strategies.split(",") if s.strip()]
    result = run_compare(
        preset,
        names,
        seeds,
        workers,
        runs_dir,
        name,
        timesteps,
        sets or [],
        command=invocation(),
        baseline=baseline,
    )
    if result.stopped_by is not None:
        signame = signal.Signals(result.stopped_by).name
        typer.echo(
            f"mtgc: stopped by {signame}; each running cell saved a whole checkpoint in {result.folder}; "
            f"resume: {shlex.join(invocation())}",
            err=True,
        )
        raise typer.Exit(128 + result.stopped_by)
    stdout.print(
        compare_table(
            f"{preset}: final eval success over seeds ({result.wall_seconds:.0f} s wall)", result.rows
        )
    )
    stdout.print(f"written: {result.folder}/compare.json, compare.csv, curves.png")
