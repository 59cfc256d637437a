"""Whole checkpoints: everything a stopped run needs to go on as if it had not stopped.

A checkpoint is a folder ``checkpoints/step_<N>/`` of the run folder, N the env steps done::

    model.zip              the model: SB3's ``save`` (weights, optimisers, counters, schedules)
    vecnormalize.pkl       its normalisation statistics (when the env normalises observations)
    replay_buffer.pkl      the replay buffer, SB3's ``save_replay_buffer`` pickle (mtgc's per-task
                           and relabeling state included), without the rows it has never written
    state.pkl              mtgc's training state (env steps, eval and checkpoint schedule,
                           best-model record, training-success window, wall clock) and the random
                           states: python, numpy, torch, each env's generator, the action space's
    best_model.zip, best_vecnormalize.pkl    the best model as of step N (hard links)
    run_config.yaml        the config the run had at step N
    manifest.json          written last: format, step, every file's size, what the write cost
                           (written_bytes, seconds)

``model.zip`` (with ``vecnormalize.pkl`` beside it) is an ordinary model file, so ``mtgc eval``
reads a checkpoint like any other model.

A checkpoint is whole or absent. It is written under a hidden temporary name, every file and
the folder are fsynced, the manifest goes last, and one ``rename`` publishes it; a crash or a
full disk before that leaves the hidden folder, which is never read and is removed by the next
checkpoint. A file damaged later (a truncated copy) no longer matches the size its manifest
records, and resuming takes the newest checkpoint that does. Older checkpoints are removed only
once the new one is whole. The newest ``RESUMABLE_KEPT`` keep their replay buffer; older ones
(up to ``train.keep_checkpoints``) are trimmed to what ``mtgc eval`` needs, because a replay
buffer is the bulk of a checkpoint (hundreds of MB for Fetch at a full buffer).
"""

from __future__ import annotations

import json
import os
import pickle
import random
import re
import shutil
import stat
import time
import warnings
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch as th
import yaml
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from stable_baselines3.common.save_util import save_to_pkl
from stable_baselines3.common.vec_env import VecEnv, VecNormalize

from mtgc_cli import __version__, runs
from mtgc_cli.algos import model_class
from mtgc_cli.errors import RunFailed, UsageError, excerpt
from mtgc_cli.presets import RunConfig

FORMAT = 1
MANIFEST = "manifest.json"
MODEL = runs.MODEL
STATS = runs.STATS
BUFFER = "replay_buffer.pkl"
STATE = "state.pkl"
# Not config.yaml: that name marks a run folder (tools find runs by it).
CONFIG = "run_config.yaml"
# The newest checkpoints that keep their replay buffer: the one a resume takes and one to fall
# back on should it be damaged.
RESUMABLE_KEPT = 2

_NAME = re.compile(r"step_(\d+)")


def folder_name(step: int) -> str:
    return f"step_{step}"


# ---------------------------------------------------------------------------------------------
# Atomic files


