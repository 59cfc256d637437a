"""The run folder: what a run writes, and how ``eval`` reads it back.

::

    runs/<preset>/<UTC time>-s<seed>/
        config.yaml          the fully resolved RunConfig (train.timesteps: the latest total)
        command.txt          the command line that started the run, then each resume's
        versions.json        python, mtgc, sb3, gymnasium, mujoco, torch
        task_encoding.json   language runs: each task's description and its embedding, as trained
        model.zip            the last model        vecnormalize.pkl       its statistics
        best_model.zip       the best model, chosen on re-evaluations (best_vecnormalize.pkl)
        checkpoints/step_<N>/  whole checkpoints at N env steps (mtgc_cli/checkpoint/): model.zip
                             (+ vecnormalize.pkl), replay_buffer.pkl, state.pkl, the best model
                             then, run_config.yaml, manifest.json
        progress.csv         one row per evaluation (bc_loss.csv: behaviour cloning's losses)
        videos/              MP4s of eval episodes (mtgc_cli/video.py): step_<N>/ from train.video_every,
                             eval-<model>-s<seed>/ from `mtgc eval --video`
        tb/                  TensorBoard events (one file per start or resume)
        summary.json         final and best eval success, steps, seconds, the last checkpoint
"""

from __future__ import annotations

import csv
import json
import os
import platform
import re
import shlex
import shutil
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml

from mtgc_cli import __version__, safe_yaml
from mtgc_cli.envs.task_encoding import TaskEncoding
from mtgc_cli.errors import UsageError
from mtgc_cli.presets import RunConfig, validate

CONFIG = "config.yaml"
MODEL = "model.zip"
BEST_MODEL = "best_model.zip"
STATS = "vecnormalize.pkl"
BEST_STATS = "best_vecnormalize.pkl"
PROGRESS = "progress.csv"
LOSSES = "bc_loss.csv"  # behaviour cloning
SUMMARY = "summary.json"
CHECKPOINTS = "checkpoints"
VIDEOS = "videos"
TASK_ENCODING = "task_encoding.json"

# wall_seconds includes evaluation; eval_seconds is how much of it went to evaluating, so training
# time is their difference. gradient_steps counts the learner's updates (SB3's n_updates).
PROGRESS_FIELDS = [
    "env_steps",
    "wall_seconds",
    "eval_success",
    "eval_return",
    "train_success",
    "fps",
    "gradient_steps",
    "eval_seconds",
]


def versions() -> dict[str, str]:
    found = {"python": platform.python_version(), "mtgc": __version__}
    for package in ("stable-baselines3", "sb3-contrib", "gymnasium", "gymnasium-robotics", "mujoco", "torch"):
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = "not installed"
    return found


def check_runs_dir(root: Path, option: str = "--runs-dir") -> None:
    """Raise :class:`UsageError` unless folders can be created under ``root``; leaves nothing behind.

    Checked when the command line is read, so an unusable ``--runs-dir`` is bad input (exit 2)
    reported before any env is built, rather than an error after the run has started.
    """
    existing = root
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    valid = "valid: a folder you can write to, or one that can be created"
    if not existing.is_dir():
        raise UsageError(f"{option} {root}: {existing} is not a folder; {valid}")
    try:
        # Permission bits do not tell (root ignores them; /proc refuses everyone): try it.
        probe = tempfile.mkdtemp(prefix=".mtgc-write-check-", dir=existing)
    except OSError as exc:
        raise UsageError(
            f"{option} {root}: cannot create folders in {existing} ({exc.strerror or exc}); {valid}"
        ) from exc
    os.rmdir(probe)


def new_run_dir(root: Path, config: RunConfig) -> Path:
    """A fresh, unique folder name; nothing is created yet."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    base = root / config.name / f"{stamp}-s{config.train.seed}"
    path = base
    n = 1
    while path.exists():
        path = base.with_name(f"{base.name}-{n}")
        n += 1
    return path


def write_run_files(run_dir: Path, config: RunConfig, command: list[str] | None = None) -> None:
    run_dir.mkdir(parents=True, exist_ok=False)
    (run_dir / CONFIG).write_text(config.to_yaml())
    argv = command if command is not None else ["mtgc", *sys.argv[1:]]
    (run_dir / "command.txt").write_text(shlex.join(argv) + "\n")
    (run_dir / "versions.json").write_text(json.dumps(versions(), indent=2) + "\n")


def save_task_encoding(run_dir: Path, encoding: TaskEncoding) -> None:
    """task_encoding.json: a language run's descriptions and vectors, as it trains with them."""
    encoding.save(run_dir / TASK_ENCODING)


