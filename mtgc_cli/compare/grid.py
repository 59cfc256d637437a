"""The grid of a compare: its cells (relabel strategy x seed, each a run folder), which of them
are new, done or to resume, and running them on a backend."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from mtgc_cli import presets, runs
from mtgc_cli.backends import Backend, Job
from mtgc_cli.config import RunConfig
from mtgc_cli.errors import UsageError, excerpt
from mtgc_cli.names import check_name
from mtgc_cli.notices import Reporter, Snapshot


@dataclass(frozen=True)
class Cell:
    strategy: str
    seed: int
    config: RunConfig
    run_dir: Path


def expand(
    preset: str,
    strategies: list[str],
    n_seeds: int,
    root: Path,
    name: str | None = None,
    timesteps: int | None = None,
    sets: list[str] | None = None,
) -> tuple[Path, list[Cell]]:
    """The grid's cells, each a validated RunConfig and its run folder."""
    if not any(strategies):
        raise UsageError("--strategies is empty; valid: a comma-separated list such as none,future")
    if not all(strategies):
        raise UsageError(
            f"--strategies {excerpt(','.join(strategies))} has an empty entry; valid: a "
            "comma-separated list of strategies such as none,future"
        )
    if len(set(strategies)) != len(strategies):
        twice = next(s for s in strategies if strategies.count(s) > 1)
        raise UsageError(
            f"--strategies lists {twice} twice: {excerpt(','.join(strategies))}; valid: each strategy once"
        )
    if n_seeds <= 0:
        raise UsageError(f"--seeds is {n_seeds}; valid: a positive number of seeds, e.g. --seeds 3")
    if name is not None:
        check_name(name, "--name")  # runs/compare/<name>/: one folder inside --runs-dir
    base = presets.load(preset, timesteps=timesteps, sets=sets or [])
    folder = root / "compare" / (name or base.name)
    cells = []
    for strategy in strategies:
        for i in range(n_seeds):
            seed = base.train.seed + i
            config = presets.load(preset, timesteps=timesteps, seed=seed, strategy=strategy, sets=sets or [])
            cells.append(Cell(strategy, seed, config, folder / f"{strategy}-s{seed}"))
    return folder, cells


def cell_state(cell: Cell) -> str:
    """``new``, ``done`` (finished with this very config), or ``resume`` (stopped, with a checkpoint).

    A folder made with another config raises: it is someone's result and is never overwritten.
    A stopped run goes on from its newest whole checkpoint; one that has none (killed before its
    first) is moved aside and started over.
    """
    if not cell.run_dir.exists():
        return "new"
    config_file = cell.run_dir / runs.CONFIG
    if config_file.is_file() and config_file.read_text() != cell.config.to_yaml():
        raise UsageError(
            f"{cell.run_dir} holds a run with a different config; pass --name to compare into a new folder"
        )
    summary = runs.read_summary(cell.run_dir)
    if summary is not None and summary.status == "done":
        return "done"
    from mtgc_cli import checkpoint

    try:
        checkpoint.plan_resume(cell.run_dir, cell.config, extend=False)
        return "resume"
    except UsageError:
        pass
    aside = cell.run_dir.with_name(f"{cell.run_dir.name}.unfinished-{time.strftime('%Y%m%dT%H%M%S')}")
    cell.run_dir.rename(aside)
    return "new"


def jobs(cells: list[Cell], states: dict[Path, str], command: list[str]) -> list[Job]:
    """The cells not yet finished, as jobs for a backend."""
    return [
        Job(
            name=cell.run_dir.name,
            run_dir=cell.run_dir,
            config=cell.config.model_dump(mode="json"),
            command=[*command, f"# this run: --strategy {cell.strategy} --seed {cell.seed}"],
            resume=states[cell.run_dir] == "resume",
        )
        for cell in cells
        if states[cell.run_dir] != "done"
    ]


def run_grid(
    cells: list[Cell], states: dict[Path, str], backend: Backend, report: Reporter, command: list[str]
) -> tuple[list[str], int | None]:
    """Run the cells not yet finished on ``backend`` (started), its progress sent to ``report``.

    Returns the failures' messages and the signal that stopped the grid (None if none did). On
    SIGINT or SIGTERM the backend is told: each running cell stops with a whole checkpoint,
    queued cells do not start, and running the same command again goes on from there.
    """
    from mtgc_cli.stop import StopRequest

    for cell in cells:
        total = cell.config.train.timesteps
        if states[cell.run_dir] == "done":
            report(Snapshot(cell.run_dir.name, total, total, status="skipped (done)"))
        else:
            status = "queued (resume)" if states[cell.run_dir] == "resume" else "queued"
            report(Snapshot(cell.run_dir.name, 0, total, status=status))
    todo = jobs(cells, states, command)
    if not todo:
        return [], None
    totals = {cell.run_dir.name: cell.config.train.timesteps for cell in cells}
    failures: list[str] = []
    stop = StopRequest()
    with stop.installed():
        for job in todo:
            backend.submit(job)
        pending = {job.name for job in todo}
        while pending:
            if stop.signum is not None:
                backend.stop(stop.signum)
            for event in backend.poll(0.2):
                if isinstance(event, Snapshot):
                    report(event)
                    continue
                pending.discard(event.name)
                if event.error is not None:
                    failures.append(f"{event.name}: {event.error}")
                    report(Snapshot(event.name, 0, totals[event.name], status="failed"))
        for event in backend.poll(0):  # the last progress sent before each cell ended
            if isinstance(event, Snapshot):
                report(event)
    return failures, stop.signum
