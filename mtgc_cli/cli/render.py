"""Terminal output, the only place that prints: Rich progress on stderr, result tables on stdout."""

from __future__ import annotations

import shlex
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeRemainingColumn
from rich.table import Table

from mtgc_cli.notices import Snapshot

if TYPE_CHECKING:
    from mtgc_cli.evaluation import EvalResult
    from mtgc_cli.runs import RunSummary

stdout = Console()
stderr = Console(stderr=True)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


class ProgressView:
    """A Rich live view with one row per run: steps / total, steps/s, success rates, ETA."""

    def __init__(self, console: Console = stderr):
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(bar_width=24),
            MofNCompleteColumn(),
            TextColumn("{task.fields[fps]:>6} steps/s"),
            TextColumn("train {task.fields[train]}"),
            TextColumn("eval {task.fields[eval]}"),
            TextColumn("{task.fields[status]}"),
            TimeRemainingColumn(),
            console=console,
            refresh_per_second=4,
        )
        self.rows: dict[str, TaskID] = {}

    def update(self, snap: Snapshot) -> None:
        if snap.run not in self.rows:
            self.rows[snap.run] = self.progress.add_task(
                snap.run, total=snap.total, fps="-", train="-", eval="-", status=""
            )
        row = self.rows[snap.run]
        status = "" if snap.status == "running" else snap.status
        self.progress.update(
            row,
            completed=min(snap.steps, snap.total),  # the last step of n envs can overshoot
            fps=f"{snap.fps:.0f}",
            train=_fmt(snap.train_success),
            eval=_fmt(snap.eval_success),
            status=status,
        )

    @contextmanager
    def live(self) -> Iterator[ProgressView]:
        with self.progress:
            yield self


class CompareView:
    """A compare's :class:`~mtgc_cli.compare.run.Display`: its header line and live view on stderr,
    and a line for each failed cell."""

    def __init__(self) -> None:
        self.view = ProgressView()

    def begin(
        self, preset: str, strategies: list[str], n_seeds: int, n_runs: int, where: str, folder: Path
    ) -> AbstractContextManager[Any]:
        stderr.print(
            f"[bold]mtgc compare[/] {preset}: {', '.join(strategies)} x {n_seeds} seeds, "
            f"{n_runs} runs, {where} -> {folder}"
        )
        return self.view.live()

    def update(self, snapshot: Snapshot) -> None:
        self.view.update(snapshot)

    def failed(self, failure: str) -> None:
        stderr.print(f"failed: {failure}")


def summary_table(summary: RunSummary) -> Table:
    table = Table(title=f"run {summary.run_dir}")
    table.add_column("metric")
    table.add_column("value", justify="right")
    if summary.status != "done":
        table.add_row("status", f"{summary.status} (whole checkpoint saved at this step)")
    table.add_row("env steps", f"{summary.steps:,}")
    table.add_row("wall seconds", f"{summary.seconds:.0f}")
    table.add_row("final eval success", _fmt(summary.final_eval_success))
    episodes = summary.best_eval_episodes
    # The best model's score is its re-evaluation on fresh episodes, not the eval that proposed it.
    again = f", re-evaluated on {episodes} episodes" if episodes else ""
    table.add_row(
        "best model",
        f"{_fmt(summary.best_eval_success)} at {summary.best_eval_step:,} steps{again}",
    )
    for task, success in (summary.final_task_success or {}).items():
        table.add_row(f"  {task}", _fmt(success))
    return table


def resume_line(summary: RunSummary) -> None:
    """The one line a stopped run ends with: why it stopped, what was saved, how to go on."""
    saved = summary.checkpoint or {}
    cost = f" ({saved['megabytes']:.1f} MB, {saved['seconds']:.2f} s)" if saved else ""
    typer.echo(
        f"mtgc: stopped by {summary.stopped_by or 'an interrupt'} at {summary.steps:,} env steps; "
        f"checkpoint {Path(saved.get('path', '?')).name} saved{cost}; "
        f"resume: mtgc train --resume {shlex.quote(summary.run_dir)}",
        err=True,
    )


