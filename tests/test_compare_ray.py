"""`mtgc compare --backend ray` on a real Ray cluster (`ray start --head`, stopped after), against
the local backend on the same grid; stopping and resuming a Ray grid; Ray's absence and bad input.

The cluster and every Ray command run in subprocesses: `ray.init` changes its process for good
(environment, signal handlers), which the other tests must not inherit.
"""

from __future__ import annotations

import csv
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import mtgc_command, mtgc_subprocess
from tests.test_comparison_cli import TINY

GRID = ["compare", *TINY, "--strategies", "none,future", "--seeds", "2", "--runs-dir", "runs"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ray_head(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, str]]]:
    """A 2-CPU head node on a free port, with its own token; ``ray stop`` afterwards, whatever happens."""
    pytest.importorskip("ray")
    ray = str(Path(sys.executable).with_name("ray"))
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "RAY_USAGE_STATS_ENABLED": "0",
        "RAY_worker_niceness": "0",  # workers at the tests' priority (Ray's default: 15 lower)
        # Token authentication with a token of this test's own: nothing else can use the cluster,
        # and no token in ~/.ray is read or written.
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN": secrets.token_hex(32),
    }
    port = free_port()
    start = [ray, "start", "--head", f"--port={port}", "--num-cpus=2", "--include-dashboard=false"]
    start += ["--object-store-memory=100000000", "--disable-usage-stats"]
    try:
        subprocess.run(start, env=env, check=True, capture_output=True, timeout=120)
        yield f"127.0.0.1:{port}", env
    finally:
        subprocess.run([ray, "stop"], env=env, capture_output=True, timeout=120)


