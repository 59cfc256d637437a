"""Seeds: independent streams per run seed, purpose and slot; reproducible runs; Meta-World task sets."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mtgc_cli import presets
from mtgc_cli.envs.factory import make_vec_env
from mtgc_cli.evaluation import make_eval_env
from mtgc_cli.seeding import Stream, derive, slot_seeds
from tests.conftest import run_dirs


def test_streams_do_not_overlap_between_seeds_purposes_or_slots() -> None:
    # The old scheme (seed + 10_000 + slot) gave seed 0's slot k + 1 to seed 1's slot k.
    seeds = [derive(seed, stream, slot) for seed in range(5) for stream in Stream for slot in range(10)]
    assert len(set(seeds)) == len(seeds)
    assert slot_seeds(0, Stream.EVAL, 10)[1:] != slot_seeds(1, Stream.EVAL, 10)[:-1]
    assert slot_seeds(3, Stream.TRAIN, 4) == slot_seeds(3, Stream.TRAIN, 4)


def _first_goals(env) -> np.ndarray:
    obs = env.reset()
    return np.asarray(obs["desired_goal"]).copy()


def test_eval_goals_differ_between_seeds_and_from_training() -> None:
    config = presets.load("fetch-reach")
    goals = {}
    for seed in (0, 1):
        env, _ = make_eval_env(config, 10, seed=seed, stream=Stream.EVAL)
        goals[seed] = _first_goals(env)
        env.close()
    # No eval slot of seed 0 replays a slot of seed 1.
    assert not any(np.allclose(a, b) for a in goals[0] for b in goals[1])
    train = make_vec_env(config.env, seed=0, stream=Stream.TRAIN)
    command, _ = make_eval_env(config, 10, seed=0, stream=Stream.EVAL_COMMAND)
    train_goal = _first_goals(train)[0]
    # `mtgc eval --seed 0` on a seed-0 run does not replay the training goals nor the run's evals.
    assert not any(np.allclose(train_goal, g) for g in _first_goals(command))
    assert not any(np.allclose(a, b) for a in goals[0] for b in _first_goals(command))
    # And the same seed gives the same goals again.
    again, _ = make_eval_env(config, 10, seed=0, stream=Stream.EVAL)
    assert np.allclose(_first_goals(again), goals[0])
    for env in (train, command, again):
        env.close()


def _metaworld_config(seed: int) -> presets.RunConfig:
    return presets.load(
        "metaworld-mt10",
        seed=seed,
        sets=["env.tasks=[{id: Meta-World/MT1, name: reach, kwargs: {env_name: reach-v3}}, "
              "{id: Meta-World/MT1, name: push, kwargs: {env_name: push-v3}}]"],
    )  # fmt: skip


def _task_set(env) -> list[bytes]:
    """The pickled variations (goal and object positions) the first slot's current task draws from."""
    inner = env.envs[0].unwrapped
    current = inner.envs[inner.task] if hasattr(inner, "envs") else inner
    return [task.data for task in current.get_wrapper_attr("tasks")]


def test_metaworld_variations_follow_the_run_seed_and_match_between_training_and_eval() -> None:
    pytest.importorskip("metaworld")
    config = _metaworld_config(0)
    first = make_vec_env(config.env, seed=0, slot_tasks=[0])
    second = make_vec_env(config.env, seed=0, slot_tasks=[0])
    assert _task_set(first) == _task_set(second)
    # Eval envs (another seed stream) see the same set of variations as training.
    eval_env = make_vec_env(config.env, seed=7, stream=Stream.EVAL, task_set_seed=0, slot_tasks=[0])
    assert _task_set(eval_env) == _task_set(first)
    other = make_vec_env(_metaworld_config(1).env, seed=1, slot_tasks=[0])
    assert _task_set(other) != _task_set(first)
    for env in (first, second, eval_env, other):
        env.close()


def test_metaworld_is_seeded_in_a_fresh_process() -> None:
    # Meta-World registers its ids only on import; the seed must not depend on an earlier build
    # in the same process having registered them (as every earlier test here may have).
    pytest.importorskip("metaworld")
    code = (
        "from mtgc_cli import presets\n"
        "from mtgc_cli.envs.factory import with_task_set_seed\n"
        "cfg = presets.load('metaworld-mt10').env\n"
        "print(sorted({task.kwargs.get('seed') for task in with_task_set_seed(cfg, 5).tasks}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[5]"


def _eval_columns(run: Path) -> list[tuple[str, ...]]:
    with (run / "progress.csv").open() as f:
        rows = list(csv.DictReader(f))
    keys = ["env_steps", "eval_success", "eval_return", *[k for k in rows[0] if k.startswith("success/")]]
    return [tuple(row[k] for k in keys) for row in rows]


POINT = ["--preset", "point-tasks", "--timesteps", "1000", "--set", "algo.learning_starts=500",
         "--set", "algo.batch_size=64", "--set", "train.eval_every=500",
         "--set", "train.eval_episodes=8"]  # fmt: skip
BITS = ["--preset", "bit-flip", "--timesteps", "600", "--set", "env.kwargs.n_bits=6",
        "--set", "algo.learning_starts=200", "--set", "algo.policy_kwargs.net_arch=[32]",
        "--set", "train.eval_every=300", "--set", "train.eval_episodes=10"]  # fmt: skip


@pytest.mark.parametrize("args", [POINT, BITS], ids=["point-tasks", "bit-flip"])
def test_same_seed_gives_identical_eval_columns(invoke, tmp_path: Path, args: list[str]) -> None:
    for folder in ("a", "b"):
        result = invoke("train", *args, "--runs-dir", folder)
        assert result.exit_code == 0, result.output
    (a,) = run_dirs(tmp_path / "a")
    (b,) = run_dirs(tmp_path / "b")
    assert _eval_columns(a) == _eval_columns(b)


def test_training_slots_do_not_overlap_between_run_seeds() -> None:
    from mtgc_cli.training import prepare

    goals = []
    for seed in (0, 1):
        setup = prepare(presets.load("fetch-reach", seed=seed, sets=["env.n_envs=2", "env.normalize=false"]))
        goals.append(_first_goals(setup.env))  # the reset that model.learn() does first
        setup.close()
    # With SB3's seed + slot, seed 0's slot 1 and seed 1's slot 0 drew the same goal.
    assert not np.allclose(goals[0][1], goals[1][0])
    assert not np.allclose(goals[0][0], goals[0][1])
