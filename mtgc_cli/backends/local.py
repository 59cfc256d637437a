"""The local backend: the cells run in ``workers`` processes on this machine.

Workers use one torch thread each: two processes with torch's default thread count on two cores
ran 20-60x slower than one thread each. Progress comes back through a plain multiprocessing
queue; a stop is passed on to every worker as SIGTERM, which its handler turns into a stop with a
whole checkpoint.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import signal
import time
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path
from typing import Any

from mtgc_cli.backends.base import Backend, Event, Finished, Job, run_job
from mtgc_cli.runs import RunSummary

# Set in each worker process by _worker_init: the queue progress goes to, and the stop request
# its signal handlers record (for the worker's whole life, so that a signal between two runs, or
# while one is being set up, is not lost).
_progress: Any = None
_stop: Any = None


def _worker_init(progress: Any) -> None:
    import torch

    from mtgc_cli.stop import StopRequest

    global _progress, _stop
    torch.set_num_threads(1)
    _progress = progress
    _stop = StopRequest()
    _stop.install()


def _run_cell(job: Job) -> RunSummary | None:
    """Runs in a worker process: one cell, its progress sent through the queue."""
    return run_job(job, job.run_dir, _progress.put, _stop)


class LocalBackend(Backend):
    name = "local"

    def __init__(self, workers: int):
        self.workers = workers
        self.pool: ProcessPoolExecutor | None = None
        self.progress: Any = None
        self.futures: dict[Future[RunSummary | None], Job] = {}
        self.signalled: set[int] = set()

    def describe(self) -> str:
        return f"{self.workers} workers"

    def record(self) -> dict[str, Any]:
        return {"name": self.name, "workers": self.workers}

    def start(self, folder: Path) -> None:
        """Nothing to do yet: the processes start with the first cell (none if every cell is done)."""

    def submit(self, job: Job) -> None:
        if self.pool is None:
            context = multiprocessing.get_context("spawn")
            # A plain queue handed to each worker as it starts (no manager process: a SIGTERM to
            # the whole process group would kill a manager, and every worker's next report with it).
            self.progress = context.Queue()
            self.pool = ProcessPoolExecutor(
                self.workers, mp_context=context, initializer=_worker_init, initargs=(self.progress,)
            )
        self.futures[self.pool.submit(_run_cell, job)] = job

    def poll(self, timeout: float) -> list[Event]:
        events: list[Event] = []
        while self.progress is not None:
            try:
                events.append(self.progress.get_nowait())
            except queue.Empty:
                break
        for future in [f for f in self.futures if f.done()]:
            job = self.futures.pop(future)
            if future.cancelled():
                events.append(Finished(job.name, started=False))
                continue
            try:
                future.result()
            except Exception as exc:  # a worker's failure must not stop the other cells
                events.append(Finished(job.name, error=str(exc)))
            else:
                events.append(Finished(job.name))
        time.sleep(timeout)
        return events

    def stop(self, signum: int) -> None:
        for future in self.futures:
            future.cancel()  # those not yet handed to a worker
        # Every worker saves and stops; a worker started late is told as it appears.
        for child in multiprocessing.active_children():
            if child.pid is not None and child.pid not in self.signalled:
                self.signalled.add(child.pid)
                os.kill(child.pid, signal.SIGTERM)

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True)
            self.pool = None
