"""Builds vectorised envs from a preset's ``env`` section.

One function turns an :class:`~mtgc_cli.presets.EnvConfig` into a SB3 ``VecEnv``: single-task goal
envs, multi-task envs (named tasks of one scene, or separate envs switched per episode) with the
task's vector (one-hot or language, ``task_encoding.py``), success reporting, episode statistics
and optional observation normalisation.
"""

from __future__ import annotations

import difflib
import functools
import inspect
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.envs.registration import load_env_creator
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecEnv, VecNormalize

from mtgc_cli.config import EnvConfig
from mtgc_cli.envs import task_encoding
from mtgc_cli.envs.registry import register_envs, split_module
from mtgc_cli.envs.task_encoding import TaskEncoding
from mtgc_cli.envs.wrappers import (
    ActionRepeat,
    DictObservation,
    GoalDistanceInfo,
    SuccessInfo,
    TaskObservation,
)
from mtgc_cli.errors import MtgcError, UsageError
from mtgc_cli.seeding import Stream, derive, slot_seeds

TASK_KEY = "task"


def check_env_id(env_id: str) -> None:
    """Raise :class:`UsageError` unless ``env_id`` (or ``module:EnvId``) names a registered env."""
    register_envs(env_id)
    module, name = split_module(env_id)
    if name not in gym.registry:
        ids = list(gym.registry)
        close = difflib.get_close_matches(name, ids, n=1, cutoff=0.6)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        if module is not None:
            raise UsageError(
                f"unknown env id '{env_id}': importing '{module}' did not register '{name}'{hint}; "
                f"valid: an id that {module} registers with gymnasium.register"
            )
        raise UsageError(
            f"unknown env id '{env_id}'{hint}; valid: registered gymnasium ids such as FetchReach-v4, "
            "FetchPush-v4, mtgc/BitFlipping-v0, mtgc/PointTasks-v0, or module:EnvId for an env that your "
            'own module registers (`python -c "import gymnasium; gymnasium.pprint_registry()"` lists ids)'
        )


def _constructor_parameters(env_id: str) -> list[inspect.Parameter]:
    """The parameters of ``env_id``'s entry point (registering its family first).

    Raises:
        UsageError: an unknown id.
        TypeError, ValueError, ImportError: an entry point that cannot be loaded or inspected.
    """
    check_env_id(env_id)
    entry = gym.spec(env_id).entry_point
    creator = load_env_creator(entry) if isinstance(entry, str) else entry
    return list(inspect.signature(creator).parameters.values())


def _reward_kwargs(env_id: str, reward_type: str | None) -> dict[str, str]:
    """``reward_type`` is passed to envs whose constructor takes it (Fetch, mtgc's own)."""
    if reward_type is None:
        return {}
    if any(param.name == "reward_type" for param in _constructor_parameters(env_id)):
        return {"reward_type": reward_type}
    raise UsageError(
        f"env.reward_type: {env_id} has no reward_type argument, so mtgc cannot switch it to "
        f"'{reward_type}'; leave reward_type unset to use the env's own reward"
    )


def _make(env_id: str, kwargs: dict[str, Any]) -> gym.Env:
    check_env_id(env_id)
    with warnings.catch_warnings():
        # gymnasium's passive checker warns at make time and on every step of some envs (goal
        # envs' and Meta-World's float64 boxes); not the user's concern, and mtgc's tests check
        # its own envs.
        warnings.simplefilter("ignore")
        try:
            return gym.make(env_id, disable_env_checker=True, **kwargs)
        except MtgcError:
            raise
        except Exception as exc:
            # Whatever the env's constructor raises on a bad value (TypeError, ValueError, an
            # assert) is bad input here, at set-up: one line naming the env, its kwargs and the
            # arguments it takes, before any run folder exists.
            detail = str(exc).splitlines()[0] if str(exc) else ""
            entry = gym.spec(env_id).entry_point
            try:
                params = _constructor_parameters(env_id)
                takes = ", ".join(f"**{q.name}" if q.kind == q.VAR_KEYWORD else q.name for q in params)
            except Exception:
                takes = f"see {entry}"
            raise UsageError(
                f"{env_id} could not be built with env.kwargs {kwargs}: {type(exc).__name__}: {detail}; "
                f"valid: the keyword arguments of {entry}: {takes}"
            ) from exc


