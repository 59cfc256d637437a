"""Training a prepared run: ``train`` (the loop around SB3's ``learn``), ``run`` (a new run
folder), ``resume`` (a stopped run from its checkpoint), and :func:`start_or_resume`, the one way
in that ``mtgc train`` and every compare backend take."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

from mtgc_cli import checkpoint, folder_lock, presets, runs
from mtgc_cli.config import RunConfig
from mtgc_cli.errors import RunFailed
from mtgc_cli.imitation.bc import BehaviourCloning
from mtgc_cli.notices import Reporter, warn
from mtgc_cli.stop import StopRequest
from mtgc_cli.training.callbacks import RunCallback
from mtgc_cli.training.logger import make_logger
from mtgc_cli.training.setup import Setup, prepare


def train(
    setup: Setup,
    run_dir: Path,
    report: Reporter | None = None,
    stop: StopRequest | None = None,
    resumed: dict[str, Any] | None = None,
) -> runs.RunSummary:
    """Train to ``train.timesteps`` with evaluation and checkpoints; write the run's files.

    ``resumed`` is the training state of the checkpoint ``setup.model`` was restored from. The run
    ends with a whole checkpoint, whether it finished or a signal stopped it (status
    ``interrupted`` and ``stopped_by`` in the summary).
    """
    config = setup.config
    model = setup.model
    # The caller's stop request is installed by the caller (the command, a worker), once; a run
    # without one installs its own while it trains.
    installed = nullcontext() if stop is not None else (stop := StopRequest()).installed()
    model.set_logger(make_logger(run_dir, None if resumed is None else resumed["env_steps"]))
    run_callback = RunCallback(setup, run_dir, report, stop, resumed)
    if isinstance(model, BehaviourCloning):
        # Its losses go to bc_loss.csv in the run folder (the algorithm knows no run folder).
        runs.start_losses(run_dir)
        model.loss_log = functools.partial(runs.append_loss, run_dir)
    status = "done"
    with installed:
        # SB3 counts on from model.num_timesteps when reset_num_timesteps is False, and takes
        # the steps still to do.
        if resumed is not None:
            # A checkpoint of an mtgc whose SB3 clock counted decisions: the clock is env steps.
            model.num_timesteps = resumed["env_steps"]
        budget = config.train.timesteps - (model.num_timesteps if resumed is not None else 0)
        try:
            if budget > 0 and run_callback.env_steps < config.train.timesteps:
                model.learn(
                    total_timesteps=budget, callback=run_callback, reset_num_timesteps=resumed is None
                )
        except KeyboardInterrupt:
            status = "interrupted"  # raised only where handlers cannot be installed (not the main thread)
        except (RuntimeError, ValueError, FloatingPointError) as exc:
            raise RunFailed(f"training failed at {run_callback.env_steps:,} env steps: {exc}") from exc
        if stop.signum is not None:
            status = "interrupted"
        if status == "done" and run_callback.last_eval_step != run_callback.env_steps:
            run_callback.run_eval()
        written = run_callback.save_checkpoint()
        if status == "done":
            run_callback.evaluate_best_fresh()
        # model.zip is the newest checkpoint's model: the same file under a second name.
        checkpoint.link_atomic(written.path / checkpoint.MODEL, run_dir / runs.MODEL)
        if (written.path / checkpoint.STATS).is_file():
            checkpoint.link_atomic(written.path / checkpoint.STATS, run_dir / runs.STATS)
    last = run_callback.last_eval
    summary = runs.RunSummary(
        run_dir=str(run_dir),
        preset=config.name,
        status=status,
        stopped_by=stop.name,
        strategy=config.relabel.label,
        seed=config.train.seed,
        steps=run_callback.env_steps,
        seconds=round(time.perf_counter() - run_callback.start, 2),
        final_eval_success=last.success if last else None,
        final_eval_step=run_callback.last_eval_step if last else None,
        **run_callback.evals.best.summary(config.train.eval_episodes, len(config.env.task_labels)),
        final_task_success={r.name: r.success for r in last.rows}
        if last and config.env.is_multitask
        else None,
        checkpoint={
            "path": str(written.path),
            "megabytes": round(written.bytes / 1e6, 3),
            "seconds": written.seconds,
        },
        checkpoint_seconds=round(run_callback.checkpoint_seconds, 3),
        resumed_at=run_callback.resumed_at,
    )
    runs.write_summary(run_dir, summary)
    run_callback.send(status)
    return summary


def run(
    setup: Setup,
    root: Path,
    report: Reporter | None = None,
    run_dir: Path | None = None,
    command: list[str] | None = None,
    stop: StopRequest | None = None,
) -> runs.RunSummary:
    """Create the run folder and train a prepared setup. A failed start leaves no folder behind."""
    run_dir = run_dir or runs.new_run_dir(root, setup.config)
    try:
        runs.write_run_files(run_dir, setup.config, command)
        # One writer per run folder, for as long as this run writes it.
        with folder_lock.hold(run_dir):
            if setup.encoding is not None and setup.encoding.kind == "language":
                runs.save_task_encoding(run_dir, setup.encoding)
            return train(setup, run_dir, report, stop)
    except BaseException:
        runs.remove_unfinished(run_dir)
        raise
    finally:
        setup.close()


def _resume(
    setup: Setup,
    plan: checkpoint.ResumePlan,
    report: Reporter | None = None,
    command: list[str] | None = None,
    stop: StopRequest | None = None,
) -> runs.RunSummary:
    """Go on with the run of ``plan`` from its newest whole checkpoint, to ``setup.config``'s total.

    ``setup`` is prepared from the same config (``plan.config``); its model is replaced by the
    checkpoint's. The run folder is never removed here, whatever happens: it holds a run.
    """
    run_dir = plan.run_dir
    try:
        # One writer per run folder: taken before the restore rewinds anything in it.
        with folder_lock.hold(run_dir):
            restored = checkpoint.restore(plan, setup.model, setup.env, setup.eval_env, warn)
            setup.model = restored.model
            runs.record_resume(run_dir, setup.config, command)
            return train(setup, run_dir, report, stop, resumed=restored.trainer)
    finally:
        setup.close()


Ready = Callable[[Setup, "checkpoint.ResumePlan | None"], AbstractContextManager[Any]]
"""Called once the run is prepared, before it trains; what it returns is held around training
(the CLI prints its header line and opens its live view there)."""


def start_or_resume(
    config: RunConfig,
    *,
    root: Path | None = None,
    run_dir: Path | None = None,
    resume: bool = False,
    extend: bool = False,
    report: Reporter | None = None,
    command: list[str] | None = None,
    stop: StopRequest | None = None,
    ready: Ready | None = None,
) -> runs.RunSummary:
    """A new run (into ``run_dir``, or a new folder under ``root``), or with ``resume`` the run in
    ``run_dir`` from its newest whole checkpoint; returns its summary.

    The one start and resume path of ``mtgc train`` and of every compare backend. A resume is
    planned (and refused) before anything is built; a resumed language run keeps the task vectors
    it was trained with (its folder's ``task_encoding.json``): its descriptions are not embedded
    again, and no sentence encoder is loaded. ``extend``: the total came from ``--timesteps``.
    """
    if run_dir is None and (resume or root is None):
        raise ValueError("a resume needs run_dir, a new run run_dir or root")
    plan = None
    encoding = None
    if resume:
        assert run_dir is not None
        plan = checkpoint.plan_resume(run_dir, config, extend=extend)
        encoding = runs.read_task_encoding(run_dir, config)
    # Envs and model are built (and bad input reported) before anything is written.
    setup = prepare(config, encoding=encoding)
    try:
        around = ready(setup, plan) if ready is not None else nullcontext()
    except BaseException:
        setup.close()
        raise
    with around:
        if plan is not None:
            return _resume(setup, plan, report=report, command=command, stop=stop)
        folder_root = root if root is not None else run_dir.parent  # type: ignore[union-attr]
        return run(setup, folder_root, report=report, run_dir=run_dir, command=command, stop=stop)


def resume_config(
    run_dir: Path,
    preset: str | None = None,
    *,
    timesteps: int | None = None,
    seed: int | None = None,
    strategy: str | None = None,
    sets: list[str] | None = None,
) -> RunConfig:
    """The config to resume ``run_dir`` under: the run's own (or ``preset``), with the overrides.

    Checked before anything is built: ``run_dir`` must be a run folder that no process is
    writing. :func:`start_or_resume` then checks that the config is the run's.
    """
    checkpoint.check_run_folder(run_dir)
    # Another process still writing the run: one line, before anything is built or printed.
    folder_lock.check_free(run_dir)
    source = preset or str(run_dir / runs.CONFIG)
    return presets.load(source, timesteps=timesteps, seed=seed, strategy=strategy, sets=sets or [])
