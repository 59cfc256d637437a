"""Writing, pruning and scanning the whole checkpoints of a run folder (see the package's doc)."""

from __future__ import annotations

import json
import os
import pickle
import re
import shutil
import stat
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from stable_baselines3.common.vec_env import VecEnv

from mtgc_cli import __version__, runs
from mtgc_cli.checkpoint.atomic import fsync_path, link_atomic, write_atomic, write_file
from mtgc_cli.checkpoint.buffers import save_buffer
from mtgc_cli.checkpoint.rng import random_states
from mtgc_cli.config import RunConfig
from mtgc_cli.errors import RunFailed
from mtgc_cli.portable import save_portable

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
        write_file(tmp / MODEL, save_portable(model))
        vec_normalize = model.get_vec_normalize_env()
        if vec_normalize is not None:
            vec_normalize.save(str(tmp / STATS))
            fsync_path(tmp / STATS)
        buffer = getattr(model, "replay_buffer", None)
        if isinstance(model, OffPolicyAlgorithm) and buffer is not None:
            write_file(tmp / BUFFER, lambda f: save_buffer(buffer, f))
        state = {"trainer": trainer, "random": random_states(model, env, eval_env)}
        write_file(tmp / STATE, lambda f: pickle.dump(state, f, protocol=pickle.HIGHEST_PROTOCOL))
        linked = [name for name in (runs.BEST_MODEL, runs.BEST_STATS) if (run_dir / name).is_file()]
        for name in linked:
            link_atomic(run_dir / name, tmp / name)
        write_file(tmp / CONFIG, lambda f: f.write(config.to_yaml().encode()))
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
        write_file(tmp / MANIFEST, lambda f: f.write(json.dumps(manifest, indent=2).encode()))
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