def eval_table(result: EvalResult, title: str) -> Table:
    table = Table(title=title)
    table.add_column("task", no_wrap=True)
    for column in ("episodes", "success [95% CI]", "return", "final goal dist", "length"):
        table.add_column(column, justify="right", no_wrap=column == "success [95% CI]")
    rows = [*result.rows, result.overall] if len(result.rows) > 1 else [result.overall]
    for i, row in enumerate(rows):
        table.add_row(
            row.name,
            str(row.episodes),
            _with_interval(row.success, row.success_low, row.success_high),
            f"{row.mean_return:.2f}",
            "-" if row.mean_distance is None else f"{row.mean_distance:.3f}",
            f"{row.mean_length:.1f}",
            end_section=i == len(rows) - 2 and len(rows) > 1,
        )
    return table


def compare_table(title: str, rows: Sequence[dict[str, Any]]) -> Table:
    """One row per strategy; the statistics are those of ``comparison.aggregate``.

    Each cell holds the estimate on its first line and its interval or seed counts on the second,
    so that eight columns fit a 120-column terminal and wrap cleanly on a narrower one.
    """
    baseline = rows[0]["baseline"] if rows else "-"
    table = Table(
        title=title,
        caption=(
            "IQM: interquartile mean. [ ]: 95% stratified bootstrap over seeds, at least as wide as "
            f"the pooled episodes' Wilson interval; n/a from 1 seed. vs {baseline}: mean difference, "
            "paired by seed. steps: Kaplan-Meier median (seeds reached/all; unreached seeds censored "
            "at their last eval), a threshold counting once it holds for 2 evals in a row."
        ),
    )
    table.add_column("strategy", no_wrap=True)
    for column in ("seeds", "IQM", "mean", f"vs {baseline}", "steps to 50%", "steps to 90%", "wall s"):
        # fold, not ellipsis: a narrow terminal wraps a figure rather than cutting it
        table.add_column(column, justify="right", overflow="fold")
    for row in rows:
        if row["strategy"] == baseline:
            versus = "-"  # the header names it
        elif row["diff_mean"] is None:
            versus = "no shared\nseeds"
        else:
            versus = _with_interval(
                row["diff_mean"], row["diff_low"], row["diff_high"], signed=True, sep="\n"
            )
        table.add_row(
            row["strategy"],
            str(row["seeds"]),
            _with_interval(
                row["final_success_iqm"],
                row["final_success_iqm_low"],
                row["final_success_iqm_high"],
                sep="\n",
            ),
            _with_interval(
                row["final_success_mean"], row["final_success_low"], row["final_success_high"], sep="\n"
            ),
            versus,
            *(_steps(row, threshold) for threshold in (50, 90)),
            f"{row['wall_seconds_mean']:.0f}",
        )
    return table


def _with_interval(
    value: float, low: float | None, high: float | None, signed: bool = False, sep: str = " "
) -> str:
    """``0.93 [0.86, 0.99]``; ``[n/a]`` where there is no interval (one seed has no spread)."""

    def fmt(v: float) -> str:
        # round first and add 0.0: a -0.001 prints as 0.00, never -0.00
        return f"{round(v, 2) + 0.0:{'+.2f' if signed else '.2f'}}"

    if low is None or high is None:
        return fmt(value) + sep + escape("[n/a]")  # escaped: Rich would read [n/a] as a style tag
    return f"{fmt(value)}{sep}[{fmt(low)}, {fmt(high)}]"


def _steps(row: dict[str, Any], threshold: int) -> str:
    """``5,500`` over ``(3/5; 2 censored)``: the median over all seeds, censored ones included;
    ``> 8,000`` while fewer than half the seeds got there (the median is past the runs' end)."""
    median = row[f"steps_to_{threshold}_median"]
    reached, censored = row[f"reached_{threshold}"], row[f"censored_{threshold}"]
    counts = f"({reached}/{reached + censored}" + (f"; {censored} censored)" if censored else ")")
    if median is None:
        return f"> {row[f'censored_{threshold}_at']:,.0f}\n{counts}"
    return f"{median:,.0f}\n{counts}"
