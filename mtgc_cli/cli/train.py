"""`mtgc train`: one run from a preset, or a stopped run resumed from its checkpoint."""

from __future__ import annotations

from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from mtgc_cli import presets
from mtgc_cli.cli import options
from mtgc_cli.cli.options import invocation
from mtgc_cli.cli.render import ProgressView, resume_line, stderr, stdout, summary_table
from mtgc_cli.errors import UsageError

if TYPE_CHECKING:
    from mtgc_cli.checkpoint import ResumePlan


def train(
    preset: Annotated[
        str | None,
        typer.Option("--preset", "-p", help="A shipped preset name (see `mtgc presets`) or a YAML path."),
    ] = None,
    resume: Annotated[
        Path | None,
        typer.Option(
            "--resume",
            metavar="RUN_DIR",
            help="Go on with a stopped run from its newest whole checkpoint, to its total "
            "(--timesteps: a new total, which also extends a finished run).",
        ),
    ] = None,
    timesteps: options.Timesteps = None,
    seed: options.Seed = None,
    strategy: Annotated[
        str | None,
        typer.Option(
            help="Relabel strategy: none, final, future, episode, [goal+]random-task, [goal+]best-task."
        ),
    ] = None,
    sets: options.Sets = None,
    runs_dir: options.RunsDir = Path("runs"),
) -> None:
    """Train an agent; writes runs/<preset>/<UTC time>-s<seed>/ and prints a summary table.

    Ctrl-C or SIGTERM stops with a whole checkpoint (exit 130 or 143); --resume goes on from it.
    """
    from mtgc_cli import training

    _use_the_cores_we_may_run_on()
    if resume is None and preset is None:
        raise UsageError("give --preset NAME for a new run or --resume RUN_DIR; valid: see `mtgc presets`")
    overrides = {"timesteps": timesteps, "seed": seed, "strategy": strategy, "sets": sets or []}
    if resume is not None:
        # The run's own config, or the preset given, with any overrides: it must be the run's.
        config = training.resume_config(resume, preset, **overrides)
    else:
        assert preset is not None
        config = presets.load(preset, **overrides)
    stop = training.StopRequest()
    view = ProgressView()

    def ready(setup: training.Setup, plan: ResumePlan | None) -> AbstractContextManager[object]:
        # Envs and model are built (and bad input reported) before anything is printed.
        what = f"resuming {resume} at {plan.step:,} env steps" if plan else config.name
        stderr.print(
            f"[bold]mtgc train[/] {what}: {config.env.label}, {config.algo.name}, "
            f"relabel {config.relabel.label}, {config.train.timesteps:,} steps, seed {config.train.seed}",
            highlight=False,
        )
        return view.live()

    # Installed once, until the command ends: a second Ctrl-C after training returned must not
    # cut the summary and the resume line short.
    with stop.installed():
        summary = training.start_or_resume(
            config,
            root=runs_dir,
            run_dir=resume,
            resume=resume is not None,
            extend=timesteps is not None,
            report=view.update,
            command=invocation(),
            stop=stop,
            ready=ready,
        )
        stdout.print(summary_table(summary))
        if summary.status != "done":
            resume_line(summary)
            raise typer.Exit(stop.exit_code if stop.signum is not None else 130)


def _use_the_cores_we_may_run_on() -> None:
    """One torch thread per core this process may run on, unless OMP_NUM_THREADS says otherwise.

    torch sizes its pool from the machine's cores, not from the process's affinity: under
    `taskset -c 1` it would run two threads on one core, and threads that outnumber their cores
    made training 20-60x slower here. On an idle 2-core machine both threads speed the gradient
    step up about 1.6x. `compare` workers set one thread each themselves.
    """
    import os

    import torch

    if "OMP_NUM_THREADS" in os.environ or not hasattr(os, "sched_getaffinity"):
        return
    torch.set_num_threads(max(1, len(os.sched_getaffinity(0))))
