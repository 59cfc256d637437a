"""Learning happens: HER solves bit flipping, where the plain buffer cannot (the HER paper's result)."""

from __future__ import annotations

from pathlib import Path

from mtgc_cli import presets, training
from mtgc_cli.runs import RunSummary


def train_bit_flip(tmp_path: Path, strategy: str) -> RunSummary:
    config = presets.load(
        "bit-flip",
        timesteps=8000,
        strategy=strategy,
        sets=[
            "env.kwargs.n_bits=10",
            "algo.learning_starts=500",
            "train.eval_every=2000",
            "train.eval_episodes=50",
        ],
    )
    return training.run(training.prepare(config), tmp_path / strategy)


def test_her_future_learns_bit_flipping_and_no_relabel_does_not(tmp_path: Path) -> None:
    her = train_bit_flip(tmp_path, "future")
    plain = train_bit_flip(tmp_path, "none")
    # 15 bits: 2^15 goals, so a random walk almost never sees a reward without relabeling.
    assert her.final_eval_success is not None and her.final_eval_success >= 0.8
    assert plain.final_eval_success is not None and plain.final_eval_success <= 0.1