def _base_env(cfg: EnvConfig, task: int | None) -> gym.Env:
    """The env before mtgc's wrappers: one env, or a multi-task env with a fixed or sampled task."""
    if cfg.tasks is None:
        assert cfg.id is not None
        return _make(cfg.id, {**cfg.kwargs, **_reward_kwargs(cfg.id, cfg.reward_type)})
    if cfg.tasks[0].id is None:
        # Named tasks of one scene: the env samples its task at each reset unless one is fixed.
        assert cfg.id is not None
        kwargs = {
            **cfg.kwargs,
            **_reward_kwargs(cfg.id, cfg.reward_type),
            "tasks": cfg.task_labels,
            "task": task,
        }
        try:
            env = _make(cfg.id, kwargs)
        except UsageError as exc:
            # Most likely a name the env does not have: built with all its tasks, the env says
            # which names it has. A failure here is a problem with env.kwargs themselves.
            every = _make(cfg.id, {**cfg.kwargs, **_reward_kwargs(cfg.id, cfg.reward_type)})
            names = [str(n) for n in getattr(every.unwrapped, "task_names", None) or []]
            every.close()
            if not names:
                raise UsageError(
                    f"env.tasks: {cfg.id} is not a multi-task env (no task_names); valid: give each "
                    "task an env 'id' of its own, e.g. tasks: [{id: FetchPush-v4}, {id: FetchSlide-v4}]"
                ) from exc
            unknown = [label for label in cfg.task_labels if label not in names]
            if unknown:
                raise UsageError(
                    f"env.tasks: {cfg.id} has no task {', '.join(map(repr, unknown))}; "
                    f"valid: {', '.join(names)}"
                ) from exc
            raise
        if not hasattr(env.unwrapped, "task_names"):
            raise UsageError(f"env.tasks: {cfg.id} is not a multi-task env; give each task an 'id' instead")
        return env
    from mtgc_cli.envs.task_switch import TaskSwitchEnv

    env_fns: list[Callable[[], gym.Env]] = []
    for spec in cfg.tasks:
        assert spec.id is not None
        kwargs = {**cfg.kwargs, **spec.kwargs, **_reward_kwargs(spec.id, cfg.reward_type)}
        env_fns.append(functools.partial(_make, spec.id, kwargs))
    try:
        return TaskSwitchEnv(env_fns, task_names=cfg.task_labels, task=task)
    except ValueError as exc:
        raise UsageError(f"env.tasks: {exc}") from exc


def _takes_seed(env_id: str) -> bool:
    """Whether ``env_id``'s constructor takes a ``seed`` (Meta-World: it fixes the task variations).

    The family is registered first: Meta-World registers its ids only on import, so asking the
    registry before that found nothing and a fresh process built Meta-World unseeded.
    """
    try:
        return any(param.name == "seed" for param in _constructor_parameters(env_id))
    except Exception:
        # An id that cannot be inspected is reported by the env builder itself.
        return False


def with_task_set_seed(cfg: EnvConfig, task_set_seed: int) -> EnvConfig:
    """``cfg`` with ``seed`` in the kwargs of every env whose constructor takes one.

    Meta-World draws each task's set of variations (object and goal positions) when the env is
    built; without a seed it uses numpy's global generator, so two builds with the same run seed
    saw different targets and training and evaluation envs saw different sets. One seed derived
    from the run's seed, given to every training and evaluation env, fixes one set for the run.
    A seed the preset sets itself is kept.
    """
    if cfg.tasks is not None and cfg.tasks[0].id is not None:
        tasks = [
            task.model_copy(update={"kwargs": {"seed": task_set_seed, **task.kwargs}})
            if task.id is not None and "seed" not in cfg.kwargs and _takes_seed(task.id)
            else task
            for task in cfg.tasks
        ]
        return cfg.model_copy(update={"tasks": tasks})
    if cfg.id is not None and "seed" not in cfg.kwargs and _takes_seed(cfg.id):
        return cfg.model_copy(update={"kwargs": {"seed": task_set_seed, **cfg.kwargs}})
    return cfg


