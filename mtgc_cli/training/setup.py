"""Setting a run up: envs, replay buffer and model, built and checked before its folder exists."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.vec_env import VecEnv

from mtgc_cli.algos import make_model
from mtgc_cli.config import AlgoConfig, RunConfig
from mtgc_cli.envs.factory import make_vec_env, normalize, task_encoding_for
from mtgc_cli.envs.recording import prefer_offscreen_gl
from mtgc_cli.envs.task_encoding import TaskEncoding
from mtgc_cli.evaluation import check_success_signal, make_eval_env
from mtgc_cli.features import clipped_extractor
from mtgc_cli.notices import warn
from mtgc_cli.relabel import replay_setup
from mtgc_cli.seeding import Stream


@dataclass
class Setup:
    """Everything a run needs, built and checked before its folder is created."""

    config: RunConfig
    env: VecEnv
    eval_env: VecEnv
    eval_counts: list[int]
    model: BaseAlgorithm
    records: bool = False  # the eval envs render frames (train.video_every)
    encoding: TaskEncoding | None = None
    """The task vectors of a multi-task run (saved in the run folder for a language encoding)."""

    def close(self) -> None:
        self.env.close()
        self.eval_env.close()


def _algo_with_input_clip(config: RunConfig, env: VecEnv) -> AlgoConfig:
    """The algo section, with the policy clipping its normalised input when observations are normalised."""
    algo = config.algo
    if not config.env.normalize:
        return algo
    policy_kwargs = dict(algo.kwargs.get("policy_kwargs") or {})
    if "features_extractor_class" in policy_kwargs:
        return algo  # the preset chose its own extractor
    policy_kwargs["features_extractor_class"] = clipped_extractor(env.observation_space)
    policy_kwargs["features_extractor_kwargs"] = {
        **policy_kwargs.get("features_extractor_kwargs", {}),
        "clip": config.env.normalize_clip,
    }
    return AlgoConfig.model_validate({**algo.model_dump(), "policy_kwargs": policy_kwargs})


# SB3 settings counted in its own steps, which are decisions under env.action_repeat (one SB3 step
# is `action_repeat` env steps). mtgc makes SB3's clock count env steps (RunCallback sets
# num_timesteps), so learning_starts, exploration_fraction and every progress schedule are in env
# steps as they are; these two count env.step calls themselves and are converted to decisions.
DECISION_COUNTS = ("train_freq", "target_update_interval")


def _algo_in_decisions(algo: AlgoConfig, repeat: int) -> AlgoConfig:
    """The algo section with its env-step counts of :data:`DECISION_COUNTS` in decisions (at least 1)."""
    if repeat == 1:
        return algo
    update: dict[str, Any] = {}
    freq = algo.kwargs.get("train_freq")
    if isinstance(freq, int):
        update["train_freq"] = max(1, round(freq / repeat))
    elif isinstance(freq, (list, tuple)) and freq[1] == "step":
        update["train_freq"] = [max(1, round(freq[0] / repeat)), "step"]
    interval = algo.kwargs.get("target_update_interval")
    if isinstance(interval, int):
        update["target_update_interval"] = max(1, round(interval / repeat))
    if not update:
        return algo
    return AlgoConfig.model_validate({**algo.model_dump(), **update})


def prepare(config: RunConfig, encoding: TaskEncoding | None = None) -> Setup:
    """Build envs, replay buffer and model; any bad input raises before anything is written.

    ``encoding``: the task vectors a resumed run was trained with (default: the preset's, embedded
    once here for a language encoding and shared by the training and evaluation envs).
    """
    seed = config.train.seed
    records = False
    if config.train.video_every is not None:
        from mtgc_cli.envs.recording import render_problem

        prefer_offscreen_gl()
        problem = render_problem(config.env)
        if problem is not None:
            warn(f"{problem}; training goes on without videos (train.video_every)")
        records = problem is None
    if config.env.is_multitask and encoding is None:
        encoding = task_encoding_for(config.env)
    env = normalize(
        make_vec_env(config.env, seed=seed, stream=Stream.TRAIN, encoding=encoding), config.env, training=True
    )
    try:
        buffer_class, buffer_kwargs = replay_setup(config, env)
        model = make_model(
            _algo_in_decisions(_algo_with_input_clip(config, env), config.env.action_repeat),
            env,
            seed=seed,
            replay_buffer_class=buffer_class,
            replay_buffer_kwargs=buffer_kwargs,
            tensorboard_log=None,
        )
        # SB3 seeds the training envs with seed + slot when the model is built (set_random_seed),
        # which overlaps between run seeds (seed 0's slot 1 is seed 1's slot 0). make_vec_env has
        # already seeded every slot from its own SeedSequence stream; drop SB3's pending seeds.
        env.unwrapped._reset_seeds()  # type: ignore[attr-defined]
        # Evaluation runs on separate envs with their own seeds, so it never disturbs training.
        eval_env, counts = make_eval_env(
            config,
            config.train.eval_episodes,
            seed=seed,
            stream=Stream.EVAL,
            encoding=encoding,
            record=records,
        )
        try:
            check_success_signal(eval_env, config)
        except BaseException:
            eval_env.close()
            raise
    except BaseException:
        env.close()
        raise
    return Setup(
        config=config,
        env=env,
        eval_env=eval_env,
        eval_counts=counts,
        model=model,
        records=records,
        encoding=encoding,
    )
