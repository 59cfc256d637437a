"""Measure PointTasksEnv's random-action throughput (steps/s, resets included).

Usage (from the repository root, with mtgc installed or ``PYTHONPATH=.``):
    python benchmarks/point_tasks_speed.py [--steps 50000]

The actions are drawn in one batch up front so the figure is the env's cost, not the sampler's.
It reports the bare env and the env under TaskOneHot (what training sees). The target is >= 20,000
steps/s for the bare env.
"""

from __future__ import annotations

import argparse
import time

import gymnasium as gym
import numpy as np

from mtgc_cli.envs.point_tasks import PointTasksEnv
from mtgc_cli.envs.wrappers import TaskOneHot


def steps_per_second(env: gym.Env, n_steps: int, seed: int = 0) -> float:
    """Run ``n_steps`` random actions (resetting at episode ends) and return steps per second."""
    actions = np.random.default_rng(seed).uniform(-1.0, 1.0, size=(n_steps, 2)).astype(np.float32)
    env.reset(seed=seed)
    start = time.perf_counter()
    for action in actions:
        _, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            env.reset()
    return n_steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=50_000, help="number of env steps to time")
    args = parser.parse_args()
    bare = PointTasksEnv()
    wrapped = TaskOneHot(PointTasksEnv(), n_tasks=4)
    print(f"PointTasksEnv:            {steps_per_second(bare, args.steps):>10,.0f} steps/s")
    print(f"TaskOneHot(PointTasksEnv): {steps_per_second(wrapped, args.steps):>9,.0f} steps/s")


if __name__ == "__main__":
    main()
