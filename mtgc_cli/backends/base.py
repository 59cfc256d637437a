"""The interface every backend implements, and :func:`run_job`, a cell run in this process.

``compare.run_grid`` hands each cell that is not done to a :class:`Backend` as a :class:`Job`,
and polls the backend for events: a :class:`~mtgc_cli.notices.Snapshot` (a cell's progress, for
the live view) or a :class:`Finished` (a cell's run ended, failed, or never started because the
grid was stopped). ``local`` runs the cells in processes on this machine (the default); ``ray``
runs them as tasks on a Ray cluster (``ray_cluster.py``; Ray is an optional extra).

Either way a cell is one normal run (``training.start_or_resume``, as `mtgc train`) into its run folder, so
the grid, the statistics and the plots (``compare/``) do not know where the cells ran.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mtgc_cli.notices import Reporter, Snapshot

if TYPE_CHECKING:
    from mtgc_cli.runs import RunSummary
    from mtgc_cli.stop import StopRequest


@dataclass(frozen=True)
class Job:
    """One grid cell to run; plain data, so it pickles to any process or node."""

    name: str  # the run folder's name, ``<strategy>-s<seed>``; also its row in the live view
    run_dir: Path  # as the driver names it: absolute, or relative to the driver's working directory
    config: dict[str, Any]  # RunConfig.model_dump(mode="json")
    command: list[str]  # recorded in the run's command.txt
    resume: bool  # go on from the run folder's newest whole checkpoint


@dataclass(frozen=True)
class Finished:
    """A cell is over: its run ended (done, or stopped with a whole checkpoint) or it failed."""

    name: str
    error: str | None = None  # the failure's one-line message; None when the run ended normally
    started: bool = True  # False: the grid was stopped before this cell started


Event = Snapshot | Finished


class Backend(ABC):
    """Runs jobs somewhere and reports on them. ``start`` before the first ``submit``, ``close``
    at the end (also after a failure): ``with backend.started(folder): ...``."""

    name: str

    @abstractmethod
    def start(self, folder: Path) -> None:
        """Get ready to run cells whose run folders are in ``folder`` (the compare folder)."""

    @abstractmethod
    def describe(self) -> str:
        """Where the cells run, for the header line: ``2 workers``, ``ray cluster at ...``."""

    @abstractmethod
    def submit(self, job: Job) -> None:
        """Queue a cell; it starts when the backend has room."""

    @abstractmethod
    def poll(self, timeout: float) -> list[Event]:
        """Progress and finished cells since the last call; waits up to ``timeout`` seconds when
        there is nothing to report."""

    @abstractmethod
    def stop(self, signum: int) -> None:
        """Stop the grid: each running cell stops at its next env step with a whole checkpoint and
        queued cells do not start. Called repeatedly while cells are still running."""

    @abstractmethod
    def close(self) -> None:
        """Release what ``start`` and ``submit`` took (processes, a cluster connection)."""

    def started(self, folder: Path) -> _Started:
        return _Started(self, folder)

    def record(self) -> dict[str, Any]:
        """What compare.json records about the backend."""
        return {"name": self.name}


class _Started:
    def __init__(self, backend: Backend, folder: Path):
        self.backend, self.folder = backend, folder

    def __enter__(self) -> Backend:
        self.backend.start(self.folder)
        return self.backend

    def __exit__(self, *exc: object) -> None:
        self.backend.close()


def run_job(job: Job, run_dir: Path, report: Reporter, stop: StopRequest) -> RunSummary | None:
    """Run one cell in this process, in ``run_dir`` (``job.run_dir``, or a worker's local copy):
    a normal training run, or its resume from the newest whole checkpoint, through the same
    :func:`~mtgc_cli.training.start_or_resume` as ``mtgc train``. ``stop`` is installed by the
    caller (the worker)."""
    from mtgc_cli.config import RunConfig
    from mtgc_cli.training import start_or_resume

    if stop.signum is not None:
        return None  # the grid is stopping: not started
    config = RunConfig.model_validate(job.config)
    return start_or_resume(
        config, run_dir=run_dir, resume=job.resume, report=report, command=job.command, stop=stop
    )
