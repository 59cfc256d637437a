"""Whole checkpoints and resume, with real processes: SIGKILL, SIGTERM, SIGINT, a truncated
checkpoint, a full disk, and an interrupted `mtgc compare` run again."""

from __future__ import annotations

import csv
import json
import os
import resource
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from mtgc_cli import checkpoint
from tests.conftest import assert_one_line_error, mtgc_command, run_dirs, stderr_lines

# 4-bit flipping (episodes of at most 4 steps): an eval and a checkpoint every 200 env steps.
SETTINGS = [
    "--set", "env.kwargs.n_bits=4", "--set", "algo.learning_starts=100", "--set", "algo.buffer_size=2000",
    "--set", "algo.policy_kwargs.net_arch=[32]", "--set", "train.eval_every=200",
    "--set", "train.eval_episodes=10", "--set", "train.checkpoint_every=200",
]  # fmt: skip
TOTAL = 1200
TRAIN = ["train", "--preset", "bit-flip", "--timesteps", str(TOTAL), *SETTINGS]


def start(args: list[str], cwd: Path, preexec: Callable[[], None] | None = None) -> subprocess.Popen[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        mtgc_command(*args),
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=preexec,
    )


def wait_for(proc: subprocess.Popen[str], ready: Callable[[], bool], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"exited {proc.returncode} before it was ready:\n{out}\n{err}")
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def finish(proc: subprocess.Popen[str]) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=300)
    return proc.returncode, out, err


def whole_at(run_dir: Path, step: int) -> Callable[[], bool]:
    """True once a whole checkpoint at ``step`` env steps or later is there."""

    def ready() -> bool:
        found, _ = checkpoint.scan(run_dir)
        return bool(found) and found[0].step >= step

    return ready


def single_run(root: Path) -> Callable[[], bool]:
    return lambda: len(run_dirs(root)) == 1


def progress_steps(run_dir: Path) -> list[int]:
    with (run_dir / "progress.csv").open() as f:
        return [int(row["env_steps"]) for row in csv.DictReader(f)]


def ignore_sigint() -> None:
    # What a shell does for a job started with `&`: the process inherits SIGINT ignored.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@pytest.fixture(scope="module")
def killed_then_resumed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """SIGKILL after the checkpoint at 400; resume (SIGINT ignored), Ctrl-C after its next
    checkpoint; resume again to the total."""
    cwd = tmp_path_factory.mktemp("resume")
    first = start([*TRAIN, "--runs-dir", "runs"], cwd)
    wait_for(first, single_run(cwd))
    (run_dir,) = run_dirs(cwd)
    wait_for(first, whole_at(run_dir, 400))
    first.kill()
    first.wait()
    killed_at = checkpoint.newest(run_dir)
    assert killed_at is not None
    second = start(["train", "--resume", str(run_dir.relative_to(cwd))], cwd, preexec=ignore_sigint)
    wait_for(second, whole_at(run_dir, killed_at.step + 200))
    second.send_signal(signal.SIGINT)
    time.sleep(0.01)
    second.send_signal(signal.SIGINT)  # Ctrl-C twice: the second waits for the checkpoint
    interrupted = finish(second)
    stopped_at = json.loads((run_dir / "summary.json").read_text())["steps"]
    third = finish(start(["train", "--resume", str(run_dir.relative_to(cwd))], cwd))
    return {
        "cwd": cwd,
        "run_dir": run_dir,
        "killed_at": killed_at.step,
        "interrupted": interrupted,
        "stopped_at": stopped_at,
        "finished": third,
    }


def test_sigkill_after_a_checkpoint_resumes_to_the_total_with_continuous_progress(
    killed_then_resumed,
) -> None:
    run_dir = killed_then_resumed["run_dir"]
    code, _, err = killed_then_resumed["finished"]
    assert code == 0, err
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "done" and summary["steps"] == TOTAL
    # Both resumes went on from a checkpoint, none from step 0.
    assert summary["resumed_at"] == [killed_then_resumed["killed_at"], killed_then_resumed["stopped_at"]]
    # Rows the killed run wrote after its checkpoint were cut and written again: no gap, no repeat.
    assert progress_steps(run_dir) == list(range(200, TOTAL + 1, 200))
    with (run_dir / "progress.csv").open() as f:
        walls = [float(row["wall_seconds"]) for row in csv.DictReader(f)]
    assert walls == sorted(walls)  # the wall clock goes on from the stopped run's
    assert "--resume" in (run_dir / "command.txt").read_text().splitlines()[-1]
    assert len(list((run_dir / "tb").glob("events.out.tfevents.*"))) == 3  # one file per start
    # keep_checkpoints (3) whole checkpoints; the newest two with their replay buffer.
    found, problems = checkpoint.scan(run_dir)
    assert [c.step for c in found] == [TOTAL, TOTAL - 200, TOTAL - 400] and not problems
    assert [c.resumable for c in found] == [True, True, False]
    assert not (found[2].path / checkpoint.BUFFER).exists()


