"""``mtgc compare``: a grid of relabel strategies x seeds, run in worker processes, then aggregated.

Each grid cell is a normal run folder, ``runs/compare/<name>/<strategy>-s<seed>/``, so a cell
that already finished with the same config is skipped when the command is run again. Workers
use one torch thread each: two processes with torch's default thread count on two cores ran
20-60x slower than one thread each.
"""

from __future__ import annotations

import csv
import json
import multiprocessing
import queue
import time
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from mtgc_cli import presets, runs
from mtgc_cli.console import ProgressView, Snapshot, stderr
from mtgc_cli.errors import RunFailed, UsageError
from mtgc_cli.presets import RunConfig


@dataclass(frozen=True)
class Cell:
    strategy: str
    seed: int
    config: RunConfig
    run_dir: Path


def expand(
    preset: str,
    strategies: list[str],
    n_seeds: int,
    root: Path,
    name: str | None = None,
    timesteps: int | None = None,
    sets: list[str] | None = None,
) -> tuple[Path, list[Cell]]:
    """The grid's cells, each a validated RunConfig and its run folder."""
    if not strategies:
        raise UsageError("--strategies is empty; give a comma-separated list such as none,future")
    if len(set(strategies)) != len(strategies):
        raise UsageError(f"--strategies lists a strategy twice: {','.join(strategies)}")
    if n_seeds <= 0:
        raise UsageError(f"--seeds must be a positive number of seeds, got {n_seeds}")
    base = presets.load(preset, timesteps=timesteps, sets=sets or [])
    folder = root / "compare" / (name or base.name)
    cells = []
    for strategy in strategies:
        for i in range(n_seeds):
            seed = base.train.seed + i
            config = presets.load(preset, timesteps=timesteps, seed=seed, strategy=strategy, sets=sets or [])
            cells.append(Cell(strategy, seed, config, folder / f"{strategy}-s{seed}"))
    return folder, cells


def is_finished(cell: Cell) -> bool:
    """True when the cell's run folder holds a finished run of this very config.

    A folder made with another config raises: it is someone's result and is never overwritten.
    An unfinished folder (a crash, an interrupt) is moved aside and the run started over.
    """
    if not cell.run_dir.exists():
        return False
    config_file = cell.run_dir / runs.CONFIG
    if config_file.is_file() and config_file.read_text() != cell.config.to_yaml():
        raise UsageError(
            f"{cell.run_dir} holds a run with a different config; pass --name to compare into a new folder"
        )
    summary = runs.read_summary(cell.run_dir)
    if summary is not None and summary.get("status") == "done":
        return True
    aside = cell.run_dir.with_name(f"{cell.run_dir.name}.unfinished-{time.strftime('%Y%m%dT%H%M%S')}")
    cell.run_dir.rename(aside)
    return False


def _worker_init() -> None:
    import torch

    torch.set_num_threads(1)


def _run_cell(config_data: dict[str, Any], run_dir: str, command: list[str], progress: Any) -> dict[str, Any]:
    """Runs in a worker process: one normal training run, progress sent through a queue."""
    from mtgc_cli import training

    setup = training.prepare(RunConfig.model_validate(config_data))
    return training.run(
        setup, Path(run_dir).parent, report=progress.put, run_dir=Path(run_dir), command=command
    )


def run_grid(
    cells: list[Cell], finished: list[Cell], workers: int, view: ProgressView, command: list[str]
) -> list[str]:
    """Run the cells not yet finished, ``workers`` at a time; returns the failures' messages."""
    todo = [cell for cell in cells if cell not in finished]
    for cell in cells:
        total = cell.config.train.timesteps
        if cell in finished:
            view.update(Snapshot(cell.run_dir.name, total, total, status="skipped (done)"))
        else:
            view.update(Snapshot(cell.run_dir.name, 0, total, status="queued"))
    if not todo:
        return []
    failures: list[str] = []
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager:
        progress = manager.Queue()
        with ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_worker_init) as pool:
            futures: dict[Future[dict[str, Any]], Cell] = {
                pool.submit(
                    _run_cell,
                    cell.config.model_dump(mode="json"),
                    str(cell.run_dir),
                    [*command, f"# this run: --strategy {cell.strategy} --seed {cell.seed}"],
                    progress,
                ): cell
                for cell in todo
            }
            pending = set(futures)
            while pending:
                _drain(progress, view)
                for future in [f for f in pending if f.done()]:
                    pending.remove(future)
                    cell = futures[future]
                    try:
                        future.result()
                    except Exception as exc:  # a worker's failure must not stop the other cells
                        failures.append(f"{cell.run_dir.name}: {exc}")
                        view.update(
                            Snapshot(cell.run_dir.name, 0, cell.config.train.timesteps, status="failed")
                        )
                time.sleep(0.2)
            _drain(progress, view)
    return failures


def _drain(progress: Any, view: ProgressView) -> None:
    while True:
        try:
            view.update(progress.get_nowait())
        except queue.Empty:
            return


# ---------------------------------------------------------------------------------------------
# Aggregation


