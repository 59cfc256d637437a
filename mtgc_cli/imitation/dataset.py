"""Demonstration datasets in Farama's Minari format: where they live, writing them, reading them back.

A dataset is a Minari dataset (``<root>/<dataset id>/data/main_data.hdf5`` + ``metadata.json``), so
``minari.load_dataset(id)`` with ``MINARI_DATASETS_PATH=<root>`` reads it. The root is ``--data-dir``,
else ``$MINARI_DATASETS_PATH``, else ``./data``: never the user's home unless asked, which is
Minari's own default. Datasets are written with ``minari.create_dataset_from_buffers`` and
``EpisodeBuffer`` s built whole; Minari's ``DataCollector`` wrapper would pull in jax.

Each episode keeps the observations of the collecting env as mtgc builds it (for multi-task envs
with the task one-hot under ``task``), and its infos hold, per step, ``task`` (the task index) and
``is_success``. The dataset's metadata holds, under ``mtgc``, the env section of the preset it was
collected with, the task names, the demonstrator and the collection's per-task figures.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from gymnasium import spaces
from gymnasium.envs.registration import EnvSpec

from mtgc_cli.errors import RunFailed, UsageError, excerpt
from mtgc_cli.isolated_write import run_in_child
from mtgc_cli.names import name_problem

DEFAULT_DATA_DIR = "data"
METADATA_KEY = "mtgc"
# Minari's id syntax: (namespace/)(env_name/)dataset_name(-v<version>); mtgc asks for the version.
_ID = re.compile(r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+){0,2}-v\d+$")


def data_root(data_dir: str | Path | None = None) -> Path:
    """The folder that holds datasets: ``data_dir``, else ``$MINARI_DATASETS_PATH``, else ``./data``."""
    chosen = data_dir or os.environ.get("MINARI_DATASETS_PATH") or DEFAULT_DATA_DIR
    return Path(chosen).expanduser().resolve()


def check_dataset_id(dataset_id: str, option: str = "--dataset") -> None:
    # Each part is a folder under the data dir: no '..' or empty part may climb out of it.
    parts_safe = isinstance(dataset_id, str) and all(
        name_problem(part) is None for part in dataset_id.split("/")
    )
    if not parts_safe or not _ID.match(dataset_id):
        raise UsageError(
            f"{option} {excerpt(dataset_id)} is not a Minari dataset id; valid: namespace/name-v<N>, "
            "e.g. mtgc/fetch-pick-and-place-v0"
        )


def dataset_dir(root: Path, dataset_id: str) -> Path:
    check_dataset_id(dataset_id, "dataset id")
    return root / dataset_id


def list_datasets(root: Path) -> list[str]:
    """Ids of the datasets under ``root`` (folders holding Minari's ``data/metadata.json``)."""
    if not root.is_dir():
        return []
    return sorted(str(p.parent.parent.relative_to(root)) for p in root.glob("**/data/metadata.json"))


@contextmanager
def _minari_root(root: Path) -> Iterator[None]:
    """Point Minari at ``root`` for the duration: it reads ``MINARI_DATASETS_PATH`` on every call."""
    before = os.environ.get("MINARI_DATASETS_PATH")
    os.environ["MINARI_DATASETS_PATH"] = str(root)
    try:
        with warnings.catch_warnings():
            # Minari warns about every metadata field left empty (permalink, e-mail, ...).
            warnings.simplefilter("ignore")
            yield
    finally:
        if before is None:
            del os.environ["MINARI_DATASETS_PATH"]
        else:
            os.environ["MINARI_DATASETS_PATH"] = before


@dataclass
class EpisodeRecord:
    """One episode as collected: ``T`` steps, ``T + 1`` observations."""

    observations: dict[str, np.ndarray]  # key -> (T + 1, ...)
    actions: np.ndarray  # (T, A)
    rewards: np.ndarray  # (T,)
    terminations: np.ndarray  # (T,) bool
    truncations: np.ndarray  # (T,) bool
    successes: np.ndarray  # (T,) float, info["is_success"] at each step
    task: int
    seed: int | None = None

    @property
    def success(self) -> float:
        """Success at the episode's end, as evaluation counts it."""
        return float(self.successes[-1])

    @property
    def ret(self) -> float:
        return float(self.rewards.sum())


def write(
    root: Path,
    dataset_id: str,
    episodes: Sequence[EpisodeRecord],
    *,
    observation_space: spaces.Space,
    action_space: spaces.Space,
    env_spec: EnvSpec | None,
    algorithm: str,
    description: str,
    metadata: dict[str, Any],
    overwrite: bool = False,
) -> Path:
    """Write ``episodes`` as the Minari dataset ``dataset_id`` under ``root``; returns its folder."""
    import minari
    from minari.data_collector import EpisodeBuffer

    folder = dataset_dir(root, dataset_id)
    if folder.exists() and not overwrite:
        raise UsageError(
            f"dataset {dataset_id} already exists in {root}; valid: another --dataset, or --overwrite"
        )
    buffers = [
        EpisodeBuffer(
            id=i,
            seed=episode.seed,
            observations=episode.observations,
            actions=episode.actions,
            rewards=episode.rewards,
            terminations=episode.terminations,
            truncations=episode.truncations,
            infos={
                "task": np.full(len(episode.actions), episode.task, dtype=np.int64),
                "is_success": episode.successes.astype(np.float32),
            },
        )
        for i, episode in enumerate(episodes)
    ]
    made_root = not root.exists()
    root.mkdir(parents=True, exist_ok=True)
    # Written whole under a temporary root, then renamed into place: a write that fails (a full
    # disk) leaves no partial dataset to block the next collect or break bc.
    staging = Path(tempfile.mkdtemp(prefix=".mtgc-partial-", dir=root))

    def write_whole() -> None:
        with _minari_root(staging):
            dataset = minari.create_dataset_from_buffers(
                dataset_id=dataset_id,
                buffer=buffers,
                env=env_spec,
                observation_space=observation_space,
                action_space=action_space,
                algorithm_name=algorithm,
                author="mtgc collect",
                description=description,
            )
            dataset.storage.update_metadata({METADATA_KEY: metadata})

    try:
        problem = run_in_child(write_whole)
        if problem is None:
            problem = _whole_problem(staging, dataset_id, len(buffers))
        if problem is not None:
            if made_root:
                shutil.rmtree(staging, ignore_errors=True)
                root.rmdir()
            raise RunFailed(f"writing dataset {dataset_id} in {root} failed: {problem}; nothing was written")
        _move_into_place(staging, root, dataset_id)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder


def _whole_problem(staging: Path, dataset_id: str, n_episodes: int) -> str | None:
    """Why the dataset written under ``staging`` is not whole (None: it reads back, every episode)."""
    import minari

    try:
        with _minari_root(staging):
            found = minari.load_dataset(dataset_id).total_episodes
    except Exception as exc:
        return f"it does not read back ({type(exc).__name__})"
    return None if found == n_episodes else f"it holds {found} of {n_episodes} episodes"


def _move_into_place(staging: Path, root: Path, dataset_id: str) -> None:
    """Rename the whole dataset from ``staging`` to ``root`` (replacing an old one only now)."""
    final = root / dataset_id
    final.parent.mkdir(parents=True, exist_ok=True)
    # Minari's per-namespace file, beside the datasets of that namespace.
    for namespace_file in staging.glob("**/namespace_metadata.json"):
        target = root / namespace_file.relative_to(staging)
        if not target.exists():
            os.replace(namespace_file, target)
    old = final.with_name(f".{final.name}.replaced-{os.getpid()}")
    if final.exists():
        os.replace(final, old)
    os.replace(staging / dataset_id, final)
    shutil.rmtree(old, ignore_errors=True)


@dataclass
class Demonstrations:
    """Every transition of a dataset, flattened over episodes (``N`` rows, episodes contiguous)."""

    observations: dict[str, np.ndarray]  # key -> (N, ...) float32, the observation at each step
    actions: np.ndarray  # (N, A) float32
    tasks: np.ndarray  # (N,) int64 task index
    episode: np.ndarray  # (N,) int64 episode index
    episode_start: np.ndarray  # (N,) first row of the row's episode
    episode_end: np.ndarray  # (N,) one past the last row of the row's episode
    next_achieved_goal: np.ndarray | None  # (N, G) achieved goal after each step; None without goals
    task_names: list[str]
    observation_space: spaces.Space
    action_space: spaces.Space
    metadata: dict[str, Any]

    @property
    def n_episodes(self) -> int:
        return int(self.episode.max()) + 1 if len(self.episode) else 0

    @property
    def episode_tasks(self) -> np.ndarray:
        """(n_episodes,) the task of each episode."""
        return self.tasks[np.unique(self.episode_start)]


def read(root: Path, dataset_id: str) -> Demonstrations:
    """Load a dataset written by :func:`write` (or any Minari dataset with Box/Dict spaces)."""
    import minari

    folder = dataset_dir(root, dataset_id)
    if not (folder / "data" / "metadata.json").is_file():
        found = list_datasets(root)
        valid = ", ".join(found) if found else "none yet; make one with `mtgc collect`"
        raise UsageError(f"no dataset {dataset_id} in {root}; valid: {valid}")
    with _minari_root(root):
        try:
            dataset = minari.load_dataset(dataset_id)
            episodes = list(dataset.iterate_episodes())
        except Exception as exc:
            # h5py's own text ("Unable to synchronously open file (truncated file: eof = ...)")
            # says which C call failed, not what to do.
            raise UsageError(
                f"dataset {dataset_id} in {root} cannot be read: its files are damaged or truncated "
                f"({type(exc).__name__}); valid: collect it again (mtgc collect --overwrite)"
            ) from exc
        metadata = dict(dataset.storage.metadata.get(METADATA_KEY) or {})
        observation_space, action_space = dataset.observation_space, dataset.action_space
    if not episodes:
        raise UsageError(f"dataset {dataset_id} in {root} holds no episodes")
    obs_parts: dict[str, list[np.ndarray]] = {}
    goal_parts: list[np.ndarray] = []
    actions, tasks, episode_index, starts, ends = [], [], [], [], []
    row = 0
    for i, episode in enumerate(episodes):
        steps = len(episode.actions)
        observations = episode.observations if isinstance(episode.observations, dict) else None
        for key, value in (observations or {"observation": episode.observations}).items():
            obs_parts.setdefault(key, []).append(np.asarray(value[:steps], dtype=np.float32))
        if observations is not None and "achieved_goal" in observations:
            goal_parts.append(np.asarray(observations["achieved_goal"][1:], dtype=np.float32))
        infos = episode.infos or {}
        task = int(np.asarray(infos["task"])[0]) if "task" in infos else 0
        actions.append(np.asarray(episode.actions, dtype=np.float32).reshape(steps, -1))
        tasks.append(np.full(steps, task, dtype=np.int64))
        episode_index.append(np.full(steps, i, dtype=np.int64))
        starts.append(np.full(steps, row, dtype=np.int64))
        ends.append(np.full(steps, row + steps, dtype=np.int64))
        row += steps
    is_dict = isinstance(observation_space, spaces.Dict)
    observations_flat = {key: np.concatenate(parts) for key, parts in obs_parts.items()}
    return Demonstrations(
        observations=observations_flat if is_dict else {"observation": observations_flat["observation"]},
        actions=np.concatenate(actions),
        tasks=np.concatenate(tasks),
        episode=np.concatenate(episode_index),
        episode_start=np.concatenate(starts),
        episode_end=np.concatenate(ends),
        next_achieved_goal=np.concatenate(goal_parts) if goal_parts else None,
        task_names=[str(name) for name in metadata.get("task_names") or []],
        observation_space=observation_space,
        action_space=action_space,
        metadata=metadata,
    )