def test_ctrl_c_twice_with_sigint_ignored_saves_a_checkpoint_and_exits_130(killed_then_resumed) -> None:
    code, _, err = killed_then_resumed["interrupted"]
    assert code == 130, err
    assert "Traceback" not in err and not stderr_lines(err, "mtgc: error")
    (line,) = stderr_lines(err, "mtgc: stopped by SIGINT")
    stopped_at = killed_then_resumed["stopped_at"]
    assert f"at {stopped_at:,} env steps" in line and f"step_{stopped_at} saved" in line
    assert (
        f"resume: mtgc train --resume {killed_then_resumed['run_dir'].relative_to(killed_then_resumed['cwd'])}"
        in line
    )


def test_resumed_run_gives_a_loadable_model(killed_then_resumed, invoke) -> None:
    run_dir = killed_then_resumed["run_dir"]
    for target in (run_dir, run_dir / "checkpoints" / f"step_{TOTAL}"):
        result = invoke("eval", str(target), "-n", "5", "--json")
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["overall"]["episodes"] == 5


def test_resume_refuses_bad_input_in_one_line_and_changes_nothing(
    killed_then_resumed, invoke, tmp_path: Path
) -> None:
    run_dir = killed_then_resumed["run_dir"]
    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy)
    before = {str(p.relative_to(copy)): p.stat().st_size for p in copy.rglob("*")}
    assert_one_line_error(
        invoke("train", "--resume", str(copy)), 2, "already finished", "--timesteps above 1,200"
    )
    assert_one_line_error(
        invoke("train", "--resume", str(copy), "--set", "algo.gamma=0.5"),
        2,
        "another config",
        "algo.gamma: 0.98 in the run, 0.5 here",
    )
    assert_one_line_error(
        invoke("train", "--resume", str(copy), "--timesteps", "1000"), 2, "not above the 1,200 env steps"
    )
    assert_one_line_error(invoke("train", "--resume", str(tmp_path / "nowhere")), 2, "no config.yaml")
    assert_one_line_error(invoke("train"), 2, "--preset NAME", "--resume RUN_DIR")
    assert {str(p.relative_to(copy)): p.stat().st_size for p in copy.rglob("*")} == before
    shutil.rmtree(copy / "checkpoints")
    assert_one_line_error(invoke("train", "--resume", str(copy)), 2, "no whole checkpoint")


def test_sigterm_exits_143_and_a_truncated_checkpoint_falls_back_to_the_previous(tmp_path: Path) -> None:
    proc = start([*TRAIN, "--runs-dir", "runs"], tmp_path)
    wait_for(proc, single_run(tmp_path))
    (run_dir,) = run_dirs(tmp_path)
    wait_for(proc, whole_at(run_dir, 400))
    proc.send_signal(signal.SIGTERM)
    code, _, err = finish(proc)
    assert code == 143, err
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "interrupted" and summary["stopped_by"] == "SIGTERM"
    (line,) = stderr_lines(err, "mtgc: stopped by SIGTERM")
    assert "resume: mtgc train --resume runs/bit-flip/" in line
    found, _ = checkpoint.scan(run_dir)
    newest, previous = found[0], found[1]
    assert newest.step == summary["steps"] and newest.resumable and previous.resumable
    # Damage the newest: a resume names what is wrong with it and takes the one before.
    buffer = newest.path / checkpoint.BUFFER
    os.truncate(buffer, buffer.stat().st_size // 2)
    code, _, err = finish(start(["train", "--resume", str(run_dir.relative_to(tmp_path))], tmp_path))
    assert code == 0, err
    (warning,) = stderr_lines(err, "mtgc: warning:")
    assert newest.path.name in warning and "replay_buffer.pkl is" in warning and "truncated" in warning
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["resumed_at"] == [previous.step] and summary["steps"] == TOTAL
    assert progress_steps(run_dir) == list(range(200, TOTAL + 1, 200))
    # The damaged checkpoint is gone once newer whole ones exist.
    assert not newest.path.exists() or isinstance(checkpoint.inspect(newest.path), checkpoint.Checkpoint)


def test_full_disk_during_a_checkpoint_is_one_line_exit_1_and_keeps_the_previous(tmp_path: Path) -> None:
    # RLIMIT_FSIZE makes writes past 45 kB fail (EFBIG; Python ignores SIGXFSZ) as a full disk
    # would: the model (~32 kB) and the first replay buffers fit, the buffer at 800 steps does not.
    def limit_file_size() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (45_000, 45_000))

    code, _, err = finish(start([*TRAIN, "--runs-dir", "runs"], tmp_path, preexec=limit_file_size))
    assert code == 1, err
    (line,) = stderr_lines(err, "mtgc: error:")
    assert line.startswith("mtgc: error: checkpoint at ") and "File too large" in line and "is intact" in line
    (run_dir,) = run_dirs(tmp_path)
    found, problems = checkpoint.scan(run_dir)
    assert found and found[0].resumable and not problems
    assert f"the previous one, {found[0].path.name}, is intact" in line
    assert not list((run_dir / "checkpoints").glob(".*"))  # the partial write was removed


