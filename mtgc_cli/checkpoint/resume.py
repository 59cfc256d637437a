"""Resuming a run: which checkpoint it may take, and restoring it into freshly prepared envs."""

from __future__ import annotations

import os
import pickle
import warnings
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from stable_baselines3.common.vec_env import VecEnv, VecNormalize

from mtgc_cli import runs
from mtgc_cli.algos import model_class
from mtgc_cli.checkpoint.atomic import link_atomic
from mtgc_cli.checkpoint.rng import set_random_states
from mtgc_cli.checkpoint.store import BUFFER, CONFIG, MODEL, STATE, STATS, Checkpoint, Damaged, scan
from mtgc_cli.config import RunConfig
from mtgc_cli.errors import RunFailed, UsageError, excerpt
from mtgc_cli.portable import mtgc_objects


def _flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, dict):
        flat: dict[str, Any] = {}
        for key, value in data.items():
            flat.update(_flatten(value, f"{prefix}{key}."))
        return flat
    return {prefix[:-1]: data}


def config_differences(saved: RunConfig, requested: RunConfig) -> list[str]:
    """``key: saved value -> requested value`` for every setting that differs, but the total steps."""
    a = _flatten(yaml.safe_load(saved.to_yaml()))
    b = _flatten(yaml.safe_load(requested.to_yaml()))
    a.pop("train.timesteps", None)
    b.pop("train.timesteps", None)
    return [
        f"{key}: {excerpt(a.get(key))} in the run, {excerpt(b.get(key))} here"
        for key in sorted(a.keys() | b.keys())
        if a.get(key) != b.get(key)
    ]


@dataclass
class ResumePlan:
    """The checkpoints a resume may take, newest first, and why any others were passed over."""

    run_dir: Path
    config: RunConfig
    candidates: list[Checkpoint]
    problems: list[Damaged] = field(default_factory=list)

    @property
    def step(self) -> int:
        return self.candidates[0].step


def check_run_folder(run_dir: Path) -> None:
    """Raise :class:`UsageError` unless ``run_dir`` is a run folder (it has the run's config)."""
    if not (run_dir / runs.CONFIG).is_file():
        raise UsageError(f"--resume {run_dir}: no {runs.CONFIG} there; valid: a run folder of `mtgc train`")


def plan_resume(run_dir: Path, requested: RunConfig, extend: bool) -> ResumePlan:
    """Check that ``run_dir`` can go on under ``requested``; all bad input raises :class:`UsageError`.

    ``requested`` must equal the config of the run's newest checkpoint in every setting but
    ``train.timesteps``, which must be above the steps already done (``extend``: the total came
    from ``--timesteps``).
    """
    valid = (
        "valid: a run folder of `mtgc train` with a whole checkpoint (one is written every "
        "train.checkpoint_every steps and when a run stops)"
    )
    check_run_folder(run_dir)
    whole, problems = scan(run_dir)
    # A model.zip of the right size can still be damaged: read it now (its CRCs), so the line
    # that says where the run resumes names the checkpoint it will resume from.
    unreadable = [Damaged(c.path, c.step, p) for c in whole if (p := zip_problem(c.path / MODEL))]
    problems = sorted([*problems, *unreadable], key=lambda d: d.step, reverse=True)
    resumable = [c for c in whole if c.resumable and c.path not in {d.path for d in unreadable}]
    if not resumable:
        detail = f" ({problems[0]})" if problems else ""
        raise UsageError(f"--resume {run_dir}: no whole checkpoint to resume from{detail}; {valid}")
    from mtgc_cli.presets import validate

    try:
        saved = validate(
            yaml.safe_load((resumable[0].path / CONFIG).read_text()), str(resumable[0].path / CONFIG)
        )
    except (OSError, yaml.YAMLError) as exc:
        raise UsageError(f"--resume {run_dir}: unreadable checkpoint config ({exc})") from exc
    differences = config_differences(saved, requested)
    if differences:
        shown = "; ".join(differences[:3]) + ("; ..." if len(differences) > 3 else "")
        raise UsageError(
            f"--resume {run_dir}: the run was made with another config ({shown}); valid: the run's "
            "own settings (give --resume alone, or --timesteps to change the total)"
        )
    step = resumable[0].step
    if requested.train.timesteps <= step:
        if extend:
            raise UsageError(
                f"--timesteps {requested.train.timesteps:,} is not above the {step:,} env steps "
                f"{run_dir} has done; valid: a total above {step:,}"
            )
        raise UsageError(
            f"--resume {run_dir}: the run already finished ({step:,} of {requested.train.timesteps:,} "
            f"env steps); valid: --timesteps above {step:,} to extend it"
        )
    csv_problem = _csv_problem(run_dir, resumable[0])
    if csv_problem:
        raise UsageError(f"--resume {run_dir}: {csv_problem}; valid: the run folder as mtgc wrote it")
    # Only damage to newer checkpoints than the one taken is worth a line.
    return ResumePlan(run_dir, requested, resumable, [d for d in problems if d.step > step])


