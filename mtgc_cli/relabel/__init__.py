"""Relabeling: which SB3 replay buffer a run uses, and checks that the env supports the choice."""

from __future__ import annotations

from typing import Any

from gymnasium import spaces
from stable_baselines3.common.vec_env import VecEnv

from mtgc_cli.config import RunConfig
from mtgc_cli.envs.factory import TASK_KEY, base_attr
from mtgc_cli.errors import UsageError
from mtgc_cli.relabel.her_buffer import GoalReplayBuffer
from mtgc_cli.relabel.multitask_buffer import BatchPlan, MultiTaskReplayBuffer

__all__ = ["BatchPlan", "GoalReplayBuffer", "MultiTaskReplayBuffer", "replay_setup"]


def _is_goal_space(space: spaces.Space) -> bool:
    return isinstance(space, spaces.Dict) and {"achieved_goal", "desired_goal"} <= set(space.spaces)


def replay_setup(config: RunConfig, env: VecEnv) -> tuple[type | None, dict[str, Any]]:
    """The replay buffer class and kwargs for ``config.relabel`` on ``env``.

    ``none`` on a single task keeps SB3's plain (dict) replay buffer; final/future/episode use
    SB3's ``HerReplayBuffer`` (as :class:`GoalReplayBuffer`, which recomputes relabeled rows'
    termination); multi-task envs use :class:`MultiTaskReplayBuffer`.
    """
    relabel = config.relabel
    env_name = config.env.label
    wants_goals = relabel.strategy != "none"
    if wants_goals and not _is_goal_space(env.observation_space):
        raise UsageError(
            f"relabel.strategy '{relabel.strategy}' needs a goal env (Dict observation with achieved_goal "
            f"and desired_goal); {env_name} has none; valid here: none"
        )
    if not config.env.is_multitask:
        if not wants_goals:
            return None, {}
        if base_attr(env, "compute_reward") is None:
            raise UsageError(
                f"relabel.strategy '{relabel.strategy}' needs the env's compute_reward to recompute "
                f"rewards; {env_name} has none; valid here: none"
            )
        return GoalReplayBuffer, {
            "goal_selection_strategy": relabel.strategy,
            "n_sampled_goal": relabel.n_sampled_goal,
        }

    if base_attr(env, "task_reward") is None:
        raise UsageError(f"{env_name} is not a multi-task env with task rewards (task_reward)")
    if relabel.task != "none":
        if not base_attr(env, "shares_dynamics"):
            raise UsageError(
                f"relabel.task '{relabel.task}': cross-task relabeling is only valid when the tasks share "
                f"dynamics, and {env_name} are separate envs with their own dynamics; valid here: none "
                "(goal relabeling within each task still works)"
            )
        if _is_goal_space(env.observation_space) and base_attr(env, "task_achieved_goal") is None:
            raise UsageError(f"relabel.task: {env_name} cannot compute achieved goals per task")
        if not env.has_attr("task_terminated"):
            # A relabeled row must not keep the termination of the task it was collected for.
            raise UsageError(
                f"relabel.task '{relabel.task}': {env_name} has no task_terminated(task, next_obs), so "
                "termination cannot be recomputed for the new task; valid here: none"
            )
    return MultiTaskReplayBuffer, {
        "n_tasks": len(config.env.task_labels),
        "task_key": TASK_KEY,
        "sampling": relabel.sampling,
        "goal_strategy": relabel.strategy,
        "n_sampled_goal": relabel.n_sampled_goal,
        "task_relabel": relabel.task,
        "task_fraction": relabel.task_fraction,
        # The vectors the env appends (one-hot or language): the buffer reads task indices back
        # from stored observations with them, and writes them when it relabels a row's task.
        "task_vectors": base_attr(env, "task_vectors"),
    }
