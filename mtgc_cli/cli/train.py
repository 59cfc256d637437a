"""`mtgc train`: one run from a preset."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mtgc_cli import presets
from mtgc_cli.cli import options
from mtgc_cli.cli.app import app, invocation
from mtgc_cli.console import ProgressView, stderr, stdout, summary_table


@app.command()
def train(
    preset: options.Preset,
    timesteps: options.Timesteps = None,
    seed: options.Seed = None,
    strategy: Annotated[
        str | None,
        typer.Option(
            help="Relabel strategy: none, final, future, episode, [goal+]random-task, [goal+]best-task."
        ),
    ] = None,
    sets: options.Sets = None,
    runs_dir: options.RunsDir = Path("runs"),
) -> None:
    """Train an agent; writes runs/<preset>/<UTC time>-s<seed>/ and prints a summary table."""
    from mtgc_cli import training

    config = presets.load(preset, timesteps=timesteps, seed=seed, strategy=strategy, sets=sets or [])
    # Envs and model are built (and bad input reported) before anything is printed or written.
    setup = training.prepare(config)
    stderr.print(
        f"[bold]mtgc train[/] {config.name}: {config.env.label}, {config.algo.name}, "
        f"relabel {config.relabel.label}, {config.train.timesteps:,} steps, seed {config.train.seed}"
    )
    view = ProgressView()
    with view.live():
        summary = training.run(setup, runs_dir, report=view.update, command=invocation())
    stdout.print(summary_table(summary))
    if summary["status"] != "done":
        raise typer.Exit(130)
