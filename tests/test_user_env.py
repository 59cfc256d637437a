"""A user's own goal env, named ``module:EnvId`` as in ``gym.make``: trained, evaluated and compared.

The module sits in the folder the command runs from, with nothing on PYTHONPATH: mtgc searches
the current folder for it, and every process that builds envs (SubprocVecEnv's forkserver
workers, compare's spawned workers) imports it again. The commands run as real subprocesses,
because a worker's import is what is being tested.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import pytest

from tests.conftest import assert_one_line_error, run_dirs

MODULE = "mtgc_user_reach"
ENV_ID = f"{MODULE}:LineReach-v0"

# A complete goal env in a few lines: Dict observation with achieved and desired goals, a
# vectorised compute_reward for relabeling, info["is_success"], and its own registration.
USER_MODULE = '''
import gymnasium as gym
import numpy as np
from gymnasium import spaces


class LineReach(gym.Env):
    """Walk left, stay or right along cells 0..size-1 to the goal cell."""

    def __init__(self, size: int = 5) -> None:
        self.size = size
        box = spaces.Box(0, size - 1, shape=(1,), dtype=np.float32)
        self.observation_space = spaces.Dict({"observation": box, "achieved_goal": box, "desired_goal": box})
        self.action_space = spaces.Discrete(3)

    def _obs(self):
        pos = np.array([self.pos], dtype=np.float32)
        goal = np.array([self.goal], dtype=np.float32)
        return {"observation": pos, "achieved_goal": pos.copy(), "desired_goal": goal}

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.pos, self.goal = (int(x) for x in self.np_random.integers(self.size, size=2))
        return self._obs(), {}

    def step(self, action):
        self.pos = int(np.clip(self.pos + int(action) - 1, 0, self.size - 1))
        obs = self._obs()
        reward = float(self.compute_reward(obs["achieved_goal"], obs["desired_goal"], {}))
        return obs, reward, False, False, {"is_success": float(reward == 0.0)}

    def compute_reward(self, achieved_goal, desired_goal, info):
        return -(np.abs(achieved_goal - desired_goal).sum(axis=-1) > 0.5).astype(np.float32)


gym.register(id="LineReach-v0", entry_point=f"{__name__}:LineReach", max_episode_steps=8)
'''

# 300 steps in two subprocess envs: learning starts at 100, episodes end every 8 steps.
RUN = [
    "--preset", "bit-flip", "--timesteps", "300", "--set", f"env.id={ENV_ID}", "--set", "env.kwargs={size: 5}",
    "--set", "env.n_envs=2", "--set", "env.vec_env=subproc", "--set", "algo.learning_starts=100",
    "--set", "algo.buffer_size=1000", "--set", "algo.policy_kwargs.net_arch=[32]",
    "--set", "train.eval_every=150", "--set", "train.eval_episodes=4",
]  # fmt: skip


def mtgc(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The installed ``mtgc`` script (not ``python -m``, which would put the folder on sys.path)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("PYTHONPATH", None)
    script = Path(sys.executable).with_name("mtgc")
    return subprocess.run([str(script), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture
def user_folder(tmp_path: Path) -> Path:
    (tmp_path / f"{MODULE}.py").write_text(USER_MODULE)
    return tmp_path


def test_train_and_eval_a_user_env_by_module_id(user_folder: Path) -> None:
    result = mtgc(user_folder, "train", *RUN)
    assert result.returncode == 0, result.stderr[-3000:]
    (run,) = run_dirs(user_folder / "runs")
    summary = json.loads((run / "summary.json").read_text())
    assert summary["steps"] == 300 and summary["status"] == "done"
    rows = (run / "progress.csv").read_text().splitlines()[1:]
    assert [int(row.split(",")[0]) for row in rows] == [150, 300]
    evaluated = mtgc(user_folder, "eval", str(run), "-n", "4", "--json")
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    data = json.loads(evaluated.stdout)
    assert data["overall"]["episodes"] == 4 and data["overall"]["mean_length"] <= 8


def test_compare_workers_import_the_user_module(user_folder: Path) -> None:
    # One in-process env per worker: the spawned worker's import is the point (train covers subproc).
    in_process = ["--set", "env.n_envs=1", "--set", "env.vec_env=dummy"]
    result = mtgc(
        user_folder, "compare", *RUN, *in_process, "--strategies", "future", "--seeds", "1", "--workers", "1"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(
        (user_folder / "runs" / "compare" / "bit-flip" / "future-s0" / "summary.json").read_text()
    )
    assert summary["steps"] == 300 and summary["status"] == "done"


@pytest.mark.parametrize(
    ("module_source", "env_id", "fragments"),
    [
        (None, "nowhere_mod:LineReach-v0", ["no module named 'nowhere_mod'", "valid: a module in the current"]),
        (USER_MODULE, f"{MODULE}:LineRech-v0", ["did not register 'LineRech-v0'", "did you mean 'LineReach-v0'"]),
        ("raise RuntimeError('no licence for this simulator')", f"{MODULE}:LineReach-v0",
         ["importing 'mtgc_user_reach' failed: RuntimeError: no licence for this simulator"]),
    ],
)  # fmt: skip
def test_bad_module_ids_are_one_line_exit_2(
    invoke, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, module_source: str | None, env_id: str, fragments
) -> None:
    # In-process: keep the test process's import state and gymnasium's registry as they were.
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.delitem(sys.modules, MODULE, raising=False)
    if module_source is not None:
        (tmp_path / f"{MODULE}.py").write_text(module_source)
    try:
        result = invoke("train", *RUN, "--set", f"env.id={env_id}")
    finally:
        sys.modules.pop(MODULE, None)
        gym.registry.pop("LineReach-v0", None)
    assert_one_line_error(result, 2, *fragments)
    assert not (tmp_path / "runs").exists()
