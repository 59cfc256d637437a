"""`mtgc compare`: relabel strategies x seeds for one preset, in parallel, with a summary."""

from __future__ import annotations

import shlex
import signal
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from mtgc_cli.cli import options
from mtgc_cli.cli.options import invocation
from mtgc_cli.cli.render import compare_table, stdout


class BackendName(str, Enum):
    local = "local"
    ray = "ray"


def compare(
    preset: options.Preset,
    strategies: Annotated[
        str, typer.Option(help="Comma-separated: none,final,future,episode,random-task,future+best-task, ...")
    ] = "none,future",
    seeds: Annotated[int, typer.Option(help="Seeds per strategy (the preset's seed, +1, ...).")] = 3,
    workers: Annotated[
        int | None,
        typer.Option(
            help="Runs in parallel, one torch thread each (default 2). With --backend ray: the CPUs of "
            "the local cluster mtgc starts; with --address: at most this many at once (default: as "
            "many as the cluster's CPUs take)."
        ),
    ] = None,
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
    backend: Annotated[
        BackendName,
        typer.Option(help="Where the runs go: local processes, or Ray tasks (pip install 'mtgc[ray]')."),
    ] = BackendName.local,
    address: Annotated[
        str | None,
        typer.Option(
            help="--backend ray: a running cluster's head, host:port (from `ray start --head`) or "
            "auto; default: a local cluster for this command."
        ),
    ] = None,
    gpus_per_cell: Annotated[
        float,
        typer.Option(
            help="--backend ray: GPUs each run reserves (fractions share one). mtgc trains on the CPU; "
            "this only steers scheduling."
        ),
    ] = 0.0,
    copy_back: Annotated[
        bool,
        typer.Option(
            "--copy-back",
            help="--backend ray: write each run folder on its worker's disk and copy it back when the "
            "run ends (default: only where a worker cannot see the compare folder).",
        ),
    ] = False,
) -> None:
    """Compare relabel strategies across seeds: table, compare.json, compare.csv, curves.png."""
    from mtgc_cli.cli.render import CompareView
    from mtgc_cli.compare import compare as run_compare

    names = [s.strip() for s in strategies.split(",")]
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
        backend=backend.value,
        address=address,
        gpus_per_cell=gpus_per_cell,
        copy_back=copy_back,
        display=CompareView(),
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
