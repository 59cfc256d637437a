"""``mtgc compare``: a grid of relabel strategies x seeds, run on a backend, then aggregated.

Each grid cell is a normal run folder, ``runs/compare/<name>/<strategy>-s<seed>/``, so when the
command is run again a cell that finished with the same config is skipped and a cell that was
stopped (Ctrl-C, SIGTERM, a crash) goes on from its newest whole checkpoint. Where the cells run
(processes on this machine, or a Ray cluster) is the backend's business (``backends/``); this
module keeps the grid, the statistics and the plots.
"""

from __future__ import annotations

import contextlib
import csv
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from mtgc_cli import backends, folder_lock, presets, runs
from mtgc_cli.backends import Backend, Job
from mtgc_cli.console import ProgressView, Snapshot, stderr
from mtgc_cli.errors import RunFailed, UsageError, excerpt
from mtgc_cli.evaluation import wilson_interval
from mtgc_cli.names import check_name
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
    if not any(strategies):
        raise UsageError("--strategies is empty; valid: a comma-separated list such as none,future")
    if not all(strategies):
        raise UsageError(
            f"--strategies {excerpt(','.join(strategies))} has an empty entry; valid: a "
            "comma-separated list of strategies such as none,future"
        )
    if len(set(strategies)) != len(strategies):
        twice = next(s for s in strategies if strategies.count(s) > 1)
        raise UsageError(
            f"--strategies lists {twice} twice: {excerpt(','.join(strategies))}; valid: each strategy once"
        )
    if n_seeds <= 0:
        raise UsageError(f"--seeds is {n_seeds}; valid: a positive number of seeds, e.g. --seeds 3")
    if name is not None:
        check_name(name, "--name")  # runs/compare/<name>/: one folder inside --runs-dir
    base = presets.load(preset, timesteps=timesteps, sets=sets or [])
    folder = root / "compare" / (name or base.name)
    cells = []
    for strategy in strategies:
        for i in range(n_seeds):
            seed = base.train.seed + i
            config = presets.load(preset, timesteps=timesteps, seed=seed, strategy=strategy, sets=sets or [])
            cells.append(Cell(strategy, seed, config, folder / f"{strategy}-s{seed}"))
    return folder, cells


def cell_state(cell: Cell) -> str:
    """``new``, ``done`` (finished with this very config), or ``resume`` (stopped, with a checkpoint).

    A folder made with another config raises: it is someone's result and is never overwritten.
    A stopped run goes on from its newest whole checkpoint; one that has none (killed before its
    first) is moved aside and started over.
    """
    if not cell.run_dir.exists():
        return "new"
    config_file = cell.run_dir / runs.CONFIG
    if config_file.is_file() and config_file.read_text() != cell.config.to_yaml():
        raise UsageError(
            f"{cell.run_dir} holds a run with a different config; pass --name to compare into a new folder"
        )
    summary = runs.read_summary(cell.run_dir)
    if summary is not None and summary.get("status") == "done":
        return "done"
    from mtgc_cli import checkpoint

    try:
        checkpoint.plan_resume(cell.run_dir, cell.config, extend=False)
        return "resume"
    except UsageError:
        pass
    aside = cell.run_dir.with_name(f"{cell.run_dir.name}.unfinished-{time.strftime('%Y%m%dT%H%M%S')}")
    cell.run_dir.rename(aside)
    return "new"


def jobs(cells: list[Cell], states: dict[Path, str], command: list[str]) -> list[Job]:
    """The cells not yet finished, as jobs for a backend."""
    return [
        Job(
            name=cell.run_dir.name,
            run_dir=cell.run_dir,
            config=cell.config.model_dump(mode="json"),
            command=[*command, f"# this run: --strategy {cell.strategy} --seed {cell.seed}"],
            resume=states[cell.run_dir] == "resume",
        )
        for cell in cells
        if states[cell.run_dir] != "done"
    ]