def start_progress(run_dir: Path, task_names: Sequence[str]) -> None:
    """progress.csv with its header: :data:`PROGRESS_FIELDS`, then each task's success."""
    _write_csv_row(run_dir / PROGRESS, PROGRESS_FIELDS + [f"success/{name}" for name in task_names], "w")


def append_progress(run_dir: Path, row: Sequence[Any]) -> None:
    """One evaluation's row of progress.csv."""
    _write_csv_row(run_dir / PROGRESS, row, "a")


def start_losses(run_dir: Path) -> None:
    """bc_loss.csv (behaviour cloning's losses) with its header, unless a resumed run has it."""
    if not (run_dir / LOSSES).exists():
        _write_csv_row(run_dir / LOSSES, ["gradient_steps", "train_loss", "validation_loss", "seconds"], "w")


def append_loss(run_dir: Path, row: Sequence[Any]) -> None:
    """A row of bc_loss.csv."""
    _write_csv_row(run_dir / LOSSES, row, "a")


def _write_csv_row(path: Path, row: Sequence[Any], mode: str) -> None:
    with path.open(mode, newline="") as f:
        csv.writer(f).writerow(row)


def remove_unfinished(run_dir: Path) -> None:
    """Remove a run folder that holds no model, so a failed start leaves nothing half-made."""
    kept = (run_dir / MODEL, run_dir / BEST_MODEL)
    if run_dir.exists() and not any(path.exists() for path in kept) and not has_checkpoints(run_dir):
        shutil.rmtree(run_dir, ignore_errors=True)


def has_checkpoints(run_dir: Path) -> bool:
    folder = run_dir / CHECKPOINTS
    return folder.is_dir() and any(folder.glob("step_*"))


def record_resume(run_dir: Path, config: RunConfig, command: list[str] | None = None) -> None:
    """A resumed run: its config.yaml takes the new total, command.txt the resume command."""
    if (run_dir / CONFIG).read_text() != config.to_yaml():
        # Only train.timesteps can differ (checked before). Replaced by a rename: config.yaml is
        # never half-written.
        tmp = run_dir / f".{CONFIG}.partial-{os.getpid()}"
        tmp.write_text(config.to_yaml())
        os.replace(tmp, run_dir / CONFIG)
    argv = command if command is not None else ["mtgc", *sys.argv[1:]]
    with (run_dir / "command.txt").open("a") as f:
        f.write(shlex.join(argv) + "\n")


@dataclass
class RunSummary:
    """What ``summary.json`` holds: how a run ended, its final and best evals, its last checkpoint.

    The fields are the file's keys, in its order. Read back, a key an older mtgc did not write is
    None (or its default); a key this one does not know is ignored.
    """

    run_dir: str
    preset: str
    status: str  # done | interrupted
    stopped_by: str | None = None  # SIGINT, SIGTERM
    strategy: str = "none"
    seed: int = 0
    steps: int = 0  # env steps done
    seconds: float = 0.0  # wall seconds, every start and resume together
    final_eval_success: float | None = None
    final_eval_step: int | None = None
    best_eval_success: float | None = None  # see best_selection
    best_eval_interval: list[float] | None = None
    best_eval_episodes: int = 0
    best_eval_step: int = 0
    best_screen_success: float | None = None
    best_recheck_success: float | None = None
    best_recheck_interval: list[float] | None = None
    best_eval_source: str | None = None  # recheck | fresh
    best_selection: str | None = None
    final_task_success: dict[str, float] | None = None  # multi-task runs
    checkpoint: dict[str, Any] | None = None  # path, megabytes, seconds
    checkpoint_seconds: float = 0.0
    resumed_at: list[int] = field(default_factory=list)

    @property
    def final_scores(self) -> list[float]:
        """The final success per task (one value for a single-task run)."""
        if self.final_task_success:
            return list(self.final_task_success.values())
        return [] if self.final_eval_success is None else [self.final_eval_success]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunSummary:
        known = {f.name for f in fields(cls)}
        return cls(**{key: value for key, value in data.items() if key in known})


def write_summary(run_dir: Path, summary: RunSummary) -> None:
    (run_dir / SUMMARY).write_text(json.dumps(summary.to_json(), indent=2) + "\n")


