"""Bad values that used to pass the preset check: each is one line, exit 2, and no run folder.

Before these checks, some of these inputs gave a traceback (env kwargs, task names), and others
started a run that failed thousands of steps later (buffer_size -1) or trained a broken model
(gamma 1.5, net_arch [0]). The runs are tiny, so that code which accepts a bad value fails the
test by finishing (exit 0) rather than by training for minutes.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from stable_baselines3.common.save_util import load_from_zip_file
from torch import nn

from tests.conftest import assert_one_line_error, run_dirs

# Tiny bit-flip and point-tasks runs; a bad --set comes last, so it is the one that counts.
BIT_FLIP = [
    "train", "--preset", "bit-flip", "--timesteps", "200", "--set", "env.kwargs.n_bits=4",
    "--set", "algo.learning_starts=50", "--set", "algo.buffer_size=500",
    "--set", "algo.policy_kwargs.net_arch=[16]", "--set", "train.eval_every=200",
    "--set", "train.eval_episodes=2",
]  # fmt: skip
POINT_TASKS = [
    "train", "--preset", "point-tasks", "--timesteps", "200", "--set", "algo.learning_starts=50",
    "--set", "algo.buffer_size=500", "--set", "algo.policy_kwargs.net_arch=[16]",
    "--set", "train.eval_every=200", "--set", "train.eval_episodes=2",
]  # fmt: skip


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        pytest.param(
            [*BIT_FLIP, "--set", "env.kwargs.n_bits=abc"],
            ["mtgc/BitFlipping-v0 could not be built", "'n_bits': 'abc'", "valid:", "n_bits"],
            id="env-kwarg-wrong-value",
        ),
        pytest.param(
            [*POINT_TASKS, "--set", "env.tasks=[east, nowhere]"],
            ["mtgc/PointTasks-v0 has no task 'nowhere'", "valid: east, north, west, south"],
            id="unknown-task-name",
        ),
        pytest.param(
            [*POINT_TASKS, "--set", "env.tasks=[]"],
            ["env.tasks needs at least two tasks, got []", "valid:"],
            id="no-tasks",
        ),
        pytest.param(
            [*BIT_FLIP, "--set", "env.tasks=[a, b]"],
            ["mtgc/BitFlipping-v0 is not a multi-task env", "valid:"],
            id="tasks-of-a-single-task-env",
        ),
        pytest.param(
            [*BIT_FLIP, "--set", "algo.buffer_size=-1"],
            ["algo.buffer_size is -1; valid: int >= 1"],
            id="negative-buffer",
        ),
        pytest.param(
            [*BIT_FLIP, "--set", "algo.batch_size=0"],
            ["algo.batch_size is 0; valid: int >= 1"],
            id="zero-batch",
        ),
        pytest.param(
            [*BIT_FLIP, "--set", "algo.gamma=1.5"], ["algo.gamma is 1.5; valid: number in (0, 1]"], id="gamma"
        ),
        pytest.param(
            [*POINT_TASKS, "--set", "algo.tau=0"], ["algo.tau is 0; valid: number in (0, 1]"], id="tau"
        ),
        pytest.param(
            [*BIT_FLIP, "--set", "algo.learning_rate=-0.001"],
            ["algo.learning_rate", "valid: number > 0"],
            id="lr",
        ),
        pytest.param(
            [*BIT_FLIP, "--set", "algo.learning_starts=-5"],
            ["algo.learning_starts is -5; valid: int >= 0"],
            id="learning-starts",
        ),
        pytest.param(
            [*BIT_FLIP, "--set", "algo.train_freq=[4, week]"],
            ["algo.train_freq", "valid:", "episode"],
            id="train-freq-unit",
        ),
        pytest.param(
            [*BIT_FLIP, "--set", "algo.gradient_steps=0"],
            ["algo.gradient_steps is 0; valid: int >= 1 or -1"],
            id="gradient-steps",
        ),
        pytest.param(
            [*BIT_FLIP, "--set", "algo.policy_kwargs.net_arch=[0]"],
            ["algo.policy_kwargs.net_arch is [0]", "valid: a list of layer widths >= 1"],
            id="zero-width-layer",
        ),
        pytest.param(
            [*POINT_TASKS, "--set", "algo.policy_kwargs.net_arch={pi: [64], qf: [-8]}"],
            ["algo.policy_kwargs.net_arch", "valid:"],
            id="negative-width-in-pi-qf",
        ),
        pytest.param(
            [*BIT_FLIP, "--set", "algo.policy_kwargs.activation_fn=rectifier"],
            ["algo.policy_kwargs.activation_fn is 'rectifier'", "valid: relu, tanh, elu, leaky_relu"],
            id="unknown-activation",
        ),
        pytest.param(
            [*BIT_FLIP, "--runs-dir", "/proc/nope"],
            ["--runs-dir /proc/nope: cannot create folders in /proc", "valid:"],
            id="runs-dir-uncreatable",
        ),
    ],
)
def test_bad_value_is_one_line_exit_2_before_anything_is_written(
    invoke, tmp_path: Path, args: list[str], fragments: list[str]
) -> None:
    result = invoke(*args)
    assert_one_line_error(result, 2, *fragments)
    assert not (tmp_path / "runs").exists()
    assert not Path("/proc/nope").exists()


def test_runs_dir_under_a_file_is_one_line_exit_2(invoke, tmp_path: Path) -> None:
    (tmp_path / "blocked").write_text("a file where the runs folder should go")
    result = invoke(*BIT_FLIP, "--runs-dir", "blocked/runs")
    assert_one_line_error(result, 2, "--runs-dir blocked/runs: blocked is not a folder", "valid:")
    assert (tmp_path / "blocked").read_text().startswith("a file")
    assert [p.name for p in tmp_path.iterdir()] == ["blocked"]


def test_named_activation_trains_saves_and_evaluates(invoke, tmp_path: Path) -> None:
    # A name from YAML reaches SB3 as the torch class, is pickled into the model, and `mtgc eval`
    # loads it back; train_freq as a YAML pair reaches SB3 as the tuple it expects.
    result = invoke(
        *BIT_FLIP, "--set", "algo.policy_kwargs.activation_fn=tanh", "--set", "algo.train_freq=[1, episode]"
    )
    assert result.exit_code == 0, result.output
    (run,) = run_dirs(tmp_path)
    assert "activation_fn: tanh" in (run / "config.yaml").read_text()
    data, _, _ = load_from_zip_file(run / "model.zip", device="cpu")
    assert data["policy_kwargs"]["activation_fn"] is nn.Tanh
    evaluated = invoke("eval", str(run), "-n", "4", "--json")
    assert evaluated.exit_code == 0, evaluated.output