def run_grid(
    cells: list[Cell], states: dict[Path, str], backend: Backend, view: ProgressView, command: list[str]
) -> tuple[list[str], int | None]:
    """Run the cells not yet finished on ``backend`` (started), with the live view.

    Returns the failures' messages and the signal that stopped the grid (None if none did). On
    SIGINT or SIGTERM the backend is told: each running cell stops with a whole checkpoint,
    queued cells do not start, and running the same command again goes on from there.
    """
    from mtgc_cli.training import StopRequest

    for cell in cells:
        total = cell.config.train.timesteps
        if states[cell.run_dir] == "done":
            view.update(Snapshot(cell.run_dir.name, total, total, status="skipped (done)"))
        else:
            status = "queued (resume)" if states[cell.run_dir] == "resume" else "queued"
            view.update(Snapshot(cell.run_dir.name, 0, total, status=status))
    todo = jobs(cells, states, command)
    if not todo:
        return [], None
    totals = {cell.run_dir.name: cell.config.train.timesteps for cell in cells}
    failures: list[str] = []
    stop = StopRequest()
    with stop.installed():
        for job in todo:
            backend.submit(job)
        pending = {job.name for job in todo}
        while pending:
            if stop.signum is not None:
                backend.stop(stop.signum)
            for event in backend.poll(0.2):
                if isinstance(event, Snapshot):
                    view.update(event)
                    continue
                pending.discard(event.name)
                if event.error is not None:
                    failures.append(f"{event.name}: {event.error}")
                    view.update(Snapshot(event.name, 0, totals[event.name], status="failed"))
        for event in backend.poll(0):  # the last progress sent before each cell ended
            if isinstance(event, Snapshot):
                view.update(event)
    return failures, stop.signum


# ---------------------------------------------------------------------------------------------
# Aggregation


