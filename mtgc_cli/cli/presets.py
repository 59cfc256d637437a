"""`mtgc presets`: list the shipped presets, or show one fully resolved."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from mtgc_cli import presets as preset_lib
from mtgc_cli.cli import options
from mtgc_cli.cli.render import stdout

presets_app = typer.Typer(help="List shipped presets, or show one resolved.", invoke_without_command=True)


@presets_app.callback()
def list_presets(ctx: typer.Context) -> None:
    """List the shipped presets: name, env, algorithm, relabel strategy, timesteps."""
    if ctx.invoked_subcommand is not None:
        return
    table = Table(title="mtgc presets")
    for column in ("name", "env", "algo", "strategy", "timesteps"):
        table.add_column(column, justify="right" if column == "timesteps" else "left")
    for name in preset_lib.shipped_presets():
        config = preset_lib.load(name)
        table.add_row(
            name, config.env.label, config.algo.name, config.relabel.label, f"{config.train.timesteps:,}"
        )
    stdout.print(table)


@presets_app.command("show")
def show(
    name: Annotated[str, typer.Argument(help="A preset name or a YAML path.")],
    sets: options.Sets = None,
) -> None:
    """Print the preset with every default filled in (and any --set applied, checked as train
    checks them), as a run's config.yaml would hold it."""
    typer.echo(preset_lib.load(name, sets=sets or []).to_yaml(), nl=False)
