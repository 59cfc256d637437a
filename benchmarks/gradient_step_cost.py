"""Milliseconds per gradient step of a preset's learner, HER sampling included, per setting.

Builds the preset's model through mtgc (``training.prepare``: the same env, buffer and networks
``mtgc train`` uses), collects past ``learning_starts``, then times calls of
``model.train(gradient_steps=1)`` for each variant. Each variant is a semicolon-separated list
of ``--set`` overrides; ``-`` is the preset as it is. Run it pinned to one core
(``taskset -c 1``): it sets one torch thread unless ``--threads``.

    taskset -c 1 python benchmarks/gradient_step_cost.py --preset fetch-push \\
        --variant - --variant algo.precision=bfloat16 \\
        --variant algo.name=sac --variant "algo.name=sac; algo.precision=bfloat16"
"""

from __future__ import annotations

import argparse
import time
import warnings

import torch

from mtgc_cli import presets, training


def cost_ms(preset: str, sets: list[str], steps: int) -> float:
    config = presets.load(preset, sets=["algo.learning_starts=1000", *sets])
    setup = training.prepare(config)
    try:
        model = setup.model
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.learn(1100)  # past learning_starts: the buffer holds 22 whole episodes
        batch = model.batch_size
        for _ in range(5):  # warm-up (first-call allocations)
            model.train(gradient_steps=1, batch_size=batch)
        start = time.perf_counter()
        # One step per call, as training takes them (one gradient step per decision): each call
        # pays its own set-up (learning-rate update, mode switch, in bfloat16 the weight casts).
        for _ in range(steps):
            model.train(gradient_steps=1, batch_size=batch)
        return (time.perf_counter() - start) / steps * 1e3
    finally:
        setup.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--preset", default="fetch-push")
    parser.add_argument("--variant", action="append", help="semicolon-separated KEY=VALUE overrides, or -")
    parser.add_argument("--steps", type=int, default=100, help="gradient steps timed per variant")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (mtgc train alone: all cores)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    variants = args.variant or ["-"]
    results = []
    for variant in variants:
        sets = [] if variant == "-" else [s.strip() for s in variant.split(";")]
        results.append((variant, cost_ms(args.preset, sets, args.steps)))
        print(f"{variant:<60} {results[-1][1]:8.1f} ms", flush=True)
    base = results[0][1]
    print(f"\n{'variant (' + args.preset + f', {args.threads} thread(s))':<60} {'ms/step':>8} {'x first':>8}")
    for variant, ms in results:
        print(f"{variant:<60} {ms:8.1f} {ms / base:8.2f}")


if __name__ == "__main__":
    main()
