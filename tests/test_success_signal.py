"""Success is read from the env's own signal, or the run stops at set-up; never a silent 0."""

from __future__ import annotations

import csv
from pathlib import Path

from mtgc_cli import presets
from mtgc_cli.envs.factory import make_env
from mtgc_cli.envs.wrappers import SuccessInfo
from tests.conftest import run_dirs


def test_env_with_another_success_key_is_evaluated_with_it(invoke, tmp_path: Path) -> None:
    # PointMaze reports info["success"], not info["is_success"]; its episodes are 300 steps.
    result = invoke(
        "train", "--preset", "fetch-reach", "--set", "env.id=PointMaze_UMaze-v3", "--timesteps", "400",
        "--set", "algo.learning_starts=310", "--set", "train.eval_every=400", "--set", "train.eval_episodes=2",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    (run,) = run_dirs(tmp_path)
    with (run / "progress.csv").open() as f:
        (row,) = list(csv.DictReader(f))
    # Both columns hold a number read from the env's key (the training column was '-' before).
    assert row["train_success"] != "" and 0.0 <= float(row["eval_success"]) <= 1.0


def test_env_without_a_success_key_stops_at_set_up(invoke, tmp_path: Path) -> None:
    result = invoke(
        "train", "--preset", "fetch-reach", "--set", "env.id=Pendulum-v1", "--set", "env.reward_type=null",
        "--strategy", "none", "--timesteps", "300",
    )  # fmt: skip
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "env.success_key" in lines[0] and "Pendulum-v1" in lines[0]
    assert run_dirs(tmp_path) == []
    result = invoke(
        "train", "--preset", "fetch-reach", "--set", "env.success_key=solved", "--timesteps", "300"
    )
    assert result.exit_code == 2 and "is_success" in result.output and "'solved'" in result.output


def test_metaworld_counts_success_at_any_step() -> None:
    # Meta-World's own evaluation counts an episode as solved if any step succeeded.
    config = presets.load("metaworld-mt10")
    assert config.env.success_at == "any"
    env = make_env(config.env, task=0)
    wrapper = env
    while not isinstance(wrapper, SuccessInfo):
        wrapper = wrapper.env
    assert wrapper.latch and wrapper.key == "success"
    env.close()
