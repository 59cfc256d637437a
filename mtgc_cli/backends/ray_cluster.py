"""The Ray backend: each cell runs as a Ray task, on a running cluster or on a local one.

Each task reserves one CPU (and ``--gpus-per-cell`` GPUs) and runs torch on one thread. Without
``--address`` mtgc starts a local cluster with ``workers`` CPUs and shuts it down at the end.

Progress and the stop request go through one small actor, the board: a running cell posts its
snapshot every half second and gets back whether the grid is stopping (then it stops at its next
env step with a whole checkpoint, as on SIGTERM). No signal has to reach another node.

Run folders are written in place where the worker sees the compare folder: always on a local
cluster; on a running cluster, where a probe file that the driver writes into the compare folder
is visible at the same path (a shared filesystem). Elsewhere, or with ``--copy-back``, the task
runs in a temporary folder on its node and returns the run folder as a tar, which the driver
unpacks into the compare folder. A stopped cell on such a node resumes from a copy the driver
sends it.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from mtgc_cli.backends.base import Backend, Event, Finished, Job, run_job
from mtgc_cli.backends.transfer import pack, relocate_summary, replace_run_dir, unpack
from mtgc_cli.errors import RunFailed, UsageError
from mtgc_cli.notices import Snapshot

INSTALL = "pip install 'mtgc[ray]' (in a checkout: pip install -e \".[ray]\")"
ADDRESSES = "valid: a running cluster's head as host:port (what `ray start --head` prints), or auto"
PROBE = ".mtgc-ray-probe-"
LOCAL_CPUS = 2


def import_ray() -> Any:
    """The ``ray`` module, or one line saying how to install it."""
    try:
        import ray
    except ImportError:
        raise UsageError(f"--backend ray needs Ray, which is not installed; install it: {INSTALL}") from None
    return ray


def check_address(address: str) -> None:
    """A malformed or unreachable ``--address`` is bad input: one line, before Ray retries for minutes."""
    if address == "auto":
        return  # Ray finds the cluster this node belongs to, or says there is none
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise UsageError(f"--address {address}: not host:port; {ADDRESSES}")
    try:
        grpc = _speaks_grpc(host.strip("[]"), int(port))
    except OSError as exc:
        raise UsageError(
            f"--address {address}: no Ray cluster answers there ({exc.strerror or exc}); {ADDRESSES}"
        ) from None
    if not grpc and not os.environ.get("RAY_USE_TLS"):
        raise UsageError(
            f"--address {address}: something answers there, but not a Ray head (the dashboard's port, "
            f"8265, is not the cluster's); {ADDRESSES}"
        )


def _speaks_grpc(host: str, port: int) -> bool:
    """Whether the server answers an HTTP/2 connection preface with a SETTINGS frame, as the gRPC
    server of a Ray head does. An HTTP server (the dashboard) does not, and Ray would retry it for
    minutes before giving up."""
    with socket.create_connection((host, port), timeout=5) as conn:
        conn.settimeout(5)
        conn.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0]))
        try:
            frame = conn.recv(9)
        except TimeoutError:
            return False
    return len(frame) >= 4 and frame[3] == 4  # a frame header: length (3 bytes), then its type


@contextmanager
def _stderr_held(into: list[str]) -> Iterator[None]:
    """Hold what is written to file descriptor 2 (Ray's C++ core logs there directly); append it
    to ``into`` at the end."""
    sys.stderr.flush()
    with tempfile.TemporaryFile() as held:
        saved = os.dup(2)
        os.dup2(held.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            into.append(held.read().decode(errors="replace"))


class _Board:
    """A Ray actor between the driver and the running cells: their progress, and the stop request."""

    def __init__(self) -> None:
        self.snapshots: list[Snapshot] = []
        self.signum: int | None = None

    def post(self, snapshot: Snapshot) -> int | None:
        self.snapshots.append(snapshot)
        return self.signum

    def take(self) -> list[Snapshot]:
        taken, self.snapshots = self.snapshots, []
        return taken

    def stop(self, signum: int) -> None:
        self.signum = signum

    def stopping(self) -> int | None:
        return self.signum


def _sees(folder: Path, probe: str | None) -> bool:
    """Whether this node sees the driver's compare folder at the same path."""
    if probe is None:
        return True  # a local cluster: the driver's own filesystem
    try:
        return (folder / f"{PROBE}{probe}").read_text() == probe
    except OSError:
        return False


def _run_task(
    job: Job, board: Any, cwd: str, probe: str | None, copy_back: bool, files: bytes | None
) -> dict[str, Any]:
    """A Ray task: one cell, in place or in a temporary folder returned as a tar."""
    import ray
    import torch

    from mtgc_cli.stop import StopRequest

    # Ray gives a task OMP_NUM_THREADS=1 but torch may already run its default thread count;
    # two such processes on two cores trained 20-60x slower.
    torch.set_num_threads(1)
    if ray.get(board.stopping.remote()) is not None:
        return {"started": False}
    driver_dir = Path(cwd) / job.run_dir  # job.run_dir may be relative to the driver's directory
    in_place = not copy_back and _sees(driver_dir.parent, probe)
    if not in_place and job.resume and files is None:
        return {"need_files": True}  # the driver sends the stopped run folder
    stop = StopRequest()
    posted: list[Any] = []  # the last post, whose answer (stopping or not) is read at the next one
    skipped: list[Snapshot] = []  # the newest snapshot not posted, sent when the run ends

    def report(snapshot: Snapshot) -> None:
        # Never waits for the board: a blocking round trip every half second cost a contended core
        # a large share of its training time.
        skipped[:] = [snapshot]
        if posted:
            done, _ = ray.wait(posted, timeout=0)
            if not done:
                return  # the board is behind: this one waits for the next report or the end
            try:
                signum = ray.get(posted.pop())
            except Exception:  # the driver is gone (its actor with it): stop with a checkpoint
                signum = signal.SIGTERM
            if signum is not None and stop.signum is None:
                stop(signum, None)
        posted.append(board.post.remote(snapshot))
        skipped.clear()

    previous = os.getcwd()
    tmp: Path | None = None
    if in_place:
        run_dir = job.run_dir  # relative to cwd, or absolute
        # Relative paths in the config (a dataset's data_dir) mean what they mean to the driver;
        # its directory may not be shared where only the runs' filesystem is (then run_dir is
        # absolute).
        if Path(cwd).is_dir():
            os.chdir(cwd)
    else:
        tmp = Path(tempfile.mkdtemp(prefix="mtgc-cell-"))
        run_dir = tmp / job.name
        if files is not None:
            unpack(files, run_dir)
    error = None
    try:
        with stop.installed():  # once, for the cell (a no-op off the main thread)
            run_job(job, run_dir, report, stop)
    except Exception as exc:  # one cell's failure is reported, the others go on
        error = str(exc) or type(exc).__name__
    finally:
        os.chdir(previous)
    if skipped:  # the run's last snapshot (done, interrupted) reaches the view before the result
        with suppress(Exception):
            ray.get(board.post.remote(skipped[0]), timeout=30)
    if tmp is None:
        return {"error": error}
    try:
        if not run_dir.is_dir():
            return {"error": error}  # a failed start leaves no folder, as locally
        relocate_summary(run_dir, job.run_dir)
        return {"error": error, "files": pack(run_dir)}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _connect_failure(address: str, exc: Exception, logged: str) -> str:
    """One line for a cluster that answered but would not take this driver."""
    cause = f"{exc} {exc.__cause__ or ''} {logged}"
    if "InvalidAuthToken" in cause or "AuthenticationError" in cause:
        return (
            f"--address {address}: the cluster refused this command's authentication token; valid: "
            "RAY_AUTH_MODE=token and the cluster's token in RAY_AUTH_TOKEN or ~/.ray/auth_token "
            "(`ray get-auth-token` on the head prints it)"
        )
    return f"--address {address}: {_message(exc)}; {ADDRESSES}"


def _message(exc: Exception) -> str:
    """One line for what Ray raises when a task dies (a crashed or killed worker, a lost node)."""
    cause = getattr(exc, "cause", None)
    text = str(cause if isinstance(cause, BaseException) else exc).strip()
    return (text.splitlines() or [type(exc).__name__])[0]


class RayBackend(Backend):
    name = "ray"

    def __init__(self, address: str | None, workers: int | None, gpus_per_cell: float, copy_back: bool):
        self.ray = import_ray()  # first: without Ray, nothing else matters
        if address is not None:
            check_address(address)
        if gpus_per_cell < 0 or (gpus_per_cell > 1 and not float(gpus_per_cell).is_integer()):
            raise UsageError(
                f"--gpus-per-cell {gpus_per_cell:g}: Ray takes a fraction of one GPU or a whole number; "
                "valid: 0 (the default), 0.25, 0.5, 1, 2, ..."
            )
        self.address = address
        self.workers = workers
        self.gpus_per_cell = gpus_per_cell
        self.copy_back = copy_back
        self.cpus = 0.0
        self.gpus = 0.0
        self.board: Any = None
        self.task: Any = None
        self.probe: Path | None = None
        self.token: str | None = None
        self.queued: deque[tuple[Job, Any]] = deque()
        self.running: dict[Any, Job] = {}
        self.dropped: list[Finished] = []
        self.copied_back = 0
        self.stopping = False

    def start(self, folder: Path) -> None:
        ray = self.ray
        quiet = {"log_to_driver": False, "logging_level": logging.ERROR}
        if self.address is None:
            # A cluster for this command only: no dashboard, no usage report unless asked for, and
            # workers at this command's priority, as the local backend's are (Ray's default, +15,
            # made a grid on a machine that also ran two trainings 3x slower than locally).
            os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
            os.environ.setdefault("RAY_worker_niceness", "0")
            try:
                cpus = self.workers or LOCAL_CPUS
                ray.init(address="local", num_cpus=cpus, include_dashboard=False, **quiet)
            except Exception as exc:  # no room in /dev/shm, a port taken, ...
                raise RunFailed(f"could not start a local Ray cluster: {_message(exc)}") from exc
        else:
            # A refused connection makes Ray's core log a line a second for 20 s: held, and shown
            # only when the connection works after all.
            logged: list[str] = []
            failure: Exception | None = None
            with _stderr_held(logged):
                try:
                    ray.init(address=self.address, **quiet)
                except Exception as exc:  # Ray's ConnectionError, RuntimeError, ValueError, ...
                    failure = exc
            if failure is not None:
                raise UsageError(_connect_failure(self.address, failure, logged[0])) from None
            sys.stderr.write(logged[0])
        try:
            self._check_resources()
            self.board = ray.remote(num_cpus=0)(_Board).remote()
            # max_retries=0: a cell whose worker died is reported, and the next run of the command
            # resumes it from its checkpoint; a silent retry would start it over in the same folder.
            self.task = ray.remote(_run_task).options(num_cpus=1, num_gpus=self.gpus_per_cell, max_retries=0)
            if self.address is not None and not self.copy_back:
                folder.mkdir(parents=True, exist_ok=True)
                self.token = secrets.token_hex(8)
                self.probe = folder / f"{PROBE}{self.token}"
                self.probe.write_text(self.token)
        except BaseException:
            self.close()
            raise

    def _check_resources(self) -> None:
        """Refuse requests no node can meet: Ray would wait for them forever."""
        nodes = [node["Resources"] for node in self.ray.nodes() if node.get("Alive")]
        self.cpus = sum(node.get("CPU", 0.0) for node in nodes)
        self.gpus = sum(node.get("GPU", 0.0) for node in nodes)
        most_cpus = max((node.get("CPU", 0.0) for node in nodes), default=0.0)
        most_gpus = max((node.get("GPU", 0.0) for node in nodes), default=0.0)
        if most_cpus < 1:
            raise UsageError("the Ray cluster has no node with a free CPU slot; valid: a cluster with CPUs")
        if self.gpus_per_cell > most_gpus:
            raise UsageError(
                f"--gpus-per-cell {self.gpus_per_cell:g}: no node of the Ray cluster has that many GPUs "
                f"(the most on one node: {most_gpus:g}); valid: 0 to {most_gpus:g}"
            )

    def describe(self) -> str:
        where = "a local Ray cluster" if self.address is None else f"the Ray cluster at {self.address}"
        gpus = f", {self.gpus_per_cell:g} GPU per run" if self.gpus_per_cell else ""
        limit = f", at most {self.workers} at once" if self.address is not None and self.workers else ""
        return f"{where} ({self.cpus:g} CPUs, {self.gpus:g} GPUs{gpus}{limit})"

    def record(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "address": self.address or "local",
            "cpus": self.cpus,
            "gpus": self.gpus,
            "gpus_per_cell": self.gpus_per_cell,
            "workers": self.workers or (LOCAL_CPUS if self.address is None else None),
            "copied_back": self.copied_back,
        }

    def submit(self, job: Job) -> None:
        self.queued.append((job, None))

    def _launch(self) -> None:
        """Hand queued cells to Ray, at most ``workers`` at once on a running cluster."""
        limit = self.workers if self.address is not None and self.workers else None
        while self.queued and not self.stopping and (limit is None or len(self.running) < limit):
            job, files = self.queued.popleft()
            ref = self.task.remote(job, self.board, os.getcwd(), self.token, self.copy_back, files)
            self.running[ref] = job

    def poll(self, timeout: float) -> list[Event]:
        self._launch()
        finished: list[Event] = []
        if self.running:
            ready, _ = self.ray.wait(list(self.running), num_returns=len(self.running), timeout=timeout)
            for ref in ready:
                finished.extend(self._collect(ref))
        else:
            time.sleep(timeout)
        # Progress after results: a cell's last snapshot was posted before its task returned.
        progress: list[Event] = list(self.ray.get(self.board.take.remote()))
        dropped, self.dropped = self.dropped, []
        return [*progress, *finished, *dropped]

    def _collect(self, ref: Any) -> list[Finished]:
        job = self.running.pop(ref)
        try:
            result = self.ray.get(ref)
        except Exception as exc:  # the task died: its worker crashed or was killed, a node was lost
            return [Finished(job.name, error=_message(exc))]
        if result.get("need_files"):
            if self.stopping:
                return [Finished(job.name, started=False)]
            # A stopped run on a node that does not see the compare folder: send it there.
            self.queued.appendleft((job, self.ray.put(pack(job.run_dir))))
            return []
        if result.get("files") is not None:
            try:
                replace_run_dir(job.run_dir, result["files"])
            except OSError as exc:
                return [Finished(job.name, error=f"copying the run folder back: {exc.strerror or exc}")]
            self.copied_back += 1
        return [Finished(job.name, result.get("error"), result.get("started", True))]

    def stop(self, signum: int) -> None:
        if self.stopping:
            return
        self.stopping = True
        self.board.stop.remote(signum)  # running cells see it at their next report
        self.dropped += [Finished(job.name, started=False) for job, _ in self.queued]
        self.queued.clear()

    def close(self) -> None:
        if self.probe is not None:
            self.probe.unlink(missing_ok=True)
            self.probe = None
        if self.ray.is_initialized():
            self.ray.shutdown()  # a local cluster stops; from a running one this driver disconnects
