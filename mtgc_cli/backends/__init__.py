"""Where the cells of a compare grid run: one small interface (``base``), two implementations.

``compare.run_grid`` hands each cell that is not done to a :class:`Backend` as a :class:`Job`;
``local`` runs the cells in processes on this machine (the default), ``ray`` runs them as tasks
on a Ray cluster (``ray_cluster.py``; Ray is an optional extra). :func:`make` builds one by name.
"""

from __future__ import annotations

from mtgc_cli.backends.base import Backend, Event, Finished, Job, run_job
from mtgc_cli.errors import UsageError

__all__ = ["NAMES", "Backend", "Event", "Finished", "Job", "make", "run_job"]

NAMES = ("local", "ray")


def make(
    name: str,
    workers: int | None,
    address: str | None = None,
    gpus_per_cell: float = 0.0,
    copy_back: bool = False,
) -> Backend:
    """The backend called ``name``; its options are checked here, before anything is built."""
    if name not in NAMES:
        raise UsageError(f"--backend {name}: unknown backend; valid: {', '.join(NAMES)}")
    if workers is not None and workers <= 0:
        raise UsageError(f"--workers must be at least 1, got {workers}")
    if name == "local":
        for option, given in (
            ("--address", address is not None),
            ("--gpus-per-cell", gpus_per_cell != 0),
            ("--copy-back", copy_back),
        ):
            if given:
                raise UsageError(f"{option} is an option of the Ray backend; valid: --backend ray {option}")
        from mtgc_cli.backends.local import LocalBackend

        return LocalBackend(workers or 2)
    from mtgc_cli.backends.ray_cluster import RayBackend

    return RayBackend(address=address, workers=workers, gpus_per_cell=gpus_per_cell, copy_back=copy_back)
