"""Stratified against uniform minibatches for BC on an imbalanced multi-task dataset.

1. ``mtgc collect``: demonstrations with one task 10x rarer (default: the preset's last task).
2. ``mtgc compare --preset <bc preset> --strategies stratified,uniform --seeds 5`` on it.
3. A per-task table from the compare's runs: final success per task, mean over seeds, and the
   first eval step at which each task reached 0.9 (mean over seeds; ">" where a seed never did).

    OMP_NUM_THREADS=1 python benchmarks/imitation_sampling.py [--preset point-tasks-bc] [--seeds 5]
        [--rare south] [--episodes 100] [--timesteps 1500] [--eval-every 100] [--eval-episodes N]
        [--workers 1]

Everything is written under --root (default ./bench-imitation): data/ and runs/compare/.
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from mtgc_cli import presets


def run(args: list[str], cwd: Path) -> None:
    print("$", " ".join(args), file=sys.stderr)
    subprocess.run(args, cwd=cwd, check=True)


def first_step(progress: Path, column: str, threshold: float = 0.9) -> float | None:
    with progress.open() as f:
        for row in csv.DictReader(f):
            if float(row[column]) >= threshold:
                return float(row["env_steps"])
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="point-tasks-bc", help="a multi-task bc preset")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--rare", default=None, help="the rare task (default: the preset's last)")
    parser.add_argument("--episodes", type=int, default=100, help="episodes of each common task")
    parser.add_argument("--timesteps", type=int, default=1500)
    parser.add_argument("--eval-every", type=int, default=100)
    parser.add_argument("--eval-episodes", type=int, default=None, help="per task (default: the preset's)")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--root", type=Path, default=Path("bench-imitation"))
    args = parser.parse_args()
    tasks = presets.load(args.preset).env.task_labels
    rare = args.rare or tasks[-1]
    if rare not in tasks:
        parser.error(f"--rare {rare}: valid: {', '.join(tasks)}")
    root = args.root.resolve()
    root.mkdir(parents=True, exist_ok=True)
    dataset = f"mtgc/{args.preset}-{rare}-rare-v0"
    counts = ",".join(f"{t}={args.episodes // 10 if t == rare else args.episodes}" for t in tasks)
    if not (root / "data" / dataset).exists():
        run(["mtgc", "collect", "--preset", args.preset, "--tasks", counts, "--dataset", dataset], root)
    name = f"{args.preset}-sampling-{rare}-rare"
    extra = [] if args.eval_episodes is None else ["--set", f"train.eval_episodes={args.eval_episodes}"]
    run(
        [
            "mtgc", "compare", "--preset", args.preset, "--strategies", "stratified,uniform",
            "--seeds", str(args.seeds), "--workers", str(args.workers), "--name", name,
            "--timesteps", str(args.timesteps), "--set", f"algo.dataset={dataset}",
            "--set", f"train.eval_every={args.eval_every}",
            "--set", f"algo.validation_every={args.eval_every}", *extra,
        ],
        root,
    )  # fmt: skip
    report = json.loads((root / "runs" / "compare" / name / "compare.json").read_text())
    table = Table(title=f"BC ({args.preset}), {counts} episodes, {args.seeds} seeds: per-task final success")
    table.add_column("sampling")
    for task in tasks:
        table.add_column(f"{task}{' (rare)' if task == rare else ''}", justify="right")
    table.add_column(f"{rare}: steps to 0.9", justify="right")
    for strategy in ("stratified", "uniform"):
        runs = [r for r in report["runs"] if r["strategy"] == strategy]
        cells = []
        for task in tasks:
            values = np.array([r["final_task_success"][task] for r in runs])
            cells.append(f"{values.mean():.2f} (min {values.min():.2f})")
        steps = [first_step(root / r["run_dir"] / "progress.csv", f"success/{rare}") for r in runs]
        reached = [s for s in steps if s is not None]
        when = f"{np.mean(reached):,.0f}" if reached else "-"
        cells.append(f"{when} ({len(reached)}/{len(steps)} seeds)")
        table.add_row(strategy, *cells)
    Console(width=120).print(table)


if __name__ == "__main__":
    main()
