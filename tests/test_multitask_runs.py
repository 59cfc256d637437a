"""Multi-task runs end to end: point-tasks, fetch-tasks and a Meta-World smoke run, with per-task eval."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from stable_baselines3.common.save_util import load_from_pkl

from mtgc_cli import checkpoint
from mtgc_cli.relabel import BatchPlan, MultiTaskReplayBuffer
from tests.conftest import run_dirs


def saved_batch(run: Path, batch_size: int = 512) -> tuple[MultiTaskReplayBuffer, BatchPlan]:
    """The replay buffer the run trained on (its last checkpoint's) and a minibatch plan drawn from
    it the way training draws one: which rows are relabeled, to which task, with which goal."""
    newest = checkpoint.newest(run)
    assert newest is not None
    buffer = load_from_pkl(newest.path / checkpoint.BUFFER)
    assert isinstance(buffer, MultiTaskReplayBuffer)
    np.random.seed(0)
    return buffer, buffer.plan_batch(batch_size)


SMALL = [
    "--set",
    "algo.learning_starts=100",
    "--set",
    "algo.buffer_size=2000",
    "--set",
    "train.eval_episodes=2",
]


def test_point_tasks_run_and_per_task_eval(invoke, tmp_path) -> None:
    result = invoke(
        "train", "--preset", "point-tasks", "--timesteps", "400", "--strategy", "best-task",
        "--set", "train.eval_every=200", *SMALL,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    for task in ("east", "north", "west", "south"):
        assert task in result.stdout
    (run,) = run_dirs(tmp_path)
    header = (run / "progress.csv").read_text().splitlines()[0]
    assert header.endswith("success/east,success/north,success/west,success/south")
    # best-task relabeling happened: rows collected for one task train another, for several
    # target tasks, and never more than task_fraction of a task's rows.
    buffer, plan = saved_batch(run)
    assert buffer.task_relabel == "best"
    moved = plan.task != plan.source_task
    relabeled = np.bincount(plan.task[moved], minlength=4)
    assert (relabeled > 0).sum() >= 2, relabeled
    per_task = np.bincount(plan.task, minlength=4)
    assert np.all(relabeled <= np.ceil(buffer.task_fraction * per_task)), (relabeled, per_task)
    table = invoke("eval", str(run), "-n", "3")
    assert table.exit_code == 0, table.output
    assert "mean over tasks" in table.stdout and "south" in table.stdout
    data = json.loads(invoke("eval", str(run), "-n", "3", "--json").stdout)
    assert [row["name"] for row in data["tasks"]] == ["east", "north", "west", "south"]
    assert all(row["episodes"] == 3 for row in data["tasks"])
    assert data["overall"]["episodes"] == 12
    mean = sum(row["success"] for row in data["tasks"]) / 4
    assert data["overall"]["success"] == pytest.approx(mean)


def test_fetch_tasks_run_with_goal_and_task_relabeling(invoke, tmp_path) -> None:
    result = invoke(
        "train", "--preset", "fetch-tasks", "--timesteps", "200", "--strategy", "future+best-task",
        "--set", "train.eval_every=200", "--set", "algo.policy_kwargs.net_arch=[32, 32]", *SMALL,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    (run,) = run_dirs(tmp_path)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["strategy"] == "future+best-task" and summary["steps"] == 200
    assert set(summary["final_task_success"]) == {"reach", "push", "lift"}
    # future+best-task: goals relabeled (HER's share of rows, from the same episode) and tasks too.
    buffer, plan = saved_batch(run)
    goal_rows = plan.goal_from >= 0
    assert goal_rows.mean() == pytest.approx(buffer.her_ratio, abs=0.1)
    assert np.all(
        buffer.ep_start[plan.goal_from[goal_rows], plan.env[goal_rows]]
        == buffer.ep_start[plan.index[goal_rows], plan.env[goal_rows]]
    )
    assert (plan.task != plan.source_task).any()


META_WORLD_TASKS = (
    "env.tasks=[{id: Meta-World/MT1, name: reach, kwargs: {env_name: reach-v3}},"
    " {id: Meta-World/MT1, name: window-close, kwargs: {env_name: window-close-v3}}]"
)


def test_metaworld_smoke_run(invoke, tmp_path) -> None:
    """Meta-World MT1 tasks from the metaworld-mt10 preset (two of its ten, 60-step episodes)."""
    result = invoke(
        "train", "--preset", "metaworld-mt10", "--timesteps", "200", "--set", META_WORLD_TASKS,
        "--set", "env.kwargs={max_episode_steps: 60}", "--set", "train.eval_every=200",
        "--set", "algo.policy_kwargs.net_arch=[32, 32]", *SMALL,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    (run,) = run_dirs(tmp_path)
    data = json.loads(invoke("eval", str(run), "-n", "1", "--json").stdout)
    assert [row["name"] for row in data["tasks"]] == ["reach", "window-close"]
    assert all(row["mean_length"] == 60 for row in data["tasks"])