def fsync_path(path: Path) -> None:
    """Flush a file's or a folder's data to disk (a folder: its entries, i.e. renames into it)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _partial_name(path: Path) -> Path:
    # The real suffix is kept: SB3 adds ".zip" to a model path that lacks it.
    return path.with_name(f".{path.stem}.partial-{os.getpid()}{path.suffix}")


def _write_file(path: Path, write: Callable[[IO[bytes]], None]) -> None:
    """Write ``path`` through ``write(file)`` and flush it to disk."""
    with path.open("wb") as f:
        write(f)
        f.flush()
        os.fsync(f.fileno())


def write_atomic(path: Path, write: Callable[[IO[bytes]], None]) -> None:
    """Write ``path`` through ``write(file)`` so that readers see the old file or the new one."""
    tmp = _partial_name(path)
    try:
        _write_file(tmp, write)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def link_atomic(source: Path, target: Path) -> None:
    """Make ``target`` the same file as ``source`` (a hard link; a copy where links fail), atomically.

    Files that mtgc writes are always replaced by a rename, never rewritten in place, so two
    names of one file never see each other change.
    """
    tmp = _partial_name(target)
    tmp.unlink(missing_ok=True)
    try:
        try:
            os.link(source, tmp)
        except OSError:
            shutil.copyfile(source, tmp)
            fsync_path(tmp)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


# ---------------------------------------------------------------------------------------------
# Replay buffers without their unwritten rows


def _is_rows(value: Any, buffer: ReplayBuffer) -> bool:
    """Whether ``value`` is a per-row array of ``buffer``: shape (buffer_size, n_envs, ...)."""
    return (
        isinstance(value, np.ndarray)
        and value.ndim >= 2
        and value.shape[:2] == (buffer.buffer_size, buffer.n_envs)
    )


def _pad(part: np.ndarray, size: int, fill: np.ndarray) -> np.ndarray:
    """``part`` (rows, ...) grown to ``size`` rows, the new rows set to ``fill`` (one row)."""
    if fill.any():
        out = np.empty((size, *part.shape[1:]), dtype=part.dtype)
        out[len(part) :] = fill
    else:
        out = np.zeros((size, *part.shape[1:]), dtype=part.dtype)  # untouched pages cost nothing
    out[: len(part)] = part
    return out


def _expand(cls: type, state: dict[str, Any], size: int, fills: dict[str, Any]) -> ReplayBuffer:
    """Unpickling side of :class:`_CompactBuffer`: the buffer at its full size again."""
    for name, fill in fills.items():
        value = state[name]
        if isinstance(fill, dict):
            state[name] = {key: _pad(value[key], size, fill[key]) for key in value}
        else:
            state[name] = _pad(value, size, fill)
    buffer = cls.__new__(cls)
    setstate = getattr(buffer, "__setstate__", None)
    if setstate is not None:
        setstate(state)  # HerReplayBuffer's: leaves env unset until set_env
    else:
        buffer.__dict__.update(state)
    return buffer


class _CompactBuffer:
    """Pickles a replay buffer that is not yet full without the rows it has never written.

    SB3 allocates every row up front, so a buffer of 1e6 rows pickles 1e6 rows even at 3% full.
    This pickles as a call to :func:`_expand` with each per-row array cut at ``pos`` and its
    fill value (the value of a never-written row: 0, or -1 for the task ids); loading the file
    with SB3's ``load_from_pkl`` / ``load_replay_buffer`` gives the buffer back at full size.
    """

    def __init__(self, buffer: ReplayBuffer):
        self.buffer = buffer

    def __reduce__(self) -> tuple[Any, ...]:
        buffer = self.buffer
        rows = buffer.pos
        state = dict(buffer.__getstate__())  # type: ignore[call-overload]  # HER's drops the env
        fills: dict[str, Any] = {}
        for name, value in state.items():
            if _is_rows(value, buffer):
                state[name], fills[name] = value[:rows], value[rows].copy()
            elif isinstance(value, dict) and value and all(_is_rows(v, buffer) for v in value.values()):
                state[name] = {key: v[:rows] for key, v in value.items()}
                fills[name] = {key: v[rows].copy() for key, v in value.items()}
        return (_expand, (type(buffer), state, buffer.buffer_size, fills))


def save_buffer(buffer: ReplayBuffer, f: IO[bytes]) -> None:
    # With optimize_memory_usage the next observation of the last row lives in row pos, so
    # such a buffer is written whole.
    compact = not buffer.full and not getattr(buffer, "optimize_memory_usage", False)
    save_to_pkl(f, _CompactBuffer(buffer) if compact else buffer)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# Random states


def _env_generators(env: VecEnv) -> list[Any] | None:
    """Each env slot's generator (goals, initial states), or None where the env does not allow it."""
    try:
        return list(env.get_attr("np_random"))
    except Exception:
        return None


def random_states(model: BaseAlgorithm, env: VecEnv, eval_env: VecEnv) -> dict[str, Any]:
    space_rng = getattr(model.action_space, "_np_random", None)
    return {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": th.get_rng_state(),
        "train_envs": _env_generators(env),
        "eval_envs": _env_generators(eval_env),
        "action_space": space_rng,  # random actions before learning_starts
        # Behaviour cloning's minibatch generator: the demonstrations drawn after a resume are
        # the ones an uninterrupted run would have drawn.
        "demo_sampler": getattr(getattr(model, "_sampler", None), "rng", None),
    }


def _set_generators(env: VecEnv, generators: list[Any] | None) -> None:
    if generators is None or len(generators) != env.num_envs:
        return
    for index, generator in enumerate(generators):
        try:
            env.set_attr("np_random", generator, indices=[index])
        except Exception:
            return  # an env that does not allow it starts from its own seed


