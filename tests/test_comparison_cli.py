"""`mtgc compare` end to end on a tiny real grid: the new statistics reach the table and the files."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

# 4-bit flipping, 600 steps with an eval every 100: six evals per run, a few seconds each.
TINY = [
    "--preset", "bit-flip", "--timesteps", "600",
    "--set", "env.kwargs.n_bits=4", "--set", "algo.learning_starts=100", "--set", "algo.buffer_size=1000",
    "--set", "algo.policy_kwargs.net_arch=[32]", "--set", "train.eval_every=100",
    "--set", "train.eval_episodes=10", "--set", "train.checkpoint_every=600",
]  # fmt: skip


def test_compare_reports_paired_differences_and_censored_steps(invoke, tmp_path: Path) -> None:
    args = ["compare", *TINY, "--strategies", "none,future", "--seeds", "2", "--workers", "2"]
    result = invoke(*args, "--baseline", "future")
    assert result.exit_code == 0, result.output
    # The header "vs future" may wrap in CliRunner's 80 columns; the caption names the baseline.
    assert "IQM" in result.stdout and "vs future: mean difference" in " ".join(result.stdout.split())
    assert "Kaplan-Meier" in result.stdout
    folder = tmp_path / "runs" / "compare" / "bit-flip"
    data = json.loads((folder / "compare.json").read_text())
    assert data["baseline"] == "future" and set(data["statistics"]) == {"final_success", "diff", "steps_to"}
    none, future = data["strategies"]
    assert future["diff_mean"] is None and none["diff_pairs"] == 2
    assert none["diff_mean"] == pytest.approx(none["final_success_mean"] - future["final_success_mean"])
    for row in data["strategies"]:
        assert row["final_success_low"] <= row["final_success_mean"] <= row["final_success_high"]
        assert row["final_success_iqm_low"] <= row["final_success_iqm"] <= row["final_success_iqm_high"]
        for threshold in (50, 90):
            assert row[f"reached_{threshold}"] + row[f"censored_{threshold}"] == 2
    assert none["diff_low"] <= none["diff_mean"] <= none["diff_high"]
    for run in data["runs"]:
        assert run["last_eval_step"] == 600 and run["eval_episodes"] == 10
    with (folder / "compare.csv").open() as f:
        header = next(csv.reader(f))
    for column in ("final_success_iqm_low", "diff_mean", "diff_high", "steps_to_90_median", "censored_90"):
        assert column in header, column
    # One seed of the same grid (the runs are already there): no interval, n/a.
    one = invoke(*args[:-4], "--seeds", "1", "--workers", "1")
    assert one.exit_code == 0, one.output
    assert "[n/a]" in one.stdout


def test_compare_refuses_a_baseline_outside_the_strategies(invoke, tmp_path: Path) -> None:
    result = invoke("compare", *TINY, "--strategies", "none,future", "--baseline", "final")
    assert result.exit_code == 2
    assert "--baseline final is not among --strategies; valid: none, future" in result.stderr
    assert not (tmp_path / "runs").exists()