def read_curve(run_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """(env steps, eval success) rows of a run's progress.csv."""
    with (run_dir / runs.PROGRESS).open() as f:
        rows = list(csv.DictReader(f))
    steps = np.array([float(r["env_steps"]) for r in rows])
    success = np.array([float(r["eval_success"]) for r in rows])
    return steps, success


# Statistics across seeds. Intervals follow rliable (Agarwal et al. 2021): the interquartile mean
# and percentile intervals from a stratified bootstrap over runs. rliable itself is not a
# dependency: 1.2.0 needs arch<8, which fails to import with pandas 3 (what pip picks today),
# and it would pull pandas, statsmodels, arch and seaborn (about 250 MB) for two functions that
# scipy provides: ``stats.bootstrap`` with one sample per task is exactly the stratified
# bootstrap, and ``stats.trim_mean(x, 0.25)`` is rliable's ``aggregate_iqm``.

CONFIDENCE = 0.95
BOOTSTRAP_RESAMPLES = 10_000
THRESHOLDS = (50, 90)  # percent, for steps-to-threshold
HOLD_EVALS = 2  # a threshold counts as reached once it holds for this many consecutive evals

Statistic = Callable[..., np.ndarray]


@dataclass(frozen=True)
class Estimate:
    """A point estimate and its 95% interval; no interval (``None``) from fewer than 2 seeds."""

    value: float
    low: float | None
    high: float | None


def iqm(*samples: np.ndarray, axis: int = -1) -> np.ndarray:
    """Interquartile mean of all scores pooled (rliable's ``aggregate_iqm``): the mean of the
    middle 50%, robust to one lucky or broken seed, less noisy than the median."""
    return np.asarray(stats.trim_mean(np.concatenate(samples, axis=axis), 0.25, axis=axis))


def pooled_mean(*samples: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.asarray(np.concatenate(samples, axis=axis).mean(axis=axis))


def stratified_bootstrap(scores: np.ndarray, statistic: Statistic) -> tuple[float, float] | None:
    """95% percentile bootstrap interval of ``statistic`` over ``scores`` (seeds, tasks).

    Each task's column is resampled over seeds on its own (rliable's ``StratifiedBootstrap``),
    so every resample keeps every task. ``None`` for fewer than 2 seeds: one seed has no spread.
    The generator is fixed so that the same runs always print the same interval.
    """
    if scores.shape[0] < 2:
        return None
    result = stats.bootstrap(
        tuple(scores.T),
        statistic,
        n_resamples=BOOTSTRAP_RESAMPLES,
        confidence_level=CONFIDENCE,
        method="percentile",
        vectorized=True,
        rng=np.random.default_rng(0),
    )
    interval = result.confidence_interval
    return float(interval.low), float(interval.high)


def pooled_wilson(run_success: np.ndarray, episodes_per_run: int) -> tuple[float, float, float]:
    """Success rate of all runs' final eval episodes pooled, with its 95% Wilson interval."""
    n = len(run_success) * episodes_per_run
    successes = float(np.round(run_success * episodes_per_run).sum())
    low, high = wilson_interval(successes, n)
    return successes / n, low, high


def success_estimate(scores: np.ndarray, episodes_per_run: int, statistic: Statistic) -> Estimate:
    """``statistic`` of final success over (seeds, tasks), with an interval that covers both noises.

    The bootstrap over seeds sees only seed-to-seed spread: seeds that agree (all at 1.00) give
    a zero-width interval although each seed's rate is itself an estimate from a few episodes.
    The interval is therefore widened, where narrower, to the Wilson interval of all final eval
    episodes pooled (3 seeds x 25 episodes, all successes: [0.95, 1.00], not [1.00, 1.00]).
    """
    value = float(statistic(*scores.T))
    boot = stratified_bootstrap(scores, statistic)
    if boot is None:
        return Estimate(value, None, None)
    _, wilson_low, wilson_high = pooled_wilson(scores.mean(axis=1), episodes_per_run)
    return Estimate(value, max(0.0, min(boot[0], wilson_low)), min(1.0, max(boot[1], wilson_high)))


def paired_difference(
    scores: np.ndarray, baseline: np.ndarray, episodes_per_run: int, baseline_episodes_per_run: int
) -> Estimate:
    """Mean over seeds of (strategy - baseline) final success, seed by seed (same seed, same
    initial network and env seeds), with a stratified bootstrap interval of that mean.

    Seed s of every strategy starts from the same network weights and env seeds; pairing takes
    the difference within each seed, so what a seed's runs share (an easy or a hard draw) drops
    out instead of widening the interval as in two unpaired means. As for a level, the interval
    is widened where narrower to Newcombe's interval for the difference of the two pooled episode
    rates (the Wilson-based hybrid score interval), so two strategies that both score 1.00
    everywhere do not print an exact 0.00 [0.00, 0.00].
    """
    diffs = scores - baseline
    value = float(diffs.mean())
    boot = stratified_bootstrap(diffs, pooled_mean)
    if boot is None:
        return Estimate(value, None, None)
    p1, low1, high1 = pooled_wilson(scores.mean(axis=1), episodes_per_run)
    p2, low2, high2 = pooled_wilson(baseline.mean(axis=1), baseline_episodes_per_run)
    newcombe_low = p1 - p2 - float(np.hypot(p1 - low1, high2 - p2))
    newcombe_high = p1 - p2 + float(np.hypot(high1 - p1, p2 - low2))
    return Estimate(value, max(-1.0, min(boot[0], newcombe_low)), min(1.0, max(boot[1], newcombe_high)))


def steps_to(
    steps: np.ndarray, success: np.ndarray, threshold: float, hold: int = HOLD_EVALS
) -> float | None:
    """The first eval step from which success stays at or above ``threshold`` for ``hold``
    consecutive evals; ``None`` if it never does (a single lucky eval does not count, and a
    threshold first met at the last eval cannot be confirmed, so that run is censored)."""
    ok = success >= threshold
    for i in range(len(ok) - hold + 1):
        if ok[i : i + hold].all():
            return float(steps[i])
    return None


@dataclass(frozen=True)
class TimeToThreshold:
    """Steps to a threshold across seeds, with the seeds that never got there right-censored."""

    median: float | None  # Kaplan-Meier median; None while fewer than half the seeds got there
    reached: int
    censored: int
    censored_at: float | None  # the longest a censored seed was followed (its last eval step)


def time_to_threshold(times: list[float | None], horizons: list[float]) -> TimeToThreshold:
    """Kaplan-Meier median of steps to a threshold (scipy's ``ecdf`` on right-censored data).

    A seed that never got there is censored at its last eval step rather than dropped: averaging
    only the seeds that made it hides the ones that did not. With runs of equal length this is
    the median over all seeds counting a censored seed as later than any reached one.
    """
    reached = [t for t in times if t is not None]
    censored = [h for t, h in zip(times, horizons, strict=True) if t is None]
    censored_at = max(censored) if censored else None
    if not reached:
        return TimeToThreshold(None, 0, len(censored), censored_at)
    survival = stats.ecdf(stats.CensoredData(uncensored=reached, right=censored)).sf
    # The survival function only drops at reached times, so the first step where at most half
    # the seeds are still below the threshold is a reached time.
    below = np.flatnonzero(survival.probabilities <= 0.5)
    median = float(survival.quantiles[below[0]]) if len(below) else None
    return TimeToThreshold(median, len(reached), len(censored), censored_at)


def eval_episodes_per_run(config: RunConfig) -> int:
    """Episodes in one final eval: ``train.eval_episodes`` for each task."""
    return config.train.eval_episodes * max(1, len(config.env.task_labels))


def _final_scores(summary: dict[str, Any]) -> list[float]:
    """A run's final success per task (one value for a single-task run): the bootstrap's strata."""
    per_task = summary.get("final_task_success")
    return list(per_task.values()) if per_task else [summary["final_eval_success"]]


def finished(summary: dict[str, Any] | None, config: RunConfig) -> bool:
    """A cell's run trained its whole budget and was evaluated there."""
    return (
        summary is not None
        and summary.get("status") == "done"
        and int(summary.get("steps") or 0) >= config.train.timesteps
        and summary.get("final_eval_success") is not None
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
            "final_success": summary["final_eval_success"],
            "final_task_success": summary.get("final_task_success"),
            "final_scores": _final_scores(summary),
            "eval_episodes": eval_episodes_per_run(cell.config),
            "wall_seconds": summary["seconds"],
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


@dataclass(frozen=True)
class CompareResult:
    folder: Path
    rows: list[dict[str, Any]]
    wall_seconds: float
    stopped_by: int | None  # the signal that stopped the grid; None when every cell ran


def compare(
    preset: str,
    strategies: list[str],
    n_seeds: int,
    workers: int | None,
    root: Path,
    name: str | None = None,
    timesteps: int | None = None,
    sets: list[str] | None = None,
    command: list[str] | None = None,
    baseline: str | None = None,
    backend: str = "local",
    address: str | None = None,
    gpus_per_cell: float = 0.0,
    copy_back: bool = False,
) -> CompareResult:
    """Run the grid on ``backend`` and aggregate it; ``baseline`` (default: the first strategy) is
    the strategy that every other one is compared with, seed by seed.

    ``workers``: the local backend's processes (default 2), a local Ray cluster's CPUs (default
    2), or at most this many cells at once on a running Ray cluster (``address``; default: as many
    as its CPUs take).
    """
    # Ray missing, or an option of the other backend: one line before anything is built.
    runner = backends.make(backend, workers, address, gpus_per_cell, copy_back)
    if baseline is not None and baseline not in strategies:
        raise UsageError(f"--baseline {baseline} is not among --strategies; valid: {', '.join(strategies)}")
    folder, cells = expand(preset, strategies, n_seeds, root, name, timesteps, sets)
    # Check that the env supports every strategy before any worker starts.
    from mtgc_cli.training import prepare

    for strategy in dict.fromkeys(cell.strategy for cell in cells):
        prepare(next(c for c in cells if c.strategy == strategy).config).close()
    # Held until the outputs are written (the stack closes after them).
    with contextlib.ExitStack() as held:
        # A cluster that cannot be reached is reported before any run folder is touched.
        with runner.started(folder):
            # One compare per folder (the cells' runs each hold their own folder's lock too).
            folder.mkdir(parents=True, exist_ok=True)
            held.enter_context(folder_lock.hold(folder, "compare folder"))
            # Before anything runs or prints: a folder holding another config is an error, not overwritten.
            states = {cell.run_dir: cell_state(cell) for cell in cells}
            stderr.print(
                f"[bold]mtgc compare[/] {cells[0].config.name}: {', '.join(strategies)} x {n_seeds} seeds, "
                f"{len(cells)} runs, {runner.describe()} -> {folder}"
            )
            start = time.perf_counter()
            view = ProgressView()
            with view.live():
                failures, stopped = run_grid(cells, states, runner, view, command or ["mtgc", "compare"])
            wall = time.perf_counter() - start
        if stopped is not None:
            # Nothing is aggregated from a grid cut short; the same command goes on with it.
            return CompareResult(folder, [], wall, stopped)
        rows, per_run = aggregate(cells, baseline)
        record = runner.record()
        write_outputs(folder, cells[0].config.name, rows, per_run, wall, record.get("workers"), record)
        if failures:
            for failure in failures:
                stderr.print(f"failed: {failure}")
            raise RunFailed(f"{len(failures)} of {len(cells)} runs failed; the others are in {folder}")
        return CompareResult(folder, rows, wall, None)