def _csv_problem(run_dir: Path, checkpoint: Checkpoint) -> str | None:
    for name, size in checkpoint.manifest.get("csv_bytes", {}).items():
        path = run_dir / name
        actual = path.stat().st_size if path.is_file() else None
        if actual is None or actual < size:
            return f"{name} is shorter than when {checkpoint.path.name} was written (rows would be missing)"
    return None


@dataclass
class Restored:
    model: BaseAlgorithm
    trainer: dict[str, Any]
    checkpoint: Checkpoint
    skipped: list[str]


@contextmanager
def _quiet() -> Iterator[None]:
    with warnings.catch_warnings():
        # SB3 warns that the episode in progress is truncated: that is what a resume does.
        warnings.simplefilter("ignore")
        yield


def _load(
    checkpoint: Checkpoint, template: BaseAlgorithm, config: RunConfig, env: VecEnv
) -> tuple[BaseAlgorithm, dict[str, Any]]:
    """The model (replay buffer included) and mtgc's state of one checkpoint; changes nothing else."""
    path = checkpoint.path
    with _quiet():
        model = model_class(config.algo).load(
            path / MODEL, env=env, device=template.device, custom_objects=mtgc_objects(template)
        )
        if (path / BUFFER).is_file():
            assert isinstance(model, OffPolicyAlgorithm)
            # SB3's own load: it gives HER buffers their env back and closes the episode that
            # was in progress (resuming starts a new one), so no half episode is sampled.
            model.load_replay_buffer(path / BUFFER, truncate_last_traj=True)
    with (path / STATE).open("rb") as f:
        state = pickle.load(f)
    return model, state


def _take_unsaved_state(model: BaseAlgorithm, template: BaseAlgorithm) -> None:
    """State an algorithm keeps out of its saved file on purpose, taken from the freshly built one.

    SB3 rebuilds what it excludes (policy aliases, the env); an algorithm's own exclusions that
    ``load`` leaves unset (behaviour cloning's demonstrations) come from the prepared model,
    built from the same config.
    """
    sb3_excluded = set(BaseAlgorithm._excluded_save_params(template))
    for name in set(template._excluded_save_params()) - sb3_excluded:
        if getattr(model, name, None) is None and getattr(template, name, None) is not None:
            setattr(model, name, getattr(template, name))


def restore(
    plan: ResumePlan,
    template: BaseAlgorithm,
    env: VecEnv,
    eval_env: VecEnv,
    warn: Callable[[str], None] | None = None,
) -> Restored:
    """Load the newest whole checkpoint of ``plan`` (an older one if it cannot be read) into the
    prepared envs, and set the run folder back to its step: CSV logs cut to their length then,
    the best model of then. ``template`` is the model ``prepare`` built for the same config."""
    skipped = [str(damaged) for damaged in plan.problems]
    for message in skipped:
        if warn:
            warn(f"{message}; passed over")
    for checkpoint in plan.candidates:
        try:
            model, state = _load(checkpoint, template, plan.config, env)
        except Exception as exc:  # a file whose size is right but whose content is not
            detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            line = f"{checkpoint.path}: cannot be read ({detail}); passed over"
            skipped.append(line)
            if warn:
                warn(line)
            continue
        break
    else:
        raise RunFailed(f"{plan.run_dir}: none of its checkpoints can be read; see the lines above")
    _take_unsaved_state(model, template)
    # SB3's load seeded the VecEnv for its next reset (seed + slot, the run's very first
    # episodes); the restored generators decide the next episodes instead.
    env.unwrapped._reset_seeds()  # type: ignore[attr-defined]
    vec_normalize = model.get_vec_normalize_env()
    if vec_normalize is not None and (checkpoint.path / STATS).is_file():
        saved = VecNormalize.load(str(checkpoint.path / STATS), vec_normalize.venv)
        vec_normalize.obs_rms, vec_normalize.ret_rms = saved.obs_rms, saved.ret_rms
    set_random_states(state["random"], model, env, eval_env)
    # A new episode in every env slot: the env's state at the stop is not saved.
    model._last_obs = None  # type: ignore[assignment]
    _rewind_run_folder(plan.run_dir, checkpoint)
    return Restored(model, state["trainer"], checkpoint, skipped)


def _rewind_run_folder(run_dir: Path, checkpoint: Checkpoint) -> None:
    """Put the run folder back to the checkpoint's step: what was written after it is redone."""
    for name, size in checkpoint.manifest.get("csv_bytes", {}).items():
        os.truncate(run_dir / name, size)
    for name in (runs.BEST_MODEL, runs.BEST_STATS):
        saved, current = checkpoint.path / name, run_dir / name
        if saved.is_file():
            if not (current.exists() and os.path.samefile(saved, current)):
                link_atomic(saved, current)
        else:
            current.unlink(missing_ok=True)  # chosen after the checkpoint: chosen again, or not


def zip_problem(path: Path) -> str | None:
    """Why the zip file at ``path`` cannot be read whole (a failed CRC, not a zip), or None."""
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (OSError, zipfile.BadZipFile, EOFError, ValueError) as exc:
        return f"{path.name} cannot be read ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})"
    return f"{path.name} is damaged ({bad} fails its CRC check)" if bad is not None else None
