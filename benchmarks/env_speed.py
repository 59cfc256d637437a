"""Env steps per second through mtgc's env builder (wrappers and Monitor included), random actions.

python benchmarks/env_speed.py [--steps 5000] [--presets fetch-reach fetch-push point-tasks]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from mtgc_cli import presets
from mtgc_cli.envs.factory import make_vec_env


def steps_per_second(preset: str, steps: int) -> float:
    config = presets.load(preset)
    env = make_vec_env(config.env.model_copy(update={"n_envs": 1, "vec_env": "dummy"}), seed=0)
    env.reset()
    rng = np.random.default_rng(0)
    actions = [env.action_space.sample() for _ in range(256)] if env.action_space.shape == () else None
    start = time.perf_counter()
    for i in range(steps):
        if actions is not None:
            action = np.array([actions[i % 256]])
        else:
            action = rng.uniform(-1, 1, size=(1, *env.action_space.shape)).astype(np.float32)
        env.step(action)
    elapsed = time.perf_counter() - start
    env.close()
    return steps / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=5000)
    parser.add_argument(
        "--presets", nargs="+", default=["fetch-reach", "fetch-push", "bit-flip", "point-tasks"]
    )
    args = parser.parse_args()
    print(f"{'preset':<22} {'steps/s':>10}")
    for preset in args.presets:
        print(f"{preset:<22} {steps_per_second(preset, args.steps):>10,.0f}")


if __name__ == "__main__":
    main()
