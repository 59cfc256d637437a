"""Success of mtgc's scripted experts: 100 episodes per env and per task (done-when figures).

Runs each expert in the env exactly as ``mtgc collect`` does (mtgc's env builder, one env per
task, seeded from --seed) without writing a dataset, and prints success with its 95% Wilson
interval, mean return and seconds per env.

    OMP_NUM_THREADS=1 python benchmarks/imitation_experts.py [--episodes 100] [--seed 0]
"""

from __future__ import annotations

import argparse
import time

import torch
from rich.console import Console
from rich.table import Table

from mtgc_cli import presets
from mtgc_cli.evaluation import wilson_interval
from mtgc_cli.imitation.collect import collect, per_step_env, probe_env

PRESETS = ["fetch-reach", "fetch-push", "fetch-pick-and-place", "point-tasks", "fetch-tasks"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    table = Table(title=f"scripted experts, {args.episodes} episodes per env and task, seed {args.seed}")
    for column in ("preset", "env", "task", "success [95% CI]", "mean return", "seconds"):
        table.add_column(column, justify="left" if column in ("preset", "env", "task") else "right")
    for name in PRESETS:
        cfg = per_step_env(presets.load(name).env)
        _, expert = probe_env(cfg)
        assert callable(expert), expert
        start = time.perf_counter()
        results = collect(cfg, expert, [args.episodes] * max(1, len(cfg.task_labels)), seed=args.seed)
        seconds = time.perf_counter() - start
        for result in results:
            low, high = wilson_interval(result.successes, result.attempts)
            rate = result.successes / result.attempts
            table.add_row(
                name, cfg.label, result.name, f"{rate:.2f} [{low:.2f}, {high:.2f}]",
                f"{result.mean_return:.2f}", f"{seconds / len(results):.0f}",
            )  # fmt: skip
    Console(width=120).print(table)


if __name__ == "__main__":
    main()
