"""Imitation: scripted experts, minibatches from demonstrations, behaviour cloning end to end.

Real envs throughout (PointTasks is numpy only; the Fetch envs are MuJoCo); episodes and
gradient steps are few, so the file runs in seconds.
"""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from mtgc_cli import presets
from mtgc_cli.imitation import dataset
from mtgc_cli.imitation.batches import DemoSampler, split_episodes
from mtgc_cli.imitation.collect import collect, per_step_env, probe_env
from tests.conftest import assert_one_line_error, run_dirs


def expert_success(preset: str, episodes: int, tasks: list[str] | None = None) -> dict[str, float]:
    """Success of the scripted expert per task over ``episodes`` seeded episodes each."""
    cfg = per_step_env(presets.load(preset).env)
    if tasks is not None:
        cfg = cfg.model_copy(update={"tasks": [t for t in cfg.tasks or [] if t.label in tasks]})
    _, expert = probe_env(cfg)
    assert callable(expert), expert
    names = cfg.task_labels or ["all"]
    results = collect(cfg, expert, [episodes] * len(names), seed=0)
    return {r.name: r.successes / r.attempts for r in results}


@pytest.mark.parametrize(
    ("preset", "episodes"),
    [
        ("point-tasks", 5),
        ("fetch-reach", 4),
        ("fetch-push", 4),
        ("fetch-pick-and-place", 4),
        ("fetch-tasks", 3),
    ],
)
def test_scripted_experts_succeed(preset: str, episodes: int) -> None:
    success = expert_success(preset, episodes)
    assert success and all(rate >= 0.75 for rate in success.values()), success


def point_demos(tmp_path, counts: list[int], dataset_id: str = "mtgc/point-v0") -> dataset.Demonstrations:
    cfg = presets.load("point-tasks").env
    facts, expert = probe_env(cfg)
    results = collect(cfg, expert, counts, seed=0)
    episodes = [episode for result in results for episode in result.kept]
    dataset.write(
        tmp_path,
        dataset_id,
        episodes,
        observation_space=facts.observation_space,
        action_space=facts.action_space,
        env_spec=facts.spec,
        algorithm="scripted",
        description="test",
        metadata={"task_names": cfg.task_labels},
    )
    return dataset.read(tmp_path, dataset_id)


def test_stratified_batches_hold_every_task_in_equal_shares(tmp_path) -> None:
    # South is 10x rarer than the others.
    demos = point_demos(tmp_path, [10, 10, 10, 1])
    assert np.bincount(demos.episode_tasks).tolist() == [10, 10, 10, 1]
    rows = np.arange(len(demos.actions))
    rng = np.random.default_rng(0)
    for _ in range(20):
        obs, _ = DemoSampler(demos, rows, rng, "stratified").sample(256)
        counts = np.bincount(np.argmax(obs["task"], axis=1), minlength=4)
        assert counts.min() >= 64 and counts.max() <= 64, counts
    obs, _ = DemoSampler(demos, rows, rng, "uniform").sample(4096)
    south = np.mean(np.argmax(obs["task"], axis=1) == 3)
    assert 0.01 < south < 0.06, south  # its share of the data, 1/31


def test_validation_split_holds_out_whole_episodes_of_every_task(tmp_path) -> None:
    demos = point_demos(tmp_path, [10, 10, 10, 1])
    train, validation = split_episodes(demos, 0.2, np.random.default_rng(0))
    held_out = set(demos.episode[validation].tolist())
    assert held_out.isdisjoint(demos.episode[train].tolist())
    # two of each 10-episode task; the single south episode stays in training
    assert np.bincount(demos.episode_tasks[sorted(held_out)], minlength=4).tolist() == [2, 2, 2, 0]


def test_future_goals_are_goals_the_episode_reached_later(tmp_path) -> None:
    cfg = presets.load("fetch-reach").env
    facts, expert = probe_env(cfg)
    episodes = collect(cfg, expert, [2], seed=0)[0].kept
    dataset.write(
        tmp_path, "mtgc/reach-v0", episodes, observation_space=facts.observation_space,
        action_space=facts.action_space, env_spec=facts.spec, algorithm="scripted", description="test",
        metadata={},
    )  # fmt: skip
    demos = dataset.read(tmp_path, "mtgc/reach-v0")
    sampler = DemoSampler(
        demos, np.arange(len(demos.actions)), np.random.default_rng(0), "uniform", "future", 1.0
    )
    index = sampler.indices(64)
    goals = sampler.goals_for(index)
    assert demos.next_achieved_goal is not None
    for row, goal in zip(index, goals, strict=True):
        later = demos.next_achieved_goal[row : demos.episode_end[row]]
        assert np.any(np.all(later == goal, axis=1))
    obs, _ = sampler.sample(64)
    assert not np.array_equal(obs["desired_goal"], demos.observations["desired_goal"][:64])