def mtgc(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return mtgc_subprocess(args, cwd=cwd, env=env)


def csv_rows(path: Path, drop: tuple[str, ...] = ()) -> list[dict[str, str]]:
    with path.open() as f:
        return [{k: v for k, v in row.items() if k not in drop} for row in csv.DictReader(f)]


def test_ray_grid_matches_the_local_grid(
    invoke, ray_head: tuple[str, dict[str, str]], tmp_path: Path
) -> None:
    address, env = ray_head
    ray = mtgc([*GRID, "--backend", "ray", "--address", address, "--name", "ray"], tmp_path, env)
    assert ray.returncode == 0, ray.stderr
    local = invoke(*GRID, "--name", "local")
    assert local.exit_code == 0, local.output
    assert f"the Ray cluster at {address} (2 CPUs" in " ".join(ray.stderr.split())
    folders = {name: tmp_path / "runs" / "compare" / name for name in ("ray", "local")}
    data = {name: json.loads((folder / "compare.json").read_text()) for name, folder in folders.items()}
    assert data["ray"]["backend"]["name"] == "ray" and data["ray"]["backend"]["copied_back"] == 0
    assert data["local"]["backend"] == {"name": "local", "workers": 2}
    # The same table: rows, columns and every figure but the wall times (each seed is deterministic).
    wall = ("wall_seconds_mean",)
    assert csv_rows(folders["ray"] / "compare.csv", wall) == csv_rows(folders["local"] / "compare.csv", wall)
    assert [r["strategy"] for r in data["ray"]["strategies"]] == ["none", "future"]
    for name in ("none-s0", "none-s1", "future-s0", "future-s1"):
        summary = json.loads((folders["ray"] / name / "summary.json").read_text())
        assert summary["status"] == "done" and summary["steps"] == 600, name
        assert summary["run_dir"] == f"runs/compare/ray/{name}"
        columns = ("wall_seconds", "fps", "eval_seconds")
        assert csv_rows(folders["ray"] / name / "progress.csv", columns) == csv_rows(
            folders["local"] / name / "progress.csv", columns
        ), name
    assert (folders["ray"] / "curves.png").stat().st_size > 0
    assert not list(folders["ray"].glob(".mtgc-ray-probe-*"))  # removed at the end


def test_stopped_ray_grid_resumes_from_copies_on_a_local_cluster(
    ray_head: tuple[str, dict[str, str]], tmp_path: Path
) -> None:
    address, env = ray_head
    # Long enough that neither cell can finish while the other is still short of its first
    # checkpoint, even when both share one busy core.
    total = 2000
    settings = [
        "--set", "env.kwargs.n_bits=4", "--set", "algo.learning_starts=100", "--set", "algo.buffer_size=2000",
        "--set", "algo.policy_kwargs.net_arch=[32]", "--set", "train.eval_every=200",
        "--set", "train.eval_episodes=10", "--set", "train.checkpoint_every=200",
    ]  # fmt: skip
    args = ["compare", "--preset", "bit-flip", "--timesteps", str(total), *settings, "--runs-dir", "runs"]
    args += ["--strategies", "none,future", "--seeds", "1", "--backend", "ray"]
    folder = tmp_path / "runs" / "compare" / "bit-flip"
    cells = [folder / "none-s0", folder / "future-s0"]
    proc = subprocess.Popen(
        mtgc_command(*args, "--address", address),
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not all((cell / "checkpoints" / "step_200" / "manifest.json").is_file() for cell in cells):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)  # to the driver only: the cells hear of it through the cluster
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    stopped = {}
    for cell in cells:
        summary = json.loads((cell / "summary.json").read_text())
        assert summary["status"] == "interrupted" and summary["stopped_by"] == "SIGTERM", cell
        stopped[cell.name] = summary["steps"]
    # Run again on a local cluster that mtgc starts, with the run folders sent to the workers and
    # copied back: each cell goes on from its checkpoint.
    again = mtgc([*args, "--workers", "2", "--copy-back"], tmp_path, env)
    assert again.returncode == 0, again.stderr
    for cell in cells:
        summary = json.loads((cell / "summary.json").read_text())
        assert summary["status"] == "done" and summary["resumed_at"] == [stopped[cell.name]], cell
        assert summary["run_dir"] == f"runs/compare/bit-flip/{cell.name}"
        assert Path(summary["checkpoint"]["path"]).parent == Path(summary["run_dir"]) / "checkpoints"
        steps = [int(row["env_steps"]) for row in csv_rows(cell / "progress.csv")]
        assert steps == list(range(200, total + 1, 200)), cell
        # model.zip is still the newest checkpoint's model, one file under two names.
        assert os.path.samefile(cell / "model.zip", cell / "checkpoints" / f"step_{total}" / "model.zip")
    assert sorted(p.name for p in folder.iterdir() if p.is_dir()) == ["future-s0", "none-s0"]
    data = json.loads((folder / "compare.json").read_text())
    assert data["backend"]["address"] == "local" and data["backend"]["copied_back"] == 2


def one_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


def test_ray_backend_without_ray_says_how_to_install_it(tmp_path: Path) -> None:
    # Ray made unimportable in this one process, installed or not.
    code = "import sys; sys.modules['ray'] = None; from mtgc_cli.cli.app import main; main()"
    result = subprocess.run(
        [sys.executable, "-c", code, *GRID, "--backend", "ray"],
        cwd=tmp_path,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    line = one_line(result.stderr)
    assert line.startswith("mtgc: error: --backend ray needs Ray")
    assert "pip install 'mtgc[ray]'" in line and 'pip install -e ".[ray]"' in line
    assert not (tmp_path / "runs").exists()


def test_bad_backend_options_are_one_line(invoke, tmp_path: Path) -> None:
    result = invoke(*GRID, "--backend", "spark")
    assert result.exit_code == 2
    assert "'local'" in one_line(result.stderr) and "'ray'" in result.stderr
    result = invoke(*GRID, "--address", "127.0.0.1:6379")
    assert result.exit_code == 2
    assert "--address is an option of the Ray backend" in one_line(result.stderr)
    assert not (tmp_path / "runs").exists()


def test_bad_ray_options_are_one_line(invoke, tmp_path: Path) -> None:
    pytest.importorskip("ray")
    result = invoke(*GRID, "--backend", "ray", "--address", "headnode")
    assert result.exit_code == 2
    assert "--address headnode: not host:port; valid: " in one_line(result.stderr)
    result = invoke(*GRID, "--backend", "ray", "--address", f"127.0.0.1:{free_port()}")
    assert result.exit_code == 2
    line = one_line(result.stderr)
    assert "no Ray cluster answers there" in line and "or auto" in line
    result = invoke(*GRID, "--backend", "ray", "--gpus-per-cell", "1.5")
    assert result.exit_code == 2
    assert "a fraction of one GPU or a whole number; valid: 0" in one_line(result.stderr)
    assert not (tmp_path / "runs").exists()
