"""Seconds and env steps until a preset's eval success first reaches a threshold.

Trains the preset as `mtgc train` would (evaluating every `train.eval_every` steps) and reads
its progress.csv:

    python benchmarks/learning_budget.py --preset fetch-reach --threshold 0.95 [--seed 0]
"""

from __future__ import annotations

import argparse
import csv
import tempfile
from pathlib import Path

import torch

from mtgc_cli import presets, runs, training


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--preset", default="fetch-reach")
    parser.add_argument("--threshold", type=float, default=0.95)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timesteps", type=int, default=None)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 when sharing the CPU)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = presets.load(args.preset, seed=args.seed, timesteps=args.timesteps)
    with tempfile.TemporaryDirectory() as tmp:
        summary = training.run(training.prepare(config), Path(tmp))
        with (Path(summary["run_dir"]) / runs.PROGRESS).open() as f:
            rows = list(csv.DictReader(f))
    print(f"preset {args.preset}, seed {args.seed}, {summary['steps']:,} steps in {summary['seconds']:.0f} s")
    for row in rows:
        if float(row["eval_success"]) >= args.threshold:
            print(
                f"eval success {float(row['eval_success']):.2f} >= {args.threshold} at "
                f"{int(row['env_steps']):,} env steps, {float(row['wall_seconds']):.0f} s"
            )
            break
    else:
        print(f"eval success never reached {args.threshold} (final {summary['final_eval_success']:.2f})")


if __name__ == "__main__":
    main()
