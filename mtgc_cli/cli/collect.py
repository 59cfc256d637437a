"""`mtgc collect`: demonstrations from a scripted expert or a trained run, as a Minari dataset."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from mtgc_cli.cli import options
from mtgc_cli.cli.render import stderr, stdout


def collect(
    preset: Annotated[
        str | None,
        typer.Option(
            "--preset",
            "-p",
            help="The env to collect in (a preset name or YAML path); a bc preset also names the dataset.",
        ),
    ] = None,
    policy: Annotated[
        str,
        typer.Option(
            help="'scripted' (the scripted expert), or a run folder or model .zip (its deterministic policy)."
        ),
    ] = "scripted",
    dataset: Annotated[
        str | None,
        typer.Option(
            help="Minari dataset id, e.g. mtgc/point-tasks-v0 "
            "(default: the bc preset's, or mtgc/<preset>-scripted-v0)."
        ),
    ] = None,
    data_dir: Annotated[
        Path | None,
        typer.Option(
            help="Folder of datasets "
            "(default: the bc preset's algo.data_dir, $MINARI_DATASETS_PATH, or ./data)."
        ),
    ] = None,
    episodes: Annotated[int, typer.Option("--episodes", "-n", help="Episodes per task.")] = 100,
    tasks: Annotated[
        str | None,
        typer.Option(help="Episodes per task, e.g. push=900,lift=100 (tasks not listed get none)."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the collection envs.")] = 0,
    only_successful: Annotated[
        bool, typer.Option("--only-successful", help="Keep only episodes that end in success.")
    ] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace a dataset of the same id.")] = False,
    sets: options.Sets = None,
) -> None:
    """Collect demonstrations into a Minari dataset; prints per-task episodes, success and return."""
    from mtgc_cli.evaluation import wilson_interval
    from mtgc_cli.imitation import collect as collection

    plan = collection.plan(
        preset, policy, dataset, data_dir, episodes, tasks, seed, only_successful, overwrite, sets or []
    )
    stderr.print(
        f"[bold]mtgc collect[/] {plan.env_name}: {plan.env.label}, demonstrator {plan.source}, "
        f"{sum(plan.counts):,} episodes{' (successful only)' if only_successful else ''}, seed {seed}"
    )
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(bar_width=24),
        MofNCompleteColumn(),
        TextColumn("success {task.fields[success]}"),
        TimeRemainingColumn(),
        console=stderr,
    )
    bars = {
        name: progress.add_task(name, total=count, success="-")
        for name, count in zip(plan.task_names, plan.counts, strict=True)
        if count
    }

    def report(result: collection.TaskResult) -> None:
        progress.update(
            bars[result.name], completed=len(result.kept), success=f"{result.successes / result.attempts:.2f}"
        )

    with progress:
        results, folder = collection.execute(plan, report)

    table = Table(title=f"{plan.dataset_id}: {sum(len(r.kept) for r in results):,} episodes")
    table.add_column("task")
    for column in ("episodes", "attempts", "demonstrator success [95% CI]", "mean return"):
        table.add_column(column, justify="right")
    for result in results:
        if not result.attempts:
            continue
        low, high = wilson_interval(result.successes, result.attempts)
        rate = result.successes / result.attempts
        ret = "-" if result.mean_return is None else f"{result.mean_return:.2f}"
        table.add_row(
            result.name,
            str(len(result.kept)),
            str(result.attempts),
            f"{rate:.2f} [{low:.2f}, {high:.2f}]",
            ret,
        )
    stdout.print(table)
    for result in results:
        if len(result.kept) < result.wanted:
            stderr.print(
                f"[yellow]{result.name}: {len(result.kept)} of {result.wanted} wanted episodes succeeded[/]"
            )
    stdout.print(
        f"written: {folder} (minari.load_dataset('{plan.dataset_id}') with MINARI_DATASETS_PATH={plan.root})",
        soft_wrap=True,
    )