def read_curve(run_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """(env steps, eval success) rows of a run's progress.csv."""
    with (run_dir / runs.PROGRESS).open() as f:
        rows = list(csv.DictReader(f))
    steps = np.array([float(r["env_steps"]) for r in rows])
    success = np.array([float(r["eval_success"]) for r in rows])
    return steps, success


def mean_interval(values: list[float]) -> tuple[float, float, float]:
    """Mean and 95% Student-t interval across seeds, clipped to [0, 1] for success rates."""
    data = np.asarray(values, dtype=float)
    mean = float(data.mean())
    if len(data) < 2:
        return mean, mean, mean
    half = float(stats.t.ppf(0.975, len(data) - 1) * data.std(ddof=1) / np.sqrt(len(data)))
    return mean, max(0.0, mean - half), min(1.0, mean + half)


def steps_to(steps: np.ndarray, success: np.ndarray, threshold: float) -> float | None:
    reached = np.flatnonzero(success >= threshold)
    return float(steps[reached[0]]) if len(reached) else None


def aggregate(cells: list[Cell]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Per-strategy rows (final success mean, interval; steps to 50%/90%; wall s) and per-run rows."""
    per_run = []
    for cell in cells:
        summary = runs.read_summary(cell.run_dir)
        if summary is None:
            continue
        steps, success = read_curve(cell.run_dir)
        per_run.append(
            {
                "strategy": cell.strategy,
                "seed": cell.seed,
                "run_dir": str(cell.run_dir),
                "final_success": summary["final_eval_success"],
                "final_task_success": summary.get("final_task_success"),
                "wall_seconds": summary["seconds"],
                "steps_to_50": steps_to(steps, success, 0.5),
                "steps_to_90": steps_to(steps, success, 0.9),
                "curve": {"steps": steps.tolist(), "success": success.tolist()},
            }
        )
    rows = []
    for strategy in dict.fromkeys(cell.strategy for cell in cells):
        mine = [r for r in per_run if r["strategy"] == strategy]
        if not mine:
            continue
        mean, low, high = mean_interval([r["final_success"] for r in mine])
        row: dict[str, Any] = {
            "strategy": strategy,
            "seeds": len(mine),
            "final_success_mean": mean,
            "final_success_low": low,
            "final_success_high": high,
            "wall_seconds_mean": float(np.mean([r["wall_seconds"] for r in mine])),
        }
        for threshold in ("50", "90"):
            reached = [r[f"steps_to_{threshold}"] for r in mine if r[f"steps_to_{threshold}"] is not None]
            # The mean over the seeds that got there; the table shows how many did.
            row[f"steps_to_{threshold}"] = float(np.mean(reached)) if reached else None
            row[f"reached_{threshold}"] = len(reached)
        rows.append(row)
    return rows, per_run


def plot_curves(per_run: list[dict[str, Any]], path: Path, title: str) -> None:
    """Eval success vs env steps: the mean over seeds and its 95% band, one line per strategy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for strategy in dict.fromkeys(r["strategy"] for r in per_run):
        curves = [r["curve"] for r in per_run if r["strategy"] == strategy and r["curve"]["steps"]]
        if not curves:
            continue
        grid = np.array(max((c["steps"] for c in curves), key=len))
        # Seeds evaluate at the same steps; interpolation only covers a run cut short.
        ys = np.array([np.interp(grid, c["steps"], c["success"]) for c in curves])
        mean = ys.mean(axis=0)
        (line,) = ax.plot(grid, mean, label=f"{strategy} (n={len(curves)})")
        if len(curves) > 1:
            half = stats.t.ppf(0.975, len(curves) - 1) * ys.std(axis=0, ddof=1) / np.sqrt(len(curves))
            ax.fill_between(
                grid,
                np.clip(mean - half, 0, 1),
                np.clip(mean + half, 0, 1),
                alpha=0.2,
                color=line.get_color(),
            )
    ax.set_xlabel("env steps")
    ax.set_ylabel("eval success rate")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_outputs(
    folder: Path,
    preset: str,
    rows: list[dict[str, Any]],
    per_run: list[dict[str, Any]],
    wall_seconds: float,
    workers: int,
) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "compare.json").write_text(
        json.dumps(
            {
                "preset": preset,
                "workers": workers,
                "wall_seconds": round(wall_seconds, 2),
                "strategies": rows,
                "runs": per_run,
            },
            indent=2,
        )
        + "\n"
    )
    with (folder / "compare.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ["strategy"])
        writer.writeheader()
        writer.writerows(rows)
    plot_curves(per_run, folder / "curves.png", f"{preset}: eval success (mean, 95% band over seeds)")


def compare(
    preset: str,
    strategies: list[str],
    n_seeds: int,
    workers: int,
    root: Path,
    name: str | None = None,
    timesteps: int | None = None,
    sets: list[str] | None = None,
    command: list[str] | None = None,
) -> tuple[Path, list[dict[str, Any]], float]:
    if workers <= 0:
        raise UsageError(f"--workers must be at least 1, got {workers}")
    folder, cells = expand(preset, strategies, n_seeds, root, name, timesteps, sets)
    # Check that the env supports every strategy before any worker starts.
    from mtgc_cli.training import prepare

    for strategy in dict.fromkeys(cell.strategy for cell in cells):
        prepare(next(c for c in cells if c.strategy == strategy).config).close()
    # Before anything runs or prints: a folder holding another config is an error, not overwritten.
    finished = [cell for cell in cells if is_finished(cell)]
    stderr.print(
        f"[bold]mtgc compare[/] {cells[0].config.name}: {', '.join(strategies)} x {n_seeds} seeds, "
        f"{len(cells)} runs, {workers} workers -> {folder}"
    )
    start = time.perf_counter()
    view = ProgressView()
    with view.live():
        failures = run_grid(cells, finished, workers, view, command or ["mtgc", "compare"])
    wall = time.perf_counter() - start
    rows, per_run = aggregate(cells)
    write_outputs(folder, cells[0].config.name, rows, per_run, wall, workers)
    if failures:
        for failure in failures:
            stderr.print(f"failed: {failure}")
        raise RunFailed(f"{len(failures)} of {len(cells)} runs failed; the others are in {folder}")
    return folder, rows, wall