def set_random_states(states: dict[str, Any], model: BaseAlgorithm, env: VecEnv, eval_env: VecEnv) -> None:
    random.setstate(states["python"])
    np.random.set_state(states["numpy"])
    th.set_rng_state(states["torch"])
    _set_generators(env, states["train_envs"])
    _set_generators(eval_env, states["eval_envs"])
    if states.get("action_space") is not None:
        # gymnasium's Space has no setter for its generator; SB3's load re-seeded it.
        model.action_space._np_random = states["action_space"]  # type: ignore[attr-defined]
    sampler = getattr(model, "_sampler", None)
    if states.get("demo_sampler") is not None and sampler is not None:
        sampler.rng = states["demo_sampler"]


# ---------------------------------------------------------------------------------------------
# Writing


@dataclass(frozen=True)
class Checkpoint:
    """A whole checkpoint folder, as its manifest describes it."""

    path: Path
    step: int
    manifest: dict[str, Any]

    @property
    def resumable(self) -> bool:
        return bool(self.manifest.get("resumable"))

    @property
    def bytes(self) -> int:
        """What writing it cost on disk: its files but the best model, a link to the run's."""
        return int(self.manifest.get("written_bytes", sum(self.manifest["files"].values())))

    @property
    def seconds(self) -> float:
        return float(self.manifest.get("seconds", 0.0))


def _csv_sizes(run_dir: Path) -> dict[str, int]:
    """Byte length of every append-only CSV of the run (progress.csv, bc_loss.csv, ...)."""
    return {path.name: path.stat().st_size for path in sorted(run_dir.glob("*.csv"))}


