"""``compare.run_grid`` against an in-process backend: mtgc's own backend interface, implemented by
a tiny class that runs nothing. Fast, beside the end-to-end grids of test_comparison_cli.py."""

from __future__ import annotations

import signal
from pathlib import Path

from mtgc_cli.backends import Backend, Event, Finished, Job
from mtgc_cli.compare import expand, run_grid
from mtgc_cli.notices import Snapshot


class InProcessBackend(Backend):
    """Finishes one submitted job per poll, after its last progress snapshot; ``fail`` names the
    cells that fail. A stop is recorded; queued jobs still end (as stopped cells do)."""

    name = "in-process"

    def __init__(self, fail: set[str] | None = None) -> None:
        self.fail = fail or set()
        self.queued: list[Job] = []
        self.submitted: list[Job] = []
        self.stopped: list[int] = []

    def start(self, folder: Path) -> None:
        pass

    def describe(self) -> str:
        return "in this process"

    def submit(self, job: Job) -> None:
        self.queued.append(job)
        self.submitted.append(job)

    def poll(self, timeout: float) -> list[Event]:
        if not self.queued:
            return []
        job = self.queued.pop(0)
        total = job.config["train"]["timesteps"]
        error = "boom" if job.name in self.fail else None
        return [Snapshot(job.name, total, total, status="done"), Finished(job.name, error=error)]

    def stop(self, signum: int) -> None:
        self.stopped.append(signum)

    def close(self) -> None:
        pass


def _grid(tmp_path: Path):
    return expand("bit-flip", ["none", "future"], 2, tmp_path / "runs", timesteps=500)


def test_run_grid_submits_only_unfinished_cells_and_reports_each_state(tmp_path: Path) -> None:
    _, cells = _grid(tmp_path)
    states = {
        cells[0].run_dir: "done",
        cells[1].run_dir: "resume",
        cells[2].run_dir: "new",
        cells[3].run_dir: "new",
    }
    backend = InProcessBackend(fail={cells[3].run_dir.name})
    shown: list[Snapshot] = []
    failures, stopped = run_grid(cells, states, backend, shown.append, ["mtgc", "compare"])

    assert stopped is None
    assert [job.name for job in backend.submitted] == [c.run_dir.name for c in cells[1:]]
    assert [job.resume for job in backend.submitted] == [True, False, False]
    # Each job carries its cell's own config and says which cell it is in command.txt.
    assert backend.submitted[0].config["train"]["seed"] == cells[1].seed
    assert (
        backend.submitted[0].command[-1]
        == f"# this run: --strategy {cells[1].strategy} --seed {cells[1].seed}"
    )
    assert failures == [f"{cells[3].run_dir.name}: boom"]
    statuses = [(s.run, s.status) for s in shown]
    assert statuses[:4] == [
        (cells[0].run_dir.name, "skipped (done)"),
        (cells[1].run_dir.name, "queued (resume)"),
        (cells[2].run_dir.name, "queued"),
        (cells[3].run_dir.name, "queued"),
    ]
    assert (cells[3].run_dir.name, "failed") == statuses[-1]
    assert backend.stopped == []


def test_run_grid_with_every_cell_done_starts_nothing(tmp_path: Path) -> None:
    _, cells = _grid(tmp_path)
    backend = InProcessBackend()
    shown: list[Snapshot] = []
    failures, stopped = run_grid(
        cells, dict.fromkeys((c.run_dir for c in cells), "done"), backend, shown.append, []
    )
    assert (failures, stopped, backend.submitted) == ([], None, [])
    assert {s.status for s in shown} == {"skipped (done)"}


def test_a_signal_during_the_grid_is_passed_to_the_backend(tmp_path: Path) -> None:
    _, cells = _grid(tmp_path)
    backend = InProcessBackend()
    seen: list[Snapshot] = []

    def report(snapshot: Snapshot) -> None:
        seen.append(snapshot)
        if snapshot.status == "done" and len([s for s in seen if s.status == "done"]) == 1:
            # What Ctrl-C does while the grid runs: run_grid's handler records it.
            signal.raise_signal(signal.SIGINT)

    failures, stopped = run_grid(cells, dict.fromkeys((c.run_dir for c in cells), "new"), backend, report, [])
    assert stopped == signal.SIGINT and failures == []
    assert backend.stopped and set(backend.stopped) == {signal.SIGINT}
