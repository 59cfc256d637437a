"""Does a stopped and resumed run learn as an uninterrupted one does?

Runs a preset uninterrupted for seeds 0..N-1 (the seed-to-seed spread), and seed 0 once more,
stopped with SIGTERM just after its checkpoint at ``--stop-at`` env steps (default: half the
budget) and resumed with ``mtgc train --resume``. Every run checkpoints every ``--stop-at``
steps. Prints the eval success of every run at every eval, side by side.

    python benchmarks/resume_curve.py --preset point-tasks --seeds 3 [--stop-at 2500] [--set KEY=VALUE ...]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mtgc_cli import checkpoint, presets


def mtgc(*args: str, cwd: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "mtgc_cli.cli.app", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def curve(run_dir: Path) -> dict[int, float]:
    with (run_dir / "progress.csv").open() as f:
        return {int(row["env_steps"]): float(row["eval_success"]) for row in csv.DictReader(f)}


def only_run(root: Path) -> Path:
    (config,) = root.rglob("config.yaml")
    return config.parent


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--preset", default="point-tasks")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--stop-at", type=int, default=None, help="env steps (default: half the budget)")
    parser.add_argument("--set", dest="sets", action="append", default=[])
    args = parser.parse_args()
    total = presets.load(args.preset, sets=args.sets).train.timesteps
    half = args.stop_at or total // 2
    common = ["--preset", args.preset, "--set", f"train.checkpoint_every={half}"]
    for assignment in args.sets:
        common += ["--set", assignment]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        curves: dict[str, dict[int, float]] = {}
        for seed in range(args.seeds):
            root = work / f"s{seed}"
            root.mkdir()
            start = time.perf_counter()
            proc = mtgc("train", *common, "--seed", str(seed), "--runs-dir", "runs", cwd=root)
            _, err = proc.communicate()
            assert proc.returncode == 0, err.decode()
            curves[f"seed {seed}"] = curve(only_run(root))
            print(f"seed {seed} uninterrupted: {time.perf_counter() - start:.0f} s", flush=True)
        root = work / "stopped"
        root.mkdir()
        proc = mtgc("train", *common, "--seed", "0", "--runs-dir", "runs", cwd=root)
        while not list(root.glob(f"runs/*/*/checkpoints/step_{half}/manifest.json")):
            assert proc.poll() is None, "the run ended before its checkpoint at half the budget"
            time.sleep(0.02)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate()
        assert proc.returncode == 143, err.decode()
        run_dir = only_run(root)
        stopped_at = checkpoint.newest(run_dir)
        assert stopped_at is not None
        proc = mtgc("train", "--resume", str(run_dir), cwd=root)
        _, err = proc.communicate()
        assert proc.returncode == 0, err.decode()
        summary = json.loads((run_dir / "summary.json").read_text())
        curves[f"seed 0 stopped at {stopped_at.step:,}, resumed"] = curve(run_dir)
        print(f"resumed at {summary['resumed_at']}, finished at {summary['steps']:,} env steps\n")
        names = list(curves)
        steps = sorted(set().union(*curves.values()))
        print("env_steps | " + " | ".join(names))
        for step in steps:
            cells = [f"{curves[name].get(step, float('nan')):.2f}" for name in names]
            print(f"{step:>9,} | " + " | ".join(cells))


if __name__ == "__main__":
    main()