def write(
    run_dir: Path,
    step: int,
    model: BaseAlgorithm,
    env: VecEnv,
    eval_env: VecEnv,
    trainer: dict[str, Any],
    config: RunConfig,
) -> Checkpoint:
    """Write a whole checkpoint of the run at ``step`` env steps; returns it, with its cost.

    Raises :class:`RunFailed` (exit 1) when it cannot be written (a full disk, a folder that
    cannot be written); the previous checkpoints are untouched then.
    """
    folder = run_dir / runs.CHECKPOINTS
    final = folder / folder_name(step)
    tmp = folder / f".{final.name}.partial-{os.getpid()}"
    start = time.perf_counter()
    try:
        folder.mkdir(exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        _write_file(tmp / MODEL, model.save)  # type: ignore[arg-type]
        vec_normalize = model.get_vec_normalize_env()
        if vec_normalize is not None:
            vec_normalize.save(str(tmp / STATS))
            fsync_path(tmp / STATS)
        buffer = getattr(model, "replay_buffer", None)
        if isinstance(model, OffPolicyAlgorithm) and buffer is not None:
            _write_file(tmp / BUFFER, lambda f: save_buffer(buffer, f))
        state = {"trainer": trainer, "random": random_states(model, env, eval_env)}
        _write_file(tmp / STATE, lambda f: pickle.dump(state, f, protocol=pickle.HIGHEST_PROTOCOL))
        linked = [name for name in (runs.BEST_MODEL, runs.BEST_STATS) if (run_dir / name).is_file()]
        for name in linked:
            link_atomic(run_dir / name, tmp / name)
        _write_file(tmp / CONFIG, lambda f: f.write(config.to_yaml().encode()))
        files = {path.name: path.stat().st_size for path in sorted(tmp.iterdir())}
        manifest = {
            "format": FORMAT,
            "step": step,
            "algo": config.algo.name,
            "resumable": True,
            "files": files,
            "written_bytes": sum(size for name, size in files.items() if name not in linked),
            # The run's CSV logs at this step: a resume cuts them back to these lengths.
            "csv_bytes": _csv_sizes(run_dir),
            "seconds": round(time.perf_counter() - start, 3),
            "mtgc": __version__,
        }
        _write_file(tmp / MANIFEST, lambda f: f.write(json.dumps(manifest, indent=2).encode()))
        fsync_path(tmp)
        if final.exists():
            # The same step again (a resume that fell back past a damaged checkpoint): the new
            # one replaces it, and the old one goes only once the new one is in place.
            old = folder / f".{final.name}.replaced-{os.getpid()}"
            shutil.rmtree(old, ignore_errors=True)
            final.rename(old)
            tmp.rename(final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(final)
        fsync_path(folder)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        previous = newest(run_dir)
        kept = (
            f"the previous one, {previous.path.name}, is intact (mtgc train --resume {run_dir})"
            if previous
            else "there is no earlier one"
        )
        raise RunFailed(
            f"checkpoint at {step:,} env steps not written to {exc.filename or folder}: "
            f"{exc.strerror or exc}; {kept}"
        ) from exc
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    manifest["seconds"] = round(time.perf_counter() - start, 3)
    return Checkpoint(final, step, manifest)


def prune(run_dir: Path, keep: int | None) -> None:
    """Keep the newest ``keep`` whole checkpoints (all with None), the newest two resumable."""
    folder = run_dir / runs.CHECKPOINTS
    for leftover in folder.glob(".step_*"):
        # Hidden folders are writes that never finished (a crash, a full disk).
        shutil.rmtree(leftover, ignore_errors=True)
    whole, damaged = scan(run_dir)
    for bad in damaged:
        if whole and bad.step < whole[0].step:
            shutil.rmtree(bad.path, ignore_errors=True)  # of no use once a newer one is whole
    if keep is not None:
        for old in whole[keep:]:
            shutil.rmtree(old.path, ignore_errors=True)
        whole = whole[:keep]
    for old in whole[RESUMABLE_KEPT:]:
        if old.resumable:
            _trim(old)


def _trim(checkpoint: Checkpoint) -> None:
    """Drop a checkpoint's replay buffer; it stays a model ``mtgc eval`` can read."""
    files = {name: size for name, size in checkpoint.manifest["files"].items() if name != BUFFER}
    written = checkpoint.bytes - checkpoint.manifest["files"].get(BUFFER, 0)
    manifest = {**checkpoint.manifest, "resumable": False, "files": files, "written_bytes": written}
    # The manifest first: should the removal not happen, the file is only an extra one.
    write_atomic(checkpoint.path / MANIFEST, lambda f: f.write(json.dumps(manifest, indent=2).encode()))
    (checkpoint.path / BUFFER).unlink(missing_ok=True)


# ---------------------------------------------------------------------------------------------
# Reading back


def inspect(path: Path) -> Checkpoint | str:
    """The checkpoint at ``path`` if it is whole, else what is wrong with it (one phrase)."""
    match = _NAME.fullmatch(path.name)
    if match is None or not path.is_dir():
        return "not a checkpoint folder"
    try:
        manifest = json.loads((path / MANIFEST).read_text())
    except FileNotFoundError:
        return f"no {MANIFEST} (its write did not finish)"
    except (OSError, ValueError) as exc:
        return f"unreadable {MANIFEST} ({exc})"
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT or "files" not in manifest:
        return f"{MANIFEST} is not a format-{FORMAT} manifest"
    for name, size in manifest["files"].items():
        try:
            info = (path / name).stat()
        except OSError:  # absent, or pruned by a run that is writing newer checkpoints meanwhile
            return f"{name} is missing"
        if not stat.S_ISREG(info.st_mode):
            return f"{name} is missing"
        actual = info.st_size
        if actual != size:
            return f"{name} is {actual:,} bytes, the manifest says {size:,} (truncated or damaged)"
    if manifest.get("resumable") and STATE not in manifest["files"]:
        return f"{MANIFEST} lists no {STATE}"
    return Checkpoint(path, int(match.group(1)), manifest)


@dataclass(frozen=True)
class Damaged:
    """A checkpoint folder that is not whole, and why."""

    path: Path
    step: int
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


def scan(run_dir: Path) -> tuple[list[Checkpoint], list[Damaged]]:
    """Whole checkpoints, newest first, and the checkpoint folders that are not whole."""
    folder = run_dir / runs.CHECKPOINTS
    if not folder.is_dir():
        return [], []
    found: list[Checkpoint] = []
    damaged: list[Damaged] = []
    for path in folder.iterdir():
        match = _NAME.fullmatch(path.name)
        if match is None:
            continue  # hidden partial writes, checkpoints of older mtgc versions
        result = inspect(path)
        if isinstance(result, str):
            damaged.append(Damaged(path, int(match.group(1)), result))
        else:
            found.append(result)
    found.sort(key=lambda c: c.step, reverse=True)
    damaged.sort(key=lambda d: d.step, reverse=True)
    return found, damaged


def newest(run_dir: Path) -> Checkpoint | None:
    whole, _ = scan(run_dir)
    return whole[0] if whole else None


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
    if not (run_dir / runs.CONFIG).is_file():
        raise UsageError(f"--resume {run_dir}: no {runs.CONFIG} there; {valid}")
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


def zip_problem(path: Path) -> str | None:
    """Why the zip file at ``path`` cannot be read whole (a failed CRC, not a zip), or None."""
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (OSError, zipfile.BadZipFile, EOFError, ValueError) as exc:
        return f"{path.name} cannot be read ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})"
    return f"{path.name} is damaged ({bad} fails its CRC check)" if bad is not None else None


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
        model = model_class(config.algo).load(path / MODEL, env=env, device=template.device)
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