def test_interrupted_compare_run_again_resumes_every_cell(tmp_path: Path) -> None:
    total = 1000
    args = ["compare", "--preset", "bit-flip", "--timesteps", str(total), *SETTINGS]
    args += ["--strategies", "none,future", "--seeds", "1", "--workers", "2", "--runs-dir", "runs"]
    folder = tmp_path / "runs" / "compare" / "bit-flip"
    cells = [folder / "none-s0", folder / "future-s0"]
    proc = start(args, tmp_path)
    wait_for(
        proc,
        lambda: (
            all(whole_at(cell, 200)() for cell in cells if cell.exists()) and len(run_dirs(tmp_path)) == 2
        ),
    )
    proc.send_signal(signal.SIGTERM)  # to the parent only; it tells its workers
    code, _, err = finish(proc)
    assert code == 143, err
    (line,) = stderr_lines(err, "mtgc: stopped by SIGTERM")
    assert "resume: mtgc compare --preset bit-flip" in line
    stopped = {}
    for cell in cells:
        summary = json.loads((cell / "summary.json").read_text())
        assert summary["status"] == "interrupted", cell
        stopped[cell.name] = summary["steps"]
    code, out, err = finish(start(args, tmp_path))
    assert code == 0, err
    assert "none" in out and "future" in out
    for cell in cells:
        summary = json.loads((cell / "summary.json").read_text())
        # Each cell went on from where it stopped, none from step 0.
        assert summary["status"] == "done" and summary["resumed_at"] == [stopped[cell.name]], cell
        assert progress_steps(cell) == list(range(200, total + 1, 200)), cell
    # Nothing was moved aside to start over.
    assert sorted(p.name for p in folder.iterdir() if p.is_dir()) == ["future-s0", "none-s0"]
    data = json.loads((folder / "compare.json").read_text())
    assert [row["seeds"] for row in data["strategies"]] == [1, 1]


def test_a_second_writer_on_a_training_run_is_refused_in_one_line(tmp_path: Path) -> None:
    # `--resume R` while another process still trains R: both wrote into R (every eval twice in
    # progress.csv, two TensorBoard files). Now the second gets one line naming the first, exit 2.
    first = start([*TRAIN[:4], "100000", *TRAIN[5:], "--runs-dir", "runs"], tmp_path)
    try:
        wait_for(first, single_run(tmp_path))
        (run,) = run_dirs(tmp_path)
        wait_for(first, whole_at(run, 200))
        command_lines = (run / "command.txt").read_text()
        second = start(["train", "--resume", str(run), "--timesteps", "200000"], tmp_path)
        code, _, err = finish(second)
        assert code == 2, err
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("mtgc: error: run folder"), lines
        assert f"being written by process {first.pid}" in lines[0] and "valid:" in lines[0]
        assert (run / "command.txt").read_text() == command_lines  # no resume recorded
        assert first.poll() is None  # the first writer goes on
    finally:
        first.send_signal(signal.SIGINT)
        finish(first)
    steps = progress_steps(run)
    assert steps == sorted(set(steps))  # every eval once, in order
    # Once the first has stopped, the run can be resumed.
    resumed = start(["train", "--resume", str(run), "--timesteps", str(steps[-1] + 200)], tmp_path)
    code, _, err = finish(resumed)
    assert code == 0, err


def test_two_compares_in_one_folder_one_proceeds_the_other_exits_2(tmp_path: Path) -> None:
    grid = ["compare", "--preset", "bit-flip", "--strategies", "none,future", "--seeds", "1",
            "--timesteps", "100000", "--name", "shared", "--runs-dir", "runs", *SETTINGS]  # fmt: skip
    first = start(grid, tmp_path)
    try:
        wait_for(first, lambda: len(run_dirs(tmp_path / "runs")) >= 1)
        second = start(grid, tmp_path)
        code, _, err = finish(second)
        assert code == 2, err
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("mtgc: error: compare folder"), lines
        assert f"process {first.pid}" in lines[0]
        assert first.poll() is None
    finally:
        first.send_signal(signal.SIGINT)
        finish(first)
