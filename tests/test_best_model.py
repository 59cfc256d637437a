"""How best_model.zip is chosen: an eval proposes a model, a re-evaluation on new episodes decides."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from stable_baselines3.common.save_util import load_from_zip_file
from typer.testing import CliRunner

from mtgc_cli.cli.app import app
from mtgc_cli.evaluation import EvalResult, Row
from tests.conftest import run_dirs


def recheck(success: float, episodes: int = 80) -> EvalResult:
    """An evaluation result as `evaluate` returns it, with ``success`` over ``episodes``."""
    row = Row("all", episodes, success, max(0.0, success - 0.1), min(1.0, success + 0.1), 0.0, None, 50.0)
    return EvalResult(rows=[row], overall=row)


def test_a_lucky_eval_does_not_make_the_best_model() -> None:
    """The fetch-push case: a near-random 0.20 over 20 episodes at 7,500 steps used to be the
    best model for good, and best_eval_success reported that 0.20. Its re-evaluation (0.05)
    lets a later model with a lower eval (0.10) but a better re-evaluation (0.30) take over."""
    from mtgc_cli.training import BestModel

    best = BestModel()
    # (step, screening eval over 20 episodes, re-evaluation over 80 new ones)
    evals = [
        (2500, 0.0, 0.0),
        (5000, 0.05, 0.0125),
        (7500, 0.20, 0.05),
        (10000, 0.10, 0.30),
        (12500, 0.15, 0.2),
    ]
    rechecked = []
    for step, screen, again in evals:
        if best.is_candidate(screen):
            rechecked.append(step)
            best.offer(step, screen, recheck(again))
    assert rechecked == [2500, 5000, 7500, 10000]  # 0.15 < 0.30: no re-evaluation at 12,500
    assert (best.step, best.success, best.screen_success, best.episodes) == (10000, 0.30, 0.10, 80)
    summary = best.summary(eval_episodes=20, n_tasks=1)
    assert summary["best_eval_success"] == 0.30 and summary["best_eval_step"] == 10000
    assert summary["best_eval_interval"] == [pytest.approx(0.2), pytest.approx(0.4)]
    assert "re-evaluated on 80 new episodes" in summary["best_selection"]


def test_a_worse_re_evaluation_keeps_the_earlier_model_and_a_tie_takes_the_later() -> None:
    from mtgc_cli.training import BestModel

    best = BestModel()
    best.offer(1000, 0.6, recheck(0.7))
    assert best.is_candidate(0.8)
    assert not best.offer(2000, 0.8, recheck(0.5))  # the lucky 0.8 re-evaluates worse
    assert (best.step, best.success) == (1000, 0.7)
    assert best.offer(3000, 0.7, recheck(0.7)) and best.step == 3000
    best.offer(4000, 1.0, recheck(1.0))
    assert not best.is_candidate(1.0)  # a perfect re-evaluation cannot be beaten


# 4-bit flipping, 400 steps, an eval and a checkpoint every 100 steps (all checkpoints kept).
TINY = [
    "--preset", "bit-flip", "--timesteps", "400",
    "--set", "env.kwargs.n_bits=4", "--set", "algo.learning_starts=100", "--set", "algo.buffer_size=1000",
    "--set", "algo.policy_kwargs.net_arch=[32]", "--set", "train.eval_every=100",
    "--set", "train.eval_episodes=10", "--set", "train.checkpoint_every=100", "--set", "train.keep_checkpoints=10",
]  # fmt: skip


def test_run_reports_the_re_evaluated_best_model(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["train", *TINY, "--runs-dir", str(tmp_path / "runs")])
    assert result.exit_code == 0, result.output
    (run,) = run_dirs(tmp_path)
    summary = json.loads((run / "summary.json").read_text())
    # 10 eval episodes, re-evaluated on 4 x 10 new ones; the summary says how the model was chosen.
    assert summary["best_eval_episodes"] == 40
    assert "re-evaluated on 40 new episodes" in summary["best_selection"]
    # The reported score is the chosen model once more, on 40 episodes that chose nothing; the
    # re-evaluation that chose it (a maximum over candidates) is reported beside it.
    assert summary["best_eval_source"] == "fresh"
    assert "on 40 more new episodes" in summary["best_selection"]
    assert (summary["best_recheck_success"] * 40) == pytest.approx(
        round(summary["best_recheck_success"] * 40)
    )
    step = summary["best_eval_step"]
    assert step in (100, 200, 300, 400)
    low, high = summary["best_eval_interval"]
    assert 0.0 <= low <= summary["best_eval_success"] <= high <= 1.0
    assert (summary["best_eval_success"] * 40) == pytest.approx(round(summary["best_eval_success"] * 40))
    # best_screen_success is the eval at that step, as progress.csv recorded it.
    rows = (run / "progress.csv").read_text().splitlines()[1:]
    screens = {int(r.split(",")[0]): float(r.split(",")[2]) for r in rows}
    assert summary["best_screen_success"] == pytest.approx(screens[step])
    # best_model.zip is the model of that step: the same weights as the checkpoint saved there.
    _, best, _ = load_from_zip_file(run / "best_model.zip")
    _, saved, _ = load_from_zip_file(run / "checkpoints" / f"step_{step}" / "model.zip")
    assert best is not None and saved is not None
    for name, tensor in best["policy"].items():
        assert torch.equal(tensor, saved["policy"][name]), name
