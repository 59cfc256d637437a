"""Running a compare: the grid on a backend, then its aggregate and outputs. Reports what it does
through a :class:`Display` (the CLI's prints; the default shows nothing)."""

from __future__ import annotations

import contextlib
import time
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from mtgc_cli import backends, folder_lock
from mtgc_cli.compare.grid import cell_state, expand, run_grid
from mtgc_cli.compare.report import aggregate, write_outputs
from mtgc_cli.errors import RunFailed, UsageError
from mtgc_cli.notices import Snapshot


class Display(Protocol):
    """What a compare shows while it runs: a header as the grid starts (what ``begin`` returns is
    held while the cells run, e.g. a live view), each cell's progress, each failed cell."""

    def begin(
        self, preset: str, strategies: list[str], n_seeds: int, n_runs: int, where: str, folder: Path
    ) -> AbstractContextManager[Any]: ...

    def update(self, snapshot: Snapshot) -> None: ...

    def failed(self, failure: str) -> None: ...


class Silent:
    """The default display: shows nothing."""

    def begin(
        self, preset: str, strategies: list[str], n_seeds: int, n_runs: int, where: str, folder: Path
    ) -> AbstractContextManager[Any]:
        return nullcontext()

    def update(self, snapshot: Snapshot) -> None:
        pass

    def failed(self, failure: str) -> None:
        pass


@dataclass(frozen=True)
class CompareResult:
    folder: Path
    rows: list[dict[str, Any]]
    wall_seconds: float
    stopped_by: int | None  # the signal that stopped the grid; None when every cell ran


def compare(
    preset: str,
    strategies: list[str],
    n_seeds: int,
    workers: int | None,
    root: Path,
    name: str | None = None,
    timesteps: int | None = None,
    sets: list[str] | None = None,
    command: list[str] | None = None,
    baseline: str | None = None,
    backend: str = "local",
    address: str | None = None,
    gpus_per_cell: float = 0.0,
    copy_back: bool = False,
    display: Display | None = None,
) -> CompareResult:
    """Run the grid on ``backend`` and aggregate it; ``baseline`` (default: the first strategy) is
    the strategy that every other one is compared with, seed by seed.

    ``workers``: the local backend's processes (default 2), a local Ray cluster's CPUs (default
    2), or at most this many cells at once on a running Ray cluster (``address``; default: as many
    as its CPUs take). ``display``: what the compare shows while it runs (default: nothing).
    """
    display = display or Silent()
    # Ray missing, or an option of the other backend: one line before anything is built.
    runner = backends.make(backend, workers, address, gpus_per_cell, copy_back)
    if baseline is not None and baseline not in strategies:
        raise UsageError(f"--baseline {baseline} is not among --strategies; valid: {', '.join(strategies)}")
    folder, cells = expand(preset, strategies, n_seeds, root, name, timesteps, sets)
    # Check that the env supports every strategy before any worker starts.
    from mtgc_cli.training.setup import prepare

    for strategy in dict.fromkeys(cell.strategy for cell in cells):
        prepare(next(c for c in cells if c.strategy == strategy).config).close()
    # Held until the outputs are written (the stack closes after them).
    with contextlib.ExitStack() as held:
        # A cluster that cannot be reached is reported before any run folder is touched.
        with runner.started(folder):
            # One compare per folder (the cells' runs each hold their own folder's lock too).
            folder.mkdir(parents=True, exist_ok=True)
            held.enter_context(folder_lock.hold(folder, "compare folder"))
            # Before anything runs or prints: a folder holding another config is an error, not overwritten.
            states = {cell.run_dir: cell_state(cell) for cell in cells}
            start = time.perf_counter()
            with display.begin(
                cells[0].config.name, strategies, n_seeds, len(cells), runner.describe(), folder
            ):
                failures, stopped = run_grid(
                    cells, states, runner, display.update, command or ["mtgc", "compare"]
                )
            wall = time.perf_counter() - start
        if stopped is not None:
            # Nothing is aggregated from a grid cut short; the same command goes on with it.
            return CompareResult(folder, [], wall, stopped)
        rows, per_run = aggregate(cells, baseline)
        record = runner.record()
        write_outputs(folder, cells[0].config.name, rows, per_run, wall, record.get("workers"), record)
        if failures:
            for failure in failures:
                display.failed(failure)
            raise RunFailed(f"{len(failures)} of {len(cells)} runs failed; the others are in {folder}")
        return CompareResult(folder, rows, wall, None)