def task_encoding_for(cfg: EnvConfig, env: gym.Env | None = None) -> TaskEncoding:
    """The task encoding of a multi-task env section: one-hot, or its tasks' descriptions embedded.

    A description is the preset's (``env.task_descriptions``), else the env's own for its named
    tasks (``task_descriptions`` of PointTasks and FetchTasks); ``env`` is a built env of ``cfg``
    to read them from (one is built when it is needed and not given).

    Raises:
        UsageError: a task without a description, or any problem :func:`task_encoding.language`
            reports (empty or repeated descriptions, the model not installed).
    """
    names = cfg.task_labels
    if cfg.task_encoding == "onehot":
        return task_encoding.one_hot(names)
    own: dict[str, str] = {}
    if cfg.tasks is not None and cfg.tasks[0].id is None and set(cfg.task_descriptions) != set(names):
        probe = env if env is not None else _base_env(cfg, 0)
        base = probe.unwrapped
        own = dict(zip(getattr(base, "task_names", ()), getattr(base, "task_descriptions", ()), strict=False))
        if env is None:
            probe.close()
    given = {task.label: task.description for task in cfg.tasks or [] if task.description is not None}
    descriptions = {**own, **given, **cfg.task_descriptions}
    missing = [name for name in names if name not in descriptions]
    if missing:
        raise UsageError(
            f"env.task_encoding 'language': no description for task {', '.join(map(repr, missing))}; "
            f"valid: one per task in env.task_descriptions, e.g. {{{missing[0]}: 'what the task asks'}}"
        )
    return task_encoding.language(names, [descriptions[name] for name in names])


def is_goal_env(env: gym.Env) -> bool:
    """A goal-conditioned env: Dict observations with achieved and desired goals, and a
    ``compute_reward`` that relabeling can call."""
    space = env.observation_space
    return (
        isinstance(space, spaces.Dict)
        and {"achieved_goal", "desired_goal"} <= set(space.spaces)
        and callable(getattr(env.unwrapped, "compute_reward", None))
    )


def repeat_reward(cfg: EnvConfig, env: gym.Env) -> str:
    """How a decision's reward is made from its env steps' under ``env.action_repeat``.

    ``last`` for a goal-conditioned env whose reward is not set dense: the sparse reward of the
    state reached, which is what hindsight relabeling recomputes from the stored observation.
    ``sum`` everywhere else, so that a dense reward loses nothing. (A dense goal reward with
    relabeling is refused when the preset loads: relabeling could recompute only the last step's.)
    """
    return "last" if is_goal_env(env) and cfg.reward_type != "dense" else "sum"


