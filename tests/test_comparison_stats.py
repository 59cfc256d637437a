"""Statistics across seeds for `mtgc compare`, on synthetic run folders with known numbers.

Each run folder holds what a finished run writes and `aggregate` reads (summary.json and
progress.csv), so the statistics are checked against numbers worked out by hand.
"""

from __future__ import annotations

import csv
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from rich.text import Text

from mtgc_cli import presets, runs
from mtgc_cli.cli.render import compare_table
from mtgc_cli.compare import Cell, aggregate, steps_to
from mtgc_cli.evaluation import wilson_interval

STEPS = [1000, 2000, 3000, 4000, 5000, 6000, 7000, 8000]


def curve_reaching(step: int | None, final: float) -> list[float]:
    """An eval curve at STEPS that is 0 before ``step`` and ``final`` from it on (0 throughout if None)."""
    return [final if step is not None and s >= step else 0.0 for s in STEPS]


def make_cells(
    root: Path, runs_by_strategy: dict[str, list[tuple[float, list[float]]]], preset: str = "bit-flip"
) -> list[Cell]:
    """Run folders for (final success, eval curve) per seed, seeds 0, 1, ... for each strategy."""
    cells = []
    for strategy, seeds in runs_by_strategy.items():
        for seed, (final, curve) in enumerate(seeds):
            config = presets.load(preset, seed=seed)
            run_dir = root / f"{strategy}-s{seed}"
            run_dir.mkdir(parents=True)
            runs.write_summary(
                run_dir,
                runs.RunSummary(
                    run_dir=str(run_dir),
                    preset=preset,
                    status="done",
                    steps=config.train.timesteps,
                    final_eval_success=final,
                    seconds=10.0,
                ),
            )
            with (run_dir / runs.PROGRESS).open("w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=runs.PROGRESS_FIELDS, restval="")
                writer.writeheader()
                for step, success in zip(STEPS[: len(curve)], curve, strict=True):
                    writer.writerow({"env_steps": step, "eval_success": success})
            cells.append(Cell(strategy, seed, config, run_dir))
    return cells


def table_cells(rows: list[dict]) -> dict[str, list[str]]:
    """The compare table's cells by column header, as printed (a cell's two lines joined by a space)."""
    table = compare_table("t", rows)
    return {
        str(column.header): [Text.from_markup(str(cell)).plain.replace("\n", " ") for cell in column.cells]
        for column in table.columns
    }


def test_one_seed_prints_no_interval(tmp_path: Path) -> None:
    """Defect: one seed printed `[m, m]`, an interval of zero width from no spread at all."""
    rows, _ = aggregate(make_cells(tmp_path, {"future": [(0.8, curve_reaching(3000, 0.8))]}))
    (row,) = rows
    assert row["final_success_mean"] == pytest.approx(0.8)
    assert row["final_success_low"] is None and row["final_success_high"] is None
    assert row["final_success_iqm_low"] is None
    assert table_cells(rows)["mean"] == ["0.80 [n/a]"] and table_cells(rows)["IQM"] == ["0.80 [n/a]"]


def test_identical_seeds_keep_the_episode_noise_in_their_interval(tmp_path: Path) -> None:
    """Defect: seeds all at 1.00 printed `1.00 [1.00, 1.00]`; each seed's 1.00 is itself a rate
    over 100 eval episodes, so 3 seeds x 100 episodes give the Wilson interval of 300/300."""
    perfect = [(1.0, curve_reaching(2000, 1.0))] * 3
    rows, _ = aggregate(make_cells(tmp_path, {"none": perfect, "future": perfect}))
    wilson_low = wilson_interval(300, 300)[0]
    for row in rows:
        assert row["final_success_mean"] == 1.0 and row["final_success_high"] == 1.0
        assert row["final_success_low"] == pytest.approx(wilson_low) and row["final_success_low"] < 0.99
        assert row["final_success_iqm_low"] == pytest.approx(wilson_low)
    future = rows[1]
    # Equal strategies: a difference of 0 with an interval on both sides of it, not [0.00, 0.00].
    assert future["diff_mean"] == 0.0 and future["diff_low"] < -0.005 and future["diff_high"] > 0.005
    cells = table_cells(rows)
    assert cells["mean"] == ["1.00 [0.99, 1.00]"] * 2 and cells["IQM"] == ["1.00 [0.99, 1.00]"] * 2
    assert cells["vs none"] == ["-", "+0.00 [-0.01, +0.01]"]


def test_difference_is_paired_by_seed(tmp_path: Path) -> None:
    """Seeds vary widely but `future` beats `none` by 0.10 on every seed: the paired difference
    is clearly above 0, although the two strategies' own intervals overlap."""
    none = [(p, curve_reaching(2000, p)) for p in (0.2, 0.5, 0.8)]
    future = [(p + 0.1, curve_reaching(2000, p + 0.1)) for p in (0.2, 0.5, 0.8)]
    rows, _ = aggregate(make_cells(tmp_path, {"none": none, "future": future}))
    base, better = rows
    assert base["baseline"] == "none" and base["diff_mean"] is None
    assert better["final_success_low"] < base["final_success_high"]  # unpaired: overlap
    assert better["diff_mean"] == pytest.approx(0.1) and better["diff_pairs"] == 3
    assert 0.0 < better["diff_low"] < 0.1 < better["diff_high"]
    assert table_cells(rows)["vs none"][0] == "-"
    assert table_cells(rows)["vs none"][1].startswith("+0.10 [+0.0")


def test_baseline_can_be_any_strategy(tmp_path: Path) -> None:
    cells = make_cells(
        tmp_path,
        {"none": [(0.2, []), (0.3, [])], "future": [(0.9, []), (0.8, [])]},
    )
    rows, _ = aggregate(cells, baseline="future")
    assert [r["baseline"] for r in rows] == ["future", "future"]
    assert rows[0]["diff_mean"] == pytest.approx(-0.6) and rows[1]["diff_mean"] is None
    # Paired differences -0.7 and -0.5: their bootstrap spans [-0.70, -0.50], wider than Newcombe's.
    assert table_cells(rows)["vs future"] == ["-0.60 [-0.70, -0.50]", "-"]


def test_iqm_trims_one_broken_seed(tmp_path: Path) -> None:
    """rliable's IQM over 5 seeds drops the best and the worst: one seed at 0 leaves it at 1."""
    seeds = [(1.0, [])] * 4 + [(0.0, [])]
    rows, _ = aggregate(make_cells(tmp_path, {"future": seeds}))
    (row,) = rows
    assert row["final_success_iqm"] == pytest.approx(1.0)
    assert row["final_success_mean"] == pytest.approx(0.8)
    # Percentile bootstrap: resamples with two or more broken seeds pull the IQM down.
    assert row["final_success_iqm_low"] < 1.0 and row["final_success_low"] < 0.8 < row["final_success_high"]


def test_a_single_lucky_eval_does_not_reach_a_threshold() -> None:
    """Defect: the first crossing of one noisy eval counted; it must hold for two evals in a row."""
    steps = np.array(STEPS[:6], dtype=float)
    success = np.array([0.0, 0.6, 0.2, 0.6, 0.7, 0.95])
    assert steps_to(steps, success, 0.5) == 4000.0
    assert steps_to(steps, success, 0.9) is None  # met only at the last eval: not confirmed


def test_seeds_that_never_reach_a_threshold_are_censored_not_averaged_away(tmp_path: Path) -> None:
    """Defect: the mean over the seeds that got there (5,000 from 3 of 5) hid the two that did
    not. Kaplan-Meier, with those two censored at 8,000 steps, puts the median at 6,000."""
    seeds = [(0.95, curve_reaching(step, 0.95)) for step in (4000, 5000, 6000)] + [
        (0.3, curve_reaching(2000, 0.6)),
        (0.3, curve_reaching(3000, 0.6)),
    ]
    rows, per_run = aggregate(make_cells(tmp_path, {"future": seeds}))
    (row,) = rows
    assert row["steps_to_90_median"] == 6000.0
    assert (row["reached_90"], row["censored_90"], row["censored_90_at"]) == (3, 2, 8000.0)
    assert row["steps_to_50_median"] == 4000.0 and row["censored_50"] == 0  # 2,000 ... 6,000
    assert [r["steps_to_90"] for r in per_run] == [4000.0, 5000.0, 6000.0, None, None]
    cells = table_cells(rows)
    assert cells["steps to 90%"] == ["6,000 (3/5; 2 censored)"] and cells["steps to 50%"] == ["4,000 (5/5)"]


def test_median_past_the_runs_end_is_shown_as_a_bound() -> None:
    from mtgc_cli.cli.render import _steps
    from mtgc_cli.compare import time_to_threshold

    assert time_to_threshold([3000.0, None, None], [8000.0] * 3).median is None
    result = time_to_threshold([None, None], [8000.0, 6000.0])
    assert (result.median, result.reached, result.censored, result.censored_at) == (None, 0, 2, 8000.0)
    row = {"steps_to_90_median": None, "reached_90": 1, "censored_90": 2, "censored_90_at": 8000.0}
    assert _steps(row, 90) == "> 8,000\n(1/3; 2 censored)"


def test_multitask_scores_are_bootstrapped_per_task(tmp_path: Path) -> None:
    """Point-tasks: the strata are the tasks; the IQM pools seeds x tasks (rliable's layout)."""
    cells = make_cells(tmp_path, {"best-task": [(1.0, [])] * 3}, preset="point-tasks")
    per_task = [
        {"east": 1.0, "north": 1.0, "west": 0.0, "south": 1.0},
        {"east": 1.0, "north": 1.0, "west": 1.0, "south": 0.5},
        {"east": 1.0, "north": 0.5, "west": 1.0, "south": 1.0},
    ]
    for cell, tasks in zip(cells, per_task, strict=True):
        summary = runs.read_summary(cell.run_dir)
        assert summary is not None
        mean = float(np.mean(list(tasks.values())))
        runs.write_summary(cell.run_dir, replace(summary, final_eval_success=mean, final_task_success=tasks))
    rows, per_run = aggregate(cells)
    (row,) = rows
    assert per_run[0]["final_scores"] == [1.0, 1.0, 0.0, 1.0]
    assert row["eval_episodes_per_run"] == 100  # 25 episodes for each of 4 tasks
    assert row["final_success_mean"] == pytest.approx(10 / 12)
    assert row["final_success_iqm"] == pytest.approx(1.0)  # 12 scores: the 3 lowest trimmed
    assert row["final_success_low"] < row["final_success_mean"] < row["final_success_high"]
    json.dumps(rows)  # compare.json takes the rows as they are


def test_compare_table_has_one_cell_per_column() -> None:
    """Supersedes the test of the same name in test_cli.py (the table's old columns)."""
    row = {
        "strategy": "future+best-task", "seeds": 3, "baseline": "future",
        "final_success_mean": 0.9, "final_success_low": 0.8, "final_success_high": 1.0,
        "final_success_iqm": 0.95, "final_success_iqm_low": 0.85, "final_success_iqm_high": 1.0,
        "diff_mean": 0.1, "diff_low": -0.05, "diff_high": 0.2,
        "steps_to_50_median": 4000.0, "reached_50": 3, "censored_50": 0, "censored_50_at": None,
        "steps_to_90_median": None, "reached_90": 1, "censored_90": 2, "censored_90_at": 8000.0,
        "wall_seconds_mean": 47.0,
    }  # fmt: skip
    table = compare_table("t", [row])
    assert len(table.columns) == 8
    cells = table_cells([row])
    assert cells["strategy"] == ["future+best-task"] and cells["seeds"] == ["3"]
    assert cells["IQM"] == ["0.95 [0.85, 1.00]"] and cells["mean"] == ["0.90 [0.80, 1.00]"]
    assert cells["vs future"] == ["+0.10 [-0.05, +0.20]"] and cells["wall s"] == ["47"]
    assert cells["steps to 50%"] == ["4,000 (3/3)"] and cells["steps to 90%"] == ["> 8,000 (1/3; 2 censored)"]


def test_a_cell_that_did_not_finish_its_budget_is_left_out(tmp_path: Path) -> None:
    # Three seeds at 1.0, 0.0 and 0.0; seed 1 was stopped mid-run and seed 2's resume failed (its
    # summary is the stop's, at half the budget). Only seed 0 finished: it alone is aggregated.
    cells = make_cells(tmp_path, {"future": [(1.0, [1.0] * 8), (0.0, [0.0] * 8), (0.0, [0.0] * 8)]})
    stopped, failed = cells[1].run_dir, cells[2].run_dir
    runs.write_summary(stopped, replace(runs.read_summary(stopped), status="interrupted"))
    half = cells[2].config.train.timesteps // 2
    runs.write_summary(failed, replace(runs.read_summary(failed), steps=half))
    rows, per_run = aggregate(cells)
    assert [r["seed"] for r in per_run] == [0]
    assert rows[0]["seeds"] == 1 and rows[0]["final_success_mean"] == 1.0