BC_POINT = [
    "train", "--preset", "point-tasks-bc", "--timesteps", "600", "--set", "train.eval_every=300",
    "--set", "train.eval_episodes=10", "--set", "algo.validation_every=300",
]  # fmt: skip


def test_bc_learns_point_tasks_and_eval_and_collect_use_the_run(invoke, tmp_path) -> None:
    collected = invoke("collect", "--preset", "point-tasks-bc", "--episodes", "15")
    assert collected.exit_code == 0, collected.output
    result = invoke(*BC_POINT)
    assert result.exit_code == 0, result.output
    (run,) = run_dirs(tmp_path / "runs")
    summary = json.loads((run / "summary.json").read_text())
    assert summary["final_eval_success"] >= 0.9, summary
    assert set(summary["final_task_success"]) == {"east", "north", "west", "south"}
    with (run / "progress.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [r["gradient_steps"] for r in rows] == ["300", "600"]
    with (run / "bc_loss.csv").open() as f:
        losses = list(csv.DictReader(f))
    assert float(losses[-1]["validation_loss"]) < 0.05, losses

    evaluated = invoke("eval", str(run), "--episodes", "10", "--json")
    assert evaluated.exit_code == 0, evaluated.output
    report = json.loads(evaluated.stdout)
    assert [row["name"] for row in report["tasks"]] == ["east", "north", "west", "south"]
    assert report["overall"]["success"] >= 0.9

    again = invoke(
        "collect", "--policy", str(run / "model.zip"), "--episodes", "2", "--dataset", "mtgc/from-bc-v0"
    )
    assert again.exit_code == 0, again.output
    demos = dataset.read(tmp_path / "data", "mtgc/from-bc-v0")
    assert demos.n_episodes == 8 and demos.metadata["demonstrator"] == str(run / "model.zip")
    # A run's policy in an env whose observations it does not take: refused before any episode.
    other = invoke("collect", "--policy", str(run), "--preset", "fetch-reach", "--dataset", "mtgc/x-v0")
    assert_one_line_error(other, 2, "acts on", "valid: a preset with the run's env")


def test_gaussian_head_learns_point_tasks(invoke, tmp_path) -> None:
    assert invoke("collect", "--preset", "point-tasks-bc", "--episodes", "15").exit_code == 0
    result = invoke(*BC_POINT, "--set", "algo.head=gaussian", "--set", "relabel.sampling=uniform")
    assert result.exit_code == 0, result.output
    (run,) = run_dirs(tmp_path / "runs")
    assert json.loads((run / "summary.json").read_text())["final_eval_success"] >= 0.9


def test_compare_strategies_name_the_sampling() -> None:
    assert presets.strategy_overrides("uniform") == {
        "strategy": "none",
        "task": "none",
        "sampling": "uniform",
    }
    assert presets.load("point-tasks-bc", strategy="uniform").relabel.sampling == "uniform"
    assert presets.load("point-tasks-bc", strategy="stratified").relabel.sampling == "stratified"


def test_bc_resume_continues_the_same_optimisation(invoke, tmp_path) -> None:
    # 600 gradient steps in one go against 300 and then a resume to 600: the same weights, since the
    # optimiser's state is saved with the model and the minibatch generator with the checkpoint.
    # (Without them the weights differed by up to 0.18.)
    from stable_baselines3.common.save_util import load_from_zip_file

    assert invoke("collect", "--preset", "point-tasks-bc", "--episodes", "8").exit_code == 0
    settings = [*BC_POINT[:3], "--set", "train.eval_every=300", "--set", "train.eval_episodes=2",
                "--set", "algo.validation_every=300", "--set", "train.checkpoint_every=300"]  # fmt: skip
    whole = invoke(*settings, "--timesteps", "600", "--runs-dir", "whole")
    assert whole.exit_code == 0, whole.output
    half = invoke(*settings, "--timesteps", "300", "--runs-dir", "half")
    assert half.exit_code == 0, half.output
    (stopped,) = run_dirs(tmp_path / "half")
    resumed = invoke("train", "--resume", str(stopped), "--timesteps", "600")
    assert resumed.exit_code == 0, resumed.output
    (uninterrupted,) = run_dirs(tmp_path / "whole")
    _, one, _ = load_from_zip_file(uninterrupted / "model.zip")
    _, two, _ = load_from_zip_file(stopped / "model.zip")
    assert one is not None and two is not None and "policy.optimizer" in one
    for name, tensor in one["policy"].items():
        np.testing.assert_allclose(tensor.numpy(), two["policy"][name].numpy(), atol=1e-6, err_msg=name)
