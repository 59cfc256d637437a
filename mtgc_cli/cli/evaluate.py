"""`mtgc eval`: deterministic episodes of a saved model, with its own config and statistics."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from mtgc_cli.cli.app import app
from mtgc_cli.console import eval_table, stdout
from mtgc_cli.errors import UsageError


@app.command("eval")
def eval_command(
    target: Annotated[
        Path, typer.Argument(help="A run folder, or a model .zip inside one (best, checkpoint).")
    ],
    episodes: Annotated[
        int, typer.Option("--episodes", "-n", help="Episodes (per task for multi-task runs).")
    ] = 100,
    seed: Annotated[int, typer.Option(help="Seed of the evaluation envs.")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the results as JSON on stdout.")] = False,
) -> None:
    """Evaluate a saved model: success with a 95% interval, return, final goal distance, length."""
    if episodes <= 0:
        raise UsageError(f"--episodes must be a positive number, got {episodes}")
    from mtgc_cli.evaluation import evaluate, load_for_eval

    loaded = load_for_eval(target, episodes, seed)
    try:
        result = evaluate(loaded.model, loaded.env, loaded.counts, loaded.saved.config.env.task_labels)
    finally:
        loaded.env.close()
    if as_json:
        payload = {"model": str(loaded.saved.model), "episodes": episodes, "seed": seed, **result.to_dict()}
        typer.echo(json.dumps(payload, indent=2))
    else:
        stdout.print(eval_table(result, f"{loaded.saved.model} ({episodes} episodes, seed {seed})"))