def make_env(
    cfg: EnvConfig,
    task: int | None = None,
    seed: int | None = None,
    encoding: TaskEncoding | None = None,
    record: bool = False,
) -> gym.Env:
    """One env with mtgc's wrappers (task vector, success key, goal distance, episode stats).

    ``seed`` seeds the env's own generator (goals, initial states) and its action space once, at
    construction; later resets continue that stream, so every episode differs and the sequence is
    reproducible. ``encoding`` is the task encoding of a multi-task env (default: the preset's,
    :func:`task_encoding_for`). ``record`` builds it with ``render_mode="rgb_array"`` and a
    :class:`~mtgc_cli.envs.recording.FrameRecorder` inside the action repeat (videos).
    """
    register_envs(*(i for i in [cfg.id, *(t.id for t in cfg.tasks or [])] if i))
    if record:
        from mtgc_cli.envs.recording import RENDER_MODE, FrameRecorder

        # Through env.kwargs, so that every env the section builds (each task's too) renders.
        env = FrameRecorder(
            _base_env(cfg.model_copy(update={"kwargs": {**cfg.kwargs, "render_mode": RENDER_MODE}}), task)
        )
    else:
        env = _base_env(cfg, task)
    # Inside the action repeat, so episode lengths and returns count env steps, as every other
    # count does (a 50-step Fetch episode is 50 long at action_repeat 3, not 17 decisions).
    env = Monitor(env, info_keywords=())
    # Inside the action repeat too, so that a success inside a decision is seen (success_at: any).
    env = SuccessInfo(env, key=cfg.success_key, latch=cfg.success_at == "any")
    if cfg.action_repeat > 1:
        env = ActionRepeat(env, cfg.action_repeat, reward=repeat_reward(cfg, env))
    if cfg.tasks is not None:
        if isinstance(env.observation_space, spaces.Box):
            # The multi-task replay buffer keeps the task id under its own Dict key.
            env = DictObservation(env)
        if encoding is None:
            encoding = task_encoding_for(cfg, env)
        env = TaskObservation(env, encoding.vectors, key=TASK_KEY, bounds=encoding.bounds)
    env = GoalDistanceInfo(env)
    if cfg.time_feature:
        from sb3_contrib.common.wrappers import TimeFeatureWrapper

        # Outside the action repeat, so the feature counts decisions, which is what the policy sees.
        limit = env.spec.max_episode_steps if env.spec is not None else None
        if limit is None:
            raise UsageError(f"env.time_feature: {cfg.label} has no episode step limit to count down from")
        env = TimeFeatureWrapper(env, max_steps=-(-limit // cfg.action_repeat))
    if seed is not None:
        env.reset(seed=seed)
        env.action_space.seed(seed)
    return env


def make_vec_env(
    cfg: EnvConfig,
    *,
    seed: int,
    stream: Stream = Stream.TRAIN,
    task_set_seed: int | None = None,
    slot_tasks: Sequence[int | None] | None = None,
    encoding: TaskEncoding | None = None,
    record: bool = False,
) -> VecEnv:
    """``cfg.n_envs`` envs (or one per entry of ``slot_tasks``, each with that task fixed).

    Slot i is seeded with ``derive(seed, stream, i)``: training, evaluation and `mtgc eval` envs,
    and runs with different seeds, draw independent goals. ``task_set_seed`` (default ``seed``) is
    the run's seed, which fixes envs' task variations the same way for training and evaluation.
    ``record``: every slot can render frames for videos (see :func:`make_env`).
    ``encoding``: the task vectors of a multi-task env (default: the preset's, resolved here once
    so that worker processes do not each load the sentence encoder).
    """
    if cfg.tasks is not None and encoding is None:
        encoding = task_encoding_for(cfg)
    if slot_tasks is None:
        if cfg.tasks is not None and cfg.task_sampling == "per-slot":
            slot_tasks = [i % len(cfg.tasks) for i in range(cfg.n_envs)]
        else:
            slot_tasks = [None] * cfg.n_envs
    cfg = with_task_set_seed(cfg, derive(seed if task_set_seed is None else task_set_seed, Stream.TASK_SET))
    seeds = slot_seeds(seed, stream, len(slot_tasks))
    fns = [
        functools.partial(make_env, cfg, task, seed=slot_seed, encoding=encoding, record=record)
        for task, slot_seed in zip(slot_tasks, seeds, strict=True)
    ]
    vec: VecEnv
    if cfg.vec_env == "subproc" and len(fns) > 1:
        # Build one env here first so bad ids and kwargs fail with a clear message in this
        # process rather than as a worker's traceback.
        make_env(cfg, slot_tasks[0], encoding=encoding).close()
        vec = SubprocVecEnv(fns, start_method="forkserver")
    else:
        vec = DummyVecEnv(fns)
    return vec


def normalize(vec: VecEnv, cfg: EnvConfig, *, training: bool, stats: Path | None = None) -> VecEnv:
    """Wrap in ``VecNormalize`` (observations only) when the preset asks; load saved statistics."""
    if not cfg.normalize:
        return vec
    if stats is not None:
        if not stats.is_file():
            raise UsageError(f"normalisation statistics '{stats}' are missing; the run folder is incomplete")
        try:
            loaded = VecNormalize.load(str(stats), vec)
        except Exception as exc:
            raise UsageError(f"normalisation statistics '{stats}' are unreadable: {exc}") from exc
        loaded.training = training
        loaded.norm_reward = False
        return loaded
    keys = None
    if isinstance(vec.observation_space, spaces.Dict):
        # The task vector (a one-hot or a unit-norm embedding) and binary observations are
        # already on a unit scale; a reworded task's vector must reach the policy unchanged.
        keys = [
            key
            for key, space in vec.observation_space.spaces.items()
            if key != TASK_KEY and isinstance(space, spaces.Box)
        ]
    return VecNormalize(
        vec,
        training=training,
        norm_obs=True,
        norm_reward=False,
        # No clipping here: SB3 stores unnormalize(normalize(obs)) for episode ends, which must be
        # the raw observation; the policy clips its normalised input instead (mtgc_cli.features).
        clip_obs=np.inf,
        norm_obs_keys=keys,
    )


def base_attr(vec: VecEnv, name: str) -> Any:
    """An attribute of the first sub-env, looked up through its wrappers (None when absent)."""
    try:
        return vec.get_attr(name, indices=[0])[0]
    except AttributeError:
        return None
