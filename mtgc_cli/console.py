"""Terminal output: Rich progress on stderr, result tables on stdout."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeRemainingColumn
from rich.table import Table

if TYPE_CHECKING:
    from mtgc_cli.evaluation import EvalResult

stdout = Console()
stderr = Console(stderr=True)


@dataclass(frozen=True)
class Snapshot:
    """Where one run stands; sent from the training loop (or a worker process) to the display."""

    run: str
    steps: int
    total: int
    fps: float = 0.0
    train_success: float | None = None
    eval_success: float | None = None
    status: str = "running"  # running | done | failed | skipped


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
            completed=snap.steps,
            fps=f"{snap.fps:.0f}",
            train=_fmt(snap.train_success),
            eval=_fmt(snap.eval_success),
            status=status,
        )

    @contextmanager
    def live(self) -> Iterator[ProgressView]:
        with self.progress:
            yield self


def summary_table(summary: dict[str, Any]) -> Table:
    table = Table(title=f"run {summary['run_dir']}")
    table.add_column("metric")
    table.add_column("value", justify="right")
    if summary["status"] != "done":
        table.add_row("status", f"{summary['status']} (model.zip saved at this step)")
    table.add_row("env steps", f"{summary['steps']:,}")
    table.add_row("wall seconds", f"{summary['seconds']:.0f}")
    table.add_row("final eval success", _fmt(summary["final_eval_success"]))
    table.add_row(
        "best eval success", f"{_fmt(summary['best_eval_success'])} at {summary['best_eval_step']:,} steps"
    )
    for task, success in (summary.get("final_task_success") or {}).items():
        table.add_row(f"  {task}", _fmt(success))
    return table


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
    table = Table(title=title)
    table.add_column("strategy", no_wrap=True)
    for column in ("seeds", "final success [95% CI]", "steps to 50%", "steps to 90%", "wall s"):
        table.add_column(column, justify="right", no_wrap=column.startswith("final"))
    for row in rows:
        table.add_row(
            row["strategy"],
            str(row["seeds"]),
            _with_interval(row["final_success_mean"], row["final_success_low"], row["final_success_high"]),
            _steps(row["steps_to_50"], row["reached_50"], row["seeds"]),
            _steps(row["steps_to_90"], row["reached_90"], row["seeds"]),
            f"{row['wall_seconds_mean']:.0f}",
        )
    return table


def _with_interval(value: float, low: float, high: float) -> str:
    return f"{value:.2f} [{low:.2f}, {high:.2f}]"


def _steps(mean: float | None, reached: int, seeds: int) -> str:
    return "never" if mean is None else f"{mean:,.0f} ({reached}/{seeds})"
