"""Tests for mtgc_cli.envs.wrappers against small stub envs."""

from __future__ import annotations

from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces

from mtgc_cli.envs.wrappers import (
    ActionRepeat,
    DictObservation,
    GoalObservation,
    MissingSuccessKey,
    SuccessInfo,
    TaskOneHot,
)

STUB_ID = "mtgc-test/WrapperStub-v0"


class StubEnv(gym.Env):
    """Counts steps; reports ``info["task"]`` (cycling over ``n_tasks``) and ``info["success"]``.

    ``kind`` picks the observation space: ``"dict"`` (a goal-style Dict) or ``"box"`` (3-dim).
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": []}

    def __init__(self, kind: str = "dict", n_tasks: int = 3, report_task: bool = True) -> None:
        self.kind = kind
        self.n_tasks = n_tasks
        self.report_task = report_task
        self.t = 0
        self.task = 0
        box = spaces.Box(-5.0, 5.0, shape=(3,), dtype=np.float64)
        if kind == "dict":
            self.observation_space = spaces.Dict(
                {
                    "observation": box,
                    "achieved_goal": spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float64),
                    "desired_goal": spaces.Box(-2.0, 2.0, shape=(2,), dtype=np.float64),
                }
            )
        else:
            self.observation_space = box
        self.action_space = spaces.Box(-1.0, 1.0, shape=(1,), dtype=np.float32)

    def _obs(self) -> Any:
        vec = np.array([self.t, self.t + 0.5, -1.0])
        if self.kind == "dict":
            return {
                "observation": vec,
                "achieved_goal": np.array([0.1, 0.2]),
                "desired_goal": np.array([0.3, 0.4]),
            }
        return vec

    def _info(self) -> dict[str, Any]:
        info: dict[str, Any] = {"success": self.t % 2 == 0}
        if self.report_task:
            info["task"] = self.task
        return info

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict]:
        super().reset(seed=seed)
        self.t = 0
        self.task = 1 if options is None else options.get("task", 1)
        return self._obs(), self._info()

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
        self.t += 1
        self.task = (self.task + 1) % self.n_tasks
        return self._obs(), 0.0, False, False, self._info()

    def compute_reward(self, achieved_goal: np.ndarray, desired_goal: np.ndarray, info: Any) -> np.ndarray:
        return -np.linalg.norm(achieved_goal - desired_goal, axis=-1)


@pytest.fixture(scope="module", autouse=True)
def _registered_stub() -> Any:
    gym.register(STUB_ID, entry_point=StubEnv)
    yield
    del gym.registry[STUB_ID]


# ---- TaskOneHot ---------------------------------------------------------------------------


def test_task_one_hot_dict_space_and_values() -> None:
    env = TaskOneHot(StubEnv("dict", n_tasks=3), n_tasks=3)
    assert isinstance(env.observation_space, spaces.Dict)
    assert set(env.observation_space.spaces) == {"observation", "achieved_goal", "desired_goal", "task"}
    assert env.observation_space["task"] == spaces.Box(0.0, 1.0, shape=(3,), dtype=np.float32)
    obs, _ = env.reset()
    np.testing.assert_array_equal(obs["task"], [0.0, 1.0, 0.0])
    assert obs["task"].dtype == np.float32
    assert obs in env.observation_space
    # The stub switches task every step: the wrapper must follow info["task"], not the reset value.
    obs, *_ = env.step(env.action_space.sample())
    np.testing.assert_array_equal(obs["task"], [0.0, 0.0, 1.0])
    obs, *_ = env.step(env.action_space.sample())
    np.testing.assert_array_equal(obs["task"], [1.0, 0.0, 0.0])


def test_task_one_hot_box_space_and_values() -> None:
    env = TaskOneHot(StubEnv("box", n_tasks=2), n_tasks=2)
    space = env.observation_space
    assert isinstance(space, spaces.Box)
    assert space.shape == (5,) and space.dtype == np.float32
    np.testing.assert_array_equal(space.low, [-5, -5, -5, 0, 0])
    np.testing.assert_array_equal(space.high, [5, 5, 5, 1, 1])
    obs, _ = env.reset(options={"task": 0})
    np.testing.assert_array_equal(obs, np.array([0.0, 0.5, -1.0, 1.0, 0.0], dtype=np.float32))
    assert obs.dtype == np.float32 and obs in space


def test_task_one_hot_key_collision() -> None:
    with pytest.raises(ValueError, match="already exists"):
        TaskOneHot(StubEnv("dict"), n_tasks=3, key="desired_goal")


def test_task_one_hot_unsupported_space() -> None:
    env = StubEnv("box")
    env.observation_space = spaces.Discrete(4)
    with pytest.raises(TypeError, match="Dict or a 1-D Box"):
        TaskOneHot(env, n_tasks=3)


def test_task_one_hot_missing_or_bad_task() -> None:
    with pytest.raises(KeyError, match="info\\['task'\\]"):
        TaskOneHot(StubEnv(report_task=False), n_tasks=3).reset()
    env = TaskOneHot(StubEnv(n_tasks=5), n_tasks=2)
    with pytest.raises(ValueError, match="outside"):
        env.reset(options={"task": 3})


# ---- GoalObservation ----------------------------------------------------------------------


def test_goal_observation_order_and_space() -> None:
    env = GoalObservation(StubEnv("dict"), keys=("desired_goal", "observation"))
    space = env.observation_space
    assert space.shape == (5,) and space.dtype == np.float32
    np.testing.assert_array_equal(space.low, [-2, -2, -5, -5, -5])
    obs, _ = env.reset()
    np.testing.assert_array_equal(obs, np.array([0.3, 0.4, 0.0, 0.5, -1.0], dtype=np.float32))
    assert obs in space


def test_goal_observation_errors() -> None:
    with pytest.raises(ValueError, match="'missing' is not in"):
        GoalObservation(StubEnv("dict"), keys=("observation", "missing"))
    with pytest.raises(ValueError, match="Dict observation space"):
        GoalObservation(StubEnv("box"))


def test_goal_observation_compute_reward_reachable() -> None:
    env = GoalObservation(TaskOneHot(StubEnv("dict"), n_tasks=3))
    compute_reward = env.get_wrapper_attr("compute_reward")
    reward = compute_reward(np.zeros((4, 2)), np.ones((4, 2)), [{}] * 4)
    np.testing.assert_allclose(reward, -np.sqrt(2) * np.ones(4))


# ---- DictObservation and SuccessInfo ------------------------------------------------------


def test_dict_observation() -> None:
    env = DictObservation(StubEnv("box"), key="state")
    assert env.observation_space == spaces.Dict({"state": StubEnv("box").observation_space})
    obs, _ = env.reset()
    assert set(obs) == {"state"}
    np.testing.assert_array_equal(obs["state"], [0.0, 0.5, -1.0])
    with pytest.raises(TypeError):
        DictObservation(StubEnv("dict"))
    # The point of DictObservation: a Box env can then get a task key.
    assert "task" in TaskOneHot(env, n_tasks=3).observation_space.spaces


def test_success_info() -> None:
    env = SuccessInfo(StubEnv())
    env.reset()
    *_, info = env.step(env.action_space.sample())
    assert info["is_success"] == 0.0 and isinstance(info["is_success"], float)
    *_, info = env.step(env.action_space.sample())
    assert info["is_success"] == 1.0
    with pytest.raises(KeyError, match="nope"):
        env = SuccessInfo(StubEnv(), key="nope")
        env.reset()
        env.step(env.action_space.sample())


def test_success_info_detects_the_key_or_names_the_keys_the_env_reports() -> None:
    env = SuccessInfo(StubEnv(), key=None)  # the stub reports "success", as Meta-World does
    env.reset()
    env.step(env.action_space.sample())
    *_, info = env.step(env.action_space.sample())
    assert env.key == "success" and info["is_success"] == 1.0
    with pytest.raises(MissingSuccessKey) as caught:
        env = SuccessInfo(StubEnv(), key="is_done")
        env.reset()
        env.step(env.action_space.sample())
    assert caught.value.keys == ("success", "task")


def test_success_info_latch_counts_success_at_any_step() -> None:
    # The stub succeeds at even steps only: at the end of a 3-step episode it reports failure.
    latched = SuccessInfo(StubEnv(), key="success", latch=True)
    plain = SuccessInfo(StubEnv(), key="success")
    for env in (latched, plain):
        env.reset()
    flags = [
        [env.step(env.action_space.sample())[-1]["is_success"] for env in (latched, plain)] for _ in range(3)
    ]
    assert flags == [[0.0, 0.0], [1.0, 1.0], [1.0, 0.0]]
    latched.reset()  # a new episode starts unreached
    assert latched.step(latched.action_space.sample())[-1]["is_success"] == 0.0


class _Counter(StubEnv):
    """Truncates after ``limit`` steps; reward is the step count, so the last inner step is visible."""

    def __init__(self, limit: int) -> None:
        super().__init__("box")
        self.limit = limit
        self.actions: list[float] = []

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
        obs, _, terminated, _, info = super().step(action)
        self.actions.append(float(np.asarray(action)[0]))
        return obs, float(self.t), terminated, self.t >= self.limit, info


def test_action_repeat_repeats_and_stops_at_the_episode_end() -> None:
    inner = _Counter(limit=5)
    env = ActionRepeat(inner, repeat=2, reward="last")
    env.reset()
    _, reward, _, truncated, info = env.step(np.array([0.5], dtype=np.float32))
    assert (reward, truncated, info["env_steps"]) == (2.0, False, 2) and inner.actions == [0.5, 0.5]
    env.step(np.array([0.1], dtype=np.float32))
    _, reward, _, truncated, info = env.step(np.array([0.2], dtype=np.float32))
    # 5 = 2 + 2 + 1: the last decision stops at the inner truncation instead of overshooting.
    assert (reward, truncated, info["env_steps"]) == (5.0, True, 1) and inner.t == 5
    with pytest.raises(ValueError):
        ActionRepeat(_Counter(3), repeat=0)


# ---- env.spec -----------------------------------------------------------------------------


def test_wrappers_recorded_in_spec() -> None:
    env = gym.make(STUB_ID, kind="box")
    env = DictObservation(env)
    env = TaskOneHot(env, n_tasks=3, key="task")
    env = SuccessInfo(env)
    spec = env.spec
    assert spec is not None
    names = [w.name for w in spec.additional_wrappers]
    assert names == ["DictObservation", "TaskOneHot", "SuccessInfo"]
    assert spec.additional_wrappers[1].kwargs == {"n_tasks": 3, "key": "task"}
    # The recorded spec rebuilds the same stack.
    remade = gym.make(spec)
    assert remade.observation_space == env.observation_space
    goal_env = GoalObservation(gym.make(STUB_ID), keys=["observation", "desired_goal"])
    assert goal_env.spec.additional_wrappers[-1].kwargs == {"keys": ("observation", "desired_goal")}


def test_action_repeat_sums_rewards_or_keeps_the_last() -> None:
    # The _Counter's reward is the step count: a decision of steps 1-2 sums to 3, its last is 2.
    summed, last = (
        ActionRepeat(_Counter(limit=5), repeat=2),
        ActionRepeat(_Counter(limit=5), repeat=2, reward="last"),
    )
    for env in (summed, last):
        env.reset()
    action = np.array([0.5], dtype=np.float32)
    assert [summed.step(action)[1], summed.step(action)[1]] == [3.0, 7.0]
    assert [last.step(action)[1], last.step(action)[1]] == [2.0, 4.0]
    with pytest.raises(ValueError):
        ActionRepeat(_Counter(3), repeat=2, reward="mean")


def _factory_env(**env: Any) -> gym.Env:
    from mtgc_cli.envs.factory import make_env
    from mtgc_cli.presets import EnvConfig

    return make_env(EnvConfig.model_validate({"id": STUB_ID, **env}), seed=0)


def test_success_inside_a_repeated_action_counts_for_success_at_any() -> None:
    # The stub succeeds at env steps 2, 4, ...: one decision of 3 env steps passes step 2 and ends
    # at step 3. With success read only after the repeat, `any` saw step 3 alone and scored 0.
    for repeat in (1, 3):
        env = _factory_env(success_at="any", action_repeat=repeat, kwargs={"kind": "box"})
        env.reset()
        infos = [env.step(env.action_space.sample())[-1] for _ in range(3 // repeat)]
        assert infos[-1]["is_success"] == 1.0, repeat
    # `end` keeps the decision's last env step's success (step 3: none).
    env = _factory_env(success_at="end", action_repeat=3, kwargs={"kind": "box"})
    env.reset()
    assert env.step(env.action_space.sample())[-1]["is_success"] == 0.0


def test_goal_env_repeats_keep_the_relabelable_reward_and_others_sum() -> None:
    from mtgc_cli.envs.factory import repeat_reward

    goal, box = gym.make(STUB_ID), gym.make(STUB_ID, kind="box")
    from mtgc_cli.presets import EnvConfig

    sparse = EnvConfig.model_validate({"id": STUB_ID, "action_repeat": 3})
    dense = EnvConfig.model_validate({"id": STUB_ID, "action_repeat": 3, "reward_type": "dense"})
    assert (repeat_reward(sparse, goal), repeat_reward(dense, goal), repeat_reward(sparse, box)) == (
        "last",
        "sum",
        "sum",
    )
