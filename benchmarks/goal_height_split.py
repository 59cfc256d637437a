"""Eval success of a Fetch object-task model, split into goals on the table and goals in the air.

FetchPickAndPlace puts half its goals in the air (up to 45 cm above the table), and those need a
grasp; the table half can be solved by pushing alone. An eval success near 0.5 is then often
"pushes, never lifts", and this split says whether it is:

    python benchmarks/goal_height_split.py runs/fetch-pick-and-place/RUN/best_model.zip --episodes 100

The model is evaluated as `mtgc eval` does (the run's own env settings, deterministic actions,
fresh eval goals from ``--seed``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from mtgc_cli.evaluation import load_for_eval

# The object rests at z = 0.4247 on the Fetch table; an air goal is drawn 0 to 0.45 above it.
TABLE_TOP = 0.43


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("target", type=Path, help="a run folder or a model .zip, as for `mtgc eval`")
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    loaded = load_for_eval(args.target, args.episodes, seed=args.seed)
    env, model = loaded.env, loaded.model
    # Each eval slot runs its share of the episodes, as in `evaluation.run_episodes`.
    targets = np.asarray(loaded.counts)
    done_counts = np.zeros_like(targets)
    split: dict[str, list[float]] = {"table": [], "air": []}
    obs = env.reset()
    while (done_counts < targets).any():
        actions, _ = model.predict(obs, deterministic=True)  # type: ignore[arg-type]
        obs, _, dones, infos = env.step(actions)
        for slot in np.flatnonzero(dones):
            if done_counts[slot] >= targets[slot]:
                continue
            goal = infos[slot]["terminal_observation"]["desired_goal"]  # the finished episode's
            split["air" if goal[2] > TABLE_TOP else "table"].append(float(infos[slot]["is_success"]))
            done_counts[slot] += 1
    env.close()
    for where, successes in split.items():
        rate = f"{np.mean(successes):.2f}" if successes else "-"
        print(f"goals {where:5s}: {len(successes):3d} episodes, success {rate}")


if __name__ == "__main__":
    main()
