"""Aggregating a finished grid: per-run and per-strategy rows, compare.json, compare.csv and
curves.png."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from mtgc_cli import runs
from mtgc_cli.compare.grid import Cell
from mtgc_cli.compare.stats import (
    BOOTSTRAP_RESAMPLES,
    HOLD_EVALS,
    THRESHOLDS,
    iqm,
    paired_difference,
    pooled_mean,
    steps_to,
    success_estimate,
    time_to_threshold,
)
from mtgc_cli.config import RunConfig
from mtgc_cli.runs import RunSummary


def read_curve(run_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """(env steps, eval success) rows of a run's progress.csv."""
    with (run_dir / runs.PROGRESS).open() as f:
        rows = list(csv.DictReader(f))
    steps = np.array([float(r["env_steps"]) for r in rows])
    success = np.array([float(r["eval_success"]) for r in rows])
    return steps, success


def eval_episodes_per_run(config: RunConfig) -> int:
    """Episodes in one final eval: ``train.eval_episodes`` for each task."""
    return config.train.eval_episodes * max(1, len(config.env.task_labels))


def finished(summary: RunSummary | None, config: RunConfig) -> bool:
    """A cell's run trained its whole budget and was evaluated there."""
    return (
        summary is not None
        and summary.status == "done"
        and summary.steps >= config.train.timesteps
        and summary.final_eval_success is not None
    )


def aggregate(
    cells: list[Cell], baseline: str | None = None
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Per-strategy rows and per-run rows.

    A strategy's row: final success IQM and mean with 95% intervals over seeds, the paired
    difference of its mean against ``baseline`` (default: the first strategy), the Kaplan-Meier
    median steps to 50% and 90% with reached and censored seeds, and mean wall seconds.
    """
    per_run = []
    for cell in cells:
        summary = runs.read_summary(cell.run_dir)
        if not finished(summary, cell.config):
            # Not run, stopped, or failed part-way (a resume that failed leaves the summary of the
            # stop): a mid-run score is not a final one, so the cell is left out, not averaged in.
            continue
        assert summary is not None
        steps, success = read_curve(cell.run_dir)
        run_row: dict[str, Any] = {
            "strategy": cell.strategy,
            "seed": cell.seed,
            "run_dir": str(cell.run_dir),
            "final_success": summary.final_eval_success,
            "final_task_success": summary.final_task_success,
            "final_scores": summary.final_scores,
            "eval_episodes": eval_episodes_per_run(cell.config),
            "wall_seconds": summary.seconds,
            # Where a seed that never reached a threshold stops being followed.
            "last_eval_step": float(steps[-1]) if len(steps) else 0.0,
        }
        for threshold in THRESHOLDS:
            run_row[f"steps_to_{threshold}"] = steps_to(steps, success, threshold / 100)
        run_row["curve"] = {"steps": steps.tolist(), "success": success.tolist()}
        per_run.append(run_row)
    strategies = list(dict.fromkeys(cell.strategy for cell in cells))
    baseline = baseline or strategies[0]
    by_strategy = {s: [r for r in per_run if r["strategy"] == s] for s in strategies}
    base_runs = {r["seed"]: r for r in by_strategy[baseline]}
    rows = []
    for strategy, mine in by_strategy.items():
        if not mine:
            continue
        scores = np.array([r["final_scores"] for r in mine], dtype=float)
        episodes = mine[0]["eval_episodes"]
        level = success_estimate(scores, episodes, pooled_mean)
        robust = success_estimate(scores, episodes, iqm)
        row: dict[str, Any] = {
            "strategy": strategy,
            "seeds": len(mine),
            "final_success_mean": level.value,
            "final_success_low": level.low,
            "final_success_high": level.high,
            "final_success_iqm": robust.value,
            "final_success_iqm_low": robust.low,
            "final_success_iqm_high": robust.high,
            "eval_episodes_per_run": episodes,
            "baseline": baseline,
        }
        pairs = [(r, base_runs[r["seed"]]) for r in mine if r["seed"] in base_runs]
        if strategy != baseline and pairs:
            diff = paired_difference(
                np.array([r["final_scores"] for r, _ in pairs], dtype=float),
                np.array([b["final_scores"] for _, b in pairs], dtype=float),
                episodes,
                pairs[0][1]["eval_episodes"],
            )
            row.update(diff_mean=diff.value, diff_low=diff.low, diff_high=diff.high, diff_pairs=len(pairs))
        else:
            row.update(diff_mean=None, diff_low=None, diff_high=None, diff_pairs=0)
        for threshold in THRESHOLDS:
            t = time_to_threshold(
                [r[f"steps_to_{threshold}"] for r in mine], [r["last_eval_step"] for r in mine]
            )
            row[f"steps_to_{threshold}_median"] = t.median
            row[f"reached_{threshold}"] = t.reached
            row[f"censored_{threshold}"] = t.censored
            row[f"censored_{threshold}_at"] = t.censored_at
        row["wall_seconds_mean"] = float(np.mean([r["wall_seconds"] for r in mine]))
        rows.append(row)
    return rows, per_run


STATISTICS = {
    "final_success": (
        "mean and IQM (interquartile mean, rliable's aggregate_iqm) of the final eval success over "
        "seeds x tasks; 95% percentile interval from a stratified bootstrap over seeds (each task "
        f"resampled on its own, {BOOTSTRAP_RESAMPLES} resamples), widened where narrower to the "
        "Wilson interval of all final eval episodes pooled; null from fewer than 2 seeds"
    ),
    "diff": (
        "mean over seeds of (strategy - baseline) final success, paired by seed; 95% stratified "
        "bootstrap interval, widened where narrower to Newcombe's interval of the two pooled "
        "episode rates; null from fewer than 2 pairs"
    ),
    "steps_to": (
        f"a run reaches a threshold at the first eval from which success holds at or above it for "
        f"{HOLD_EVALS} consecutive evals; across seeds, the Kaplan-Meier median with seeds that never "
        "reached it censored at their last eval (null while fewer than half reached it)"
    ),
}


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
    workers: int | None,
    backend: dict[str, Any] | None = None,
) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "compare.json").write_text(
        json.dumps(
            {
                "preset": preset,
                "workers": workers,
                "backend": backend or {"name": "local", "workers": workers},
                "wall_seconds": round(wall_seconds, 2),
                "baseline": rows[0]["baseline"] if rows else None,
                "statistics": STATISTICS,
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
