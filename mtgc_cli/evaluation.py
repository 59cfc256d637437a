"""Deterministic evaluation episodes -> success, return, final goal distance, per task.

Success is ``info["is_success"]`` at the episode's end: the env's own success key, detected or
named by ``env.success_key``, mapped onto it by the env builder; with ``env.success_at: any`` it is
whether any step of the episode succeeded (Meta-World's measure). Returns come from SB3's
``Monitor``, below any normalisation, so they are in the env's own units.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv, VecEnvWrapper

from mtgc_cli.algos import algo_class
from mtgc_cli.config import RunConfig
from mtgc_cli.envs.factory import make_vec_env, normalize
from mtgc_cli.envs.task_encoding import Rewording, TaskEncoding, rewordings
from mtgc_cli.envs.wrappers import MissingSuccessKey
from mtgc_cli.errors import UsageError
from mtgc_cli.portable import clipped_policy_kwargs
from mtgc_cli.runs import SavedRun, open_run, read_task_encoding
from mtgc_cli.seeding import Stream

if TYPE_CHECKING:
    from mtgc_cli.video import EvalVideos

MAX_EVAL_SLOTS = 10


@dataclass(frozen=True)
class Episode:
    task: int
    success: float
    ret: float
    length: int
    distance: float | None
    slot: int = 0  # the eval env slot that ran it


@dataclass(frozen=True)
class Row:
    """Results over a set of episodes (one task, or the mean over tasks)."""

    name: str
    episodes: int
    success: float
    success_low: float
    success_high: float
    mean_return: float
    mean_distance: float | None
    mean_length: float


@dataclass(frozen=True)
class EvalResult:
    rows: list[Row]  # one per task (a single row for a single-task env)
    overall: Row  # the mean over tasks (the only row for a single-task env)

    @property
    def success(self) -> float:
        return self.overall.success

    def to_dict(self) -> dict[str, Any]:
        return {"overall": asdict(self.overall), "tasks": [asdict(row) for row in self.rows]}


def wilson_interval(successes: float, n: int, z: float = 1.959964) -> tuple[float, float]:
    """95% Wilson score interval for a success rate; sound at 0 and 1, unlike the normal one."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def slot_plan(n_tasks: int, episodes_per_task: int) -> tuple[list[int | None], list[int]]:
    """Eval slots (fixed task per slot for multi-task envs) and how many episodes each runs.

    Several slots step in one batch so the policy runs once per step for all of them; each slot
    counts only its first episodes so the result does not favour short episodes.
    """
    if n_tasks <= 1:
        slots = min(episodes_per_task, MAX_EVAL_SLOTS)
        return [None] * slots, [(episodes_per_task + i) // slots for i in range(slots)]
    per_task = max(1, min(episodes_per_task, MAX_EVAL_SLOTS // n_tasks))
    tasks: list[int | None] = []
    counts: list[int] = []
    for task in range(n_tasks):
        for i in range(per_task):
            tasks.append(task)
            counts.append((episodes_per_task + i) // per_task)
    return tasks, counts


def make_eval_env(
    config: RunConfig,
    episodes_per_task: int,
    seed: int,
    stream: Stream = Stream.EVAL,
    stats: Path | None = None,
    encoding: TaskEncoding | None = None,
    record: bool = False,
) -> tuple[VecEnv, list[int]]:
    """Eval envs seeded from ``(seed, stream)``, with the run's own task set (``train.seed``).

    ``encoding``: the task vectors to show the policy (default: the preset's). ``record``: built
    to render frames, for videos (``mtgc_cli.video``).
    """
    n_tasks = len(config.env.task_labels)
    slot_tasks, counts = slot_plan(n_tasks, episodes_per_task)
    env = make_vec_env(
        config.env.model_copy(update={"vec_env": "dummy"}),
        seed=seed,
        stream=stream,
        task_set_seed=config.train.seed,
        slot_tasks=slot_tasks,
        encoding=encoding,
        record=record,
    )
    return normalize(env, config.env, training=False, stats=stats), counts


def check_success_signal(env: VecEnv, config: RunConfig) -> None:
    """Step one eval env once so that an env without a success signal fails at set-up.

    A missing key would otherwise make every episode count as a failure: a silent 0.00.
    The eval envs are reset at the start of every evaluation, so this step changes nothing.
    """
    inner = env.unwrapped if isinstance(env, VecEnvWrapper) else env
    assert isinstance(inner, DummyVecEnv)
    probe = inner.envs[0]
    probe.reset()
    try:
        probe.step(probe.action_space.sample())
    except MissingSuccessKey as exc:
        keys = ", ".join(exc.keys) or "none"
        if config.env.success_key is None:
            problem = f"{config.env.label} reports no success key ({' or '.join(exc.wanted)})"
        else:
            problem = f"env.success_key '{config.env.success_key}' is not in {config.env.label}'s step info"
        raise UsageError(f"{problem}; set env.success_key to one of the keys it reports: {keys}") from None


def run_episodes(
    model: BaseAlgorithm, env: VecEnv, counts: list[int], deterministic: bool = True
) -> list[Episode]:
    targets = np.asarray(counts)
    done_counts = np.zeros_like(targets)
    episodes: list[Episode] = []
    obs = env.reset()
    while (done_counts < targets).any():
        actions, _ = model.predict(obs, deterministic=deterministic)  # type: ignore[arg-type]
        obs, _, dones, infos = env.step(actions)
        for slot in np.flatnonzero(dones):
            if done_counts[slot] >= targets[slot]:
                continue
            info = infos[slot]
            episodes.append(
                Episode(
                    task=int(info.get("task", 0)),
                    success=float(info["is_success"]),
                    ret=float(info["episode"]["r"]),
                    length=int(info["episode"]["l"]),
                    distance=info.get("goal_distance"),
                    slot=int(slot),
                )
            )
            done_counts[slot] += 1
    return episodes


def summarise(name: str, episodes: list[Episode]) -> Row:
    n = len(episodes)
    successes = sum(e.success for e in episodes)
    low, high = wilson_interval(successes, n)
    distances = [e.distance for e in episodes if e.distance is not None]
    return Row(
        name=name,
        episodes=n,
        success=successes / n if n else 0.0,
        success_low=low,
        success_high=high,
        mean_return=float(np.mean([e.ret for e in episodes])) if n else 0.0,
        mean_distance=float(np.mean(distances)) if distances else None,
        mean_length=float(np.mean([e.length for e in episodes])) if n else 0.0,
    )


def evaluate(
    model: BaseAlgorithm,
    env: VecEnv,
    counts: list[int],
    task_names: list[str],
    videos: EvalVideos | None = None,
) -> EvalResult:
    """Run and score the episodes of ``counts``; ``videos`` records the first ones of each task.

    Recording changes no episode: frames are rendered from the state each step reached.
    """
    if videos is None:
        episodes = run_episodes(model, env, counts)
    else:
        videos.start(env, counts)
        episodes = []
        try:
            episodes = run_episodes(model, env, counts)
        finally:
            videos.finish([(e.slot, e.success) for e in episodes])
    if not task_names:
        row = summarise("all", episodes)
        return EvalResult(rows=[row], overall=row)
    rows = [summarise(name, [e for e in episodes if e.task == i]) for i, name in enumerate(task_names)]
    # Every task runs the same number of episodes, so the pooled rate is the mean over tasks and
    # its Wilson interval the interval of that mean.
    pooled = summarise("mean over tasks", episodes)
    overall = Row(
        **{**asdict(pooled), "success": float(np.mean([row.success for row in rows]))},
    )
    return EvalResult(rows=rows, overall=overall)


@dataclass
class LoadedModel:
    saved: SavedRun
    model: BaseAlgorithm
    env: VecEnv
    counts: list[int]
    records: bool = False  # the eval envs render frames for videos
    video_problem: str | None = None  # why they do not, when videos were asked for
    rewordings: list[Rewording] = field(default_factory=list)
    """The tasks evaluated with a new description (``task_descriptions``)."""


def load_for_eval(
    target: Path,
    episodes_per_task: int,
    seed: int,
    task_descriptions: Mapping[str, str] | None = None,
    video: bool = False,
) -> LoadedModel:
    """A saved model with its config, normalisation statistics and task vectors, on fresh eval envs.

    ``task_descriptions`` (task -> new wording) evaluates a language run's tasks under new
    descriptions: each task keeps its own reward and goals, and its observations carry the new
    wording's embedding instead of the trained one (a zero-shot paraphrase test).
    ``video``: the eval envs render frames, unless the env cannot render (``video_problem`` says
    why, and the evaluation goes on without videos).

    Raises:
        UsageError: a bad run folder or model; ``task_descriptions`` for a run that is not a
            language run, or naming an unknown task, or an empty description.
    """
    saved = open_run(target)
    config = saved.config
    video_problem = None
    if video:
        from mtgc_cli.envs.recording import render_problem

        video_problem = render_problem(config.env)
    records = video and video_problem is None
    encoding = read_task_encoding(saved.run_dir, config)
    changed: list[Rewording] = []
    if task_descriptions:
        if encoding is None:
            kind = config.env.task_encoding if config.env.is_multitask else "no task id (a single-task env)"
            raise UsageError(
                f"--task-description needs a run trained with env.task_encoding language; {saved.run_dir} "
                f"has {kind}; valid: a language run (mtgc train ... --set env.task_encoding=language)"
            )
        reworded = encoding.reworded(task_descriptions)
        changed = rewordings(encoding, reworded)
        encoding = reworded
    env, counts = make_eval_env(
        config,
        episodes_per_task,
        seed,
        stream=Stream.EVAL_COMMAND,
        stats=saved.stats if config.env.normalize else None,
        encoding=encoding,
        record=records,
    )
    try:
        # HER-style buffers need the env at load time; a 1-slot buffer, since eval never trains.
        # model.zip names SB3's classes only (portable.py); mtgc's input clip goes back in here.
        own_extractor = "features_extractor_class" in (config.algo.kwargs.get("policy_kwargs") or {})
        clip = config.env.normalize_clip if config.env.normalize and not own_extractor else None
        model = algo_class(config.algo.name).load(
            saved.model,
            env=env,
            device="cpu",
            buffer_size=1,
            custom_objects=clipped_policy_kwargs(saved.model, clip),
        )
    except Exception as exc:
        env.close()
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UsageError(
            f"{saved.model}: not a loadable {config.algo.name} model (corrupt or wrong file): {detail}"
        ) from exc
    return LoadedModel(
        saved=saved,
        model=model,
        env=env,
        counts=counts,
        records=records,
        video_problem=video_problem,
        rewordings=changed,
    )