def read_summary(run_dir: Path) -> RunSummary | None:
    """The run's summary.json; None where there is none (a run that never ended) or it is unreadable."""
    path = run_dir / SUMMARY
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
        return RunSummary.from_json(data) if isinstance(data, dict) else None
    except (json.JSONDecodeError, TypeError):
        return None


def train_video_dir(run_dir: Path, step: int) -> Path:
    """Where the videos of the eval at ``step`` env steps go."""
    return run_dir / VIDEOS / f"step_{step}"


def eval_video_dir(saved: SavedRun, seed: int) -> Path:
    """Where ``mtgc eval --video --seed SEED`` of a model goes: ``eval-model-s0``, ``eval-step_150-s0``."""
    model = saved.model
    name = model.parent.name if model.parent.parent.name == CHECKPOINTS else model.stem
    return saved.run_dir / VIDEOS / f"eval-{name}-s{seed}"


def read_task_encoding(run_dir: Path, config: RunConfig) -> TaskEncoding | None:
    """The task vectors a language run was trained with (None for other runs: one-hots are rebuilt).

    Raises:
        UsageError: a language run whose task_encoding.json is missing or unreadable.
    """
    if config.env.task_encoding != "language":
        return None
    return TaskEncoding.load(run_dir / TASK_ENCODING)


def stats_path_for(model: Path) -> Path:
    """The normalisation statistics saved beside a model file."""
    if model.name == BEST_MODEL:
        return model.with_name(BEST_STATS)
    match = re.fullmatch(r"rl_model_(\d+)_steps\.zip", model.name)
    if match:
        return model.with_name(f"rl_model_vecnormalize_{match.group(1)}_steps.pkl")
    return model.with_name(STATS)


@dataclass(frozen=True)
class SavedRun:
    run_dir: Path
    model: Path
    stats: Path
    config: RunConfig


def _run_dir_of(folder: Path) -> Path:
    """The run folder that holds ``folder``: itself, or a checkpoint's (checkpoints/step_N/)."""
    return folder.parent.parent if folder.parent.name == CHECKPOINTS else folder


def _no_model_yet(target: Path, run_dir: Path) -> str:
    """What to evaluate in a run folder without model.zip: a run still training writes it last."""
    if not (run_dir / CONFIG).is_file():
        return f"{target}: no {MODEL} in this folder; expected a run folder from `mtgc train`"
    steps = sorted(run_dir.glob(f"{CHECKPOINTS}/step_*/{MODEL}"), key=lambda p: int(p.parent.name[5:]))
    found = [p.parent for p in reversed(steps)] + [p for p in [run_dir / BEST_MODEL] if p.is_file()]
    if not found:
        return (
            f"{target}: no model yet (a run writes {MODEL} when it ends, checkpoints on the way); "
            "valid: eval it after its first checkpoint (train.checkpoint_every)"
        )
    return (
        f"{target}: no {MODEL} yet (a run writes it when it ends); valid: a model it has saved "
        "in that folder: " + ", ".join(str(p.relative_to(run_dir)) for p in found[:3])
    )


def open_run(target: Path) -> SavedRun:
    """A run folder, a checkpoint folder, or a model zip inside either (last, best, checkpoint)."""
    if target.is_dir():
        run_dir, model = _run_dir_of(target), target / MODEL
        if not model.is_file():
            raise UsageError(_no_model_yet(target, run_dir))
    elif target.is_file():
        if target.suffix != ".zip":
            raise UsageError(f"{target}: expected a run folder or a model .zip")
        model = target
        # checkpoints/step_N/model.zip, or checkpoints/rl_model_N_steps.zip of older versions
        run_dir = target.parent.parent if target.parent.name == CHECKPOINTS else _run_dir_of(target.parent)
    else:
        raise UsageError(f"{target}: no such run folder or model file")
    config_path = run_dir / CONFIG
    if not config_path.is_file():
        raise UsageError(f"{run_dir}: no {CONFIG} beside the model; expected a run folder from `mtgc train`")
    try:
        data = safe_yaml.safe_load(config_path.read_text())
    except (yaml.YAMLError, RecursionError) as exc:
        problem = getattr(exc, "problem", None) or "not valid YAML"
        raise UsageError(f"{config_path}: corrupt run config: {problem}") from exc
    if not isinstance(data, dict):
        raise UsageError(f"{config_path}: corrupt run config (not a mapping)")
    return SavedRun(
        run_dir=run_dir, model=model, stats=stats_path_for(model), config=validate(data, str(config_path))
    )
