"""Collecting demonstrations: a demonstrator (scripted expert or trained run) acts in mtgc's env.

The episodes run in the env exactly as training and evaluation build it (``make_env``: success
key, task one-hot, goal distance), one env per task with that task fixed, so per-task counts are
exact. Task ``i``'s env is seeded with ``derive(seed, Stream.TRAIN, i)``: a run that evaluates
draws its goals from other streams, so demonstrations and evaluation never share goals.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from gymnasium import spaces
from gymnasium.envs.registration import EnvSpec
from stable_baselines3.common.vec_env import VecNormalize

from mtgc_cli.config import EnvConfig, RunConfig
from mtgc_cli.envs.factory import make_env
from mtgc_cli.errors import RunFailed, UsageError, excerpt
from mtgc_cli.imitation.dataset import EpisodeRecord
from mtgc_cli.imitation.experts import make_expert
from mtgc_cli.seeding import Stream, derive

Policy = Callable[[dict[str, Any]], np.ndarray]
# With --only-successful a task gives up after this many attempts per wanted episode.
MAX_ATTEMPTS_PER_EPISODE = 10


def task_counts(spec: str | None, task_names: list[str], episodes: int) -> list[int]:
    """Episodes per task: ``episodes`` for each task, or as ``--tasks push=900,lift=100`` says.

    A task listed without a count gets ``episodes``; a task not listed gets none.
    """
    if episodes <= 0:
        raise UsageError(f"--episodes must be a positive number, got {episodes}")
    names = task_names or ["all"]
    if spec is None:
        return [episodes] * len(names)
    if not task_names:
        raise UsageError(
            "--tasks applies to multi-task envs (env.tasks); valid: leave it out, use --episodes"
        )
    counts = [0] * len(names)
    seen: set[str] = set()
    for part in (p.strip() for p in spec.split(",") if p.strip()):
        name, sep, raw = part.partition("=")
        name = name.strip()
        if not re.fullmatch(r"[A-Za-z0-9_./-]+", name) or (sep and not re.fullmatch(r"\s*-?\d+\s*", raw)):
            raise UsageError(
                f"--tasks {excerpt(spec)}: {excerpt(part)} is not NAME or NAME=N; valid: "
                f"name=count,... e.g. {names[0]}=100,{names[-1]} (names: {', '.join(names)})"
            )
        if name not in names:
            close = difflib.get_close_matches(name, names, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise UsageError(f"--tasks: unknown task '{name}'{hint}; valid: {', '.join(names)}")
        if name in seen:
            raise UsageError(f"--tasks names '{name}' twice; valid: each task once, e.g. {names[0]}=100")
        seen.add(name)
        try:
            count = int(raw) if sep else episodes
        except ValueError:
            count = -1
        if count <= 0:
            raise UsageError(
                f"--tasks: '{part}' needs a positive episode count; valid: NAME=N, e.g. {name}=100"
            )
        counts[names.index(name)] = count
    if not seen:
        raise UsageError(f"--tasks is empty; valid: NAME=N,... with names {', '.join(names)}")
    return counts


@dataclass
class TaskResult:
    """What collection gave for one task."""

    name: str
    wanted: int
    kept: list[EpisodeRecord] = field(default_factory=list)
    attempts: int = 0
    successes: int = 0  # over all attempts: the demonstrator's success rate is successes / attempts

    @property
    def mean_return(self) -> float | None:
        return float(np.mean([e.ret for e in self.kept])) if self.kept else None


@dataclass
class EnvFacts:
    """What the dataset records about the env: its spaces and (where it has one) its gym spec."""

    observation_space: Any
    action_space: Any
    spec: EnvSpec | None


def per_step_env(cfg: EnvConfig) -> EnvConfig:
    """The env a scripted expert demonstrates in: the preset's, acting every env step.

    The controllers read the env's own observation layout and act every step, and demonstrations
    are recorded per env step (behaviour cloning presets use no action repeat), so an RL preset's
    action repeat or time feature (fetch-push repeats each action 3 times) is left out here.
    """
    return cfg.model_copy(update={"action_repeat": 1, "time_feature": False})


def probe_env(cfg: EnvConfig) -> tuple[EnvFacts, Any]:
    """Build the env once: its facts, and the scripted expert where there is one (else the error)."""
    probe = make_env(cfg, task=0 if cfg.tasks else None)
    try:
        spec = probe.unwrapped.spec
        if spec is not None:
            # The spec of the env as collected, minus the fixed task of this probe.
            spec = dataclasses.replace(spec, kwargs={k: v for k, v in spec.kwargs.items() if k != "task"})
        facts = EnvFacts(probe.observation_space, probe.action_space, spec)
        try:
            return facts, make_expert(cfg, probe)
        except UsageError as exc:
            return facts, exc
    finally:
        probe.close()


def run_policy(target: Path) -> tuple[RunConfig, Policy, Callable[[], None], Any]:
    """A trained run's deterministic policy on raw observations: its config, the policy, a close
    function and the observation space the policy takes.

    The run's own normalisation statistics turn each raw observation into what the model saw.
    """
    from mtgc_cli.evaluation import load_for_eval

    loaded = load_for_eval(target, 1, 0)
    normalizer = loaded.env if isinstance(loaded.env, VecNormalize) else None

    def act(obs: dict[str, Any]) -> np.ndarray:
        seen = normalizer.normalize_obs(obs) if normalizer is not None else obs
        action, _ = loaded.model.predict(seen, deterministic=True)  # type: ignore[arg-type]
        return np.asarray(action, dtype=np.float32)

    return loaded.saved.config, act, loaded.env.close, loaded.model.observation_space


def run_episode(env: Any, policy: Policy, task: int) -> EpisodeRecord:
    obs, _ = env.reset()
    observations, actions, rewards, terminations, truncations, successes = [obs], [], [], [], [], []
    while True:
        action = policy(obs)
        obs, reward, terminated, truncated, info = env.step(action)
        observations.append(obs)
        actions.append(np.asarray(action, dtype=np.float32))
        rewards.append(float(reward))
        terminations.append(bool(terminated))
        truncations.append(bool(truncated))
        successes.append(float(info["is_success"]))
        if terminated or truncated:
            break
    keys = observations[0].keys() if isinstance(observations[0], dict) else None
    stacked = (
        {key: np.stack([o[key] for o in observations]) for key in keys}
        if keys is not None
        else {"observation": np.stack(observations)}
    )
    return EpisodeRecord(
        observations=stacked,
        actions=np.stack(actions),
        rewards=np.asarray(rewards, dtype=np.float64),
        terminations=np.asarray(terminations),
        truncations=np.asarray(truncations),
        successes=np.asarray(successes, dtype=np.float32),
        task=task,
    )


Report = Callable[[TaskResult], None]


def collect(
    cfg: EnvConfig,
    policy: Policy,
    counts: list[int],
    seed: int,
    only_successful: bool = False,
    report: Report | None = None,
) -> list[TaskResult]:
    """Run ``counts[i]`` episodes of each task ``i`` (kept episodes, with ``only_successful``)."""
    names = cfg.task_labels or ["all"]
    results = [TaskResult(name, wanted) for name, wanted in zip(names, counts, strict=True)]
    for task, result in enumerate(results):
        if result.wanted == 0:
            continue
        env = make_env(cfg, task=task if cfg.tasks else None, seed=derive(seed, Stream.TRAIN, task))
        try:
            limit = result.wanted * (MAX_ATTEMPTS_PER_EPISODE if only_successful else 1)
            while len(result.kept) < result.wanted and result.attempts < limit:
                episode = run_episode(env, policy, task)
                result.attempts += 1
                result.successes += int(episode.success > 0)
                if episode.success > 0 or not only_successful:
                    result.kept.append(episode)
                if report is not None:
                    report(result)
        finally:
            env.close()
    return results


# ---------------------------------------------------------------------------------------------
# The `mtgc collect` command's work: every check first, then the episodes, then one write.


@dataclass
class CollectPlan:
    """A checked collection: nothing has run or been written yet."""

    env: EnvConfig
    env_name: str  # the preset or run it came from
    source: str  # "scripted" or the run's model path
    policy: Policy
    close: Callable[[], None]
    facts: EnvFacts
    counts: list[int]
    seed: int
    only_successful: bool
    root: Path
    dataset_id: str
    overwrite: bool

    @property
    def task_names(self) -> list[str]:
        return self.env.task_labels or ["all"]


def plan(
    preset: str | None,
    policy: str,
    dataset_id: str | None,
    data_dir: Path | None,
    episodes: int,
    tasks: str | None,
    seed: int,
    only_successful: bool,
    overwrite: bool,
    sets: list[str],
) -> CollectPlan:
    """Check every input (env, demonstrator, tasks, dataset id and folder); raise UsageError if bad."""
    from mtgc_cli import presets, runs
    from mtgc_cli.imitation.dataset import check_dataset_id, data_root, dataset_dir

    if seed < 0:
        raise UsageError(f"--seed is {seed}; valid: a non-negative integer, e.g. --seed 0")
    scripted = policy == "scripted"
    if preset is None and scripted:
        raise UsageError(
            "give --preset (the env for the scripted expert) or --policy RUN; valid: one of them"
        )
    config = presets.load(preset, sets=sets) if preset is not None else None
    close: Callable[[], None] = lambda: None  # noqa: E731
    if scripted:
        assert config is not None
        env, env_name, source = config.env, config.name, "scripted"
    else:
        run_config, act, close, takes = run_policy(Path(policy))
        # The run's env, unless a preset names the env to collect in.
        env, env_name = (config.env, config.name) if config is not None else (run_config.env, run_config.name)
        source = str(Path(policy))
    try:
        counts = task_counts(tasks, env.task_labels, episodes)
        bc_settings = config.algo.kwargs if config is not None and config.algo.name == "bc" else {}
        dataset_id = (
            dataset_id
            or bc_settings.get("dataset")
            or f"mtgc/{env_name}-{'scripted' if scripted else 'policy'}-v0"
        )
        check_dataset_id(dataset_id)
        root = data_root(data_dir or bc_settings.get("data_dir"))
        # A folder that cannot be written is bad input, found before any episode is collected.
        runs.check_runs_dir(root, "--data-dir" if data_dir else "the data folder")
        if dataset_dir(root, dataset_id).exists() and not overwrite:
            raise UsageError(
                f"dataset {dataset_id} already exists in {root}; valid: another --dataset, or --overwrite"
            )
        if scripted:
            env = per_step_env(env)
        facts, expert = probe_env(env)
        if not isinstance(facts.action_space, spaces.Box):
            # Datasets are for bc, which fits continuous actions (a DQN's integer actions would
            # reach the env as floats).
            raise UsageError(
                f"collect records continuous (Box) actions for bc; {env.label} has "
                f"{facts.action_space}; valid: a run or preset of an env with continuous actions"
            )
        if scripted:
            if isinstance(expert, UsageError):
                raise expert
            act = expert
        elif facts.observation_space != takes:
            raise UsageError(
                f"--policy {policy} acts on {takes}, the env of --preset {preset} gives "
                f"{facts.observation_space}; valid: a preset with the run's env, or no --preset"
            )
    except BaseException:
        close()
        raise
    return CollectPlan(
        env=env,
        env_name=env_name,
        source=source,
        policy=act,
        close=close,
        facts=facts,
        counts=counts,
        seed=seed,
        only_successful=only_successful,
        root=root,
        dataset_id=dataset_id,
        overwrite=overwrite,
    )


def execute(collect_plan: CollectPlan, report: Report | None = None) -> tuple[list[TaskResult], Path]:
    """Run the plan's episodes and write the dataset; returns the per-task results and its folder."""
    from mtgc_cli.imitation import dataset

    p = collect_plan
    try:
        results = collect(p.env, p.policy, p.counts, p.seed, p.only_successful, report)
    finally:
        p.close()
    episodes = [episode for result in results for episode in result.kept]
    if not episodes:
        raise RunFailed(
            f"the demonstrator succeeded in none of {sum(r.attempts for r in results)} episodes; "
            "nothing written"
        )
    metadata = {
        "env": p.env.model_dump(mode="json"),
        "env_name": p.env_name,
        "task_names": p.env.task_labels,
        "demonstrator": p.source,
        "seed": p.seed,
        "only_successful": p.only_successful,
        "tasks": {
            r.name: {"episodes": len(r.kept), "attempts": r.attempts, "successes": r.successes}
            for r in results
        },
    }
    folder = dataset.write(
        p.root,
        p.dataset_id,
        episodes,
        observation_space=p.facts.observation_space,
        action_space=p.facts.action_space,
        env_spec=p.facts.spec,
        algorithm=p.source if p.source == "scripted" else f"policy of {p.source}",
        description=f"mtgc demonstrations on {p.env.label} ({p.env_name}), demonstrator: {p.source}",
        metadata=metadata,
        overwrite=p.overwrite,
    )
    return results, folder
