"""Single-task hindsight relabeling: a relabeled row terminates if and only if it reaches its new goal."""

from __future__ import annotations

import numpy as np
import pytest

from mtgc_cli import presets
from mtgc_cli.training import prepare


def _filled_buffer(sets: list[str]):
    config = presets.load(
        "bit-flip",
        sets=["env.kwargs.n_bits=3", "algo.learning_starts=100000", "algo.buffer_size=5000", *sets],
    )
    setup = prepare(config)
    setup.model.learn(total_timesteps=600)  # random actions; 3-bit episodes often end in success
    return setup


def test_relabeled_rows_terminate_exactly_at_their_new_goal() -> None:
    setup = _filled_buffer([])
    buffer = setup.model.replay_buffer
    assert buffer.dones[: buffer.pos].sum() > 0  # some episodes really ended by success
    rng = np.random.default_rng(0)
    rows = rng.integers(0, buffer.pos, size=2000)
    samples = buffer._get_virtual_samples(rows, np.zeros_like(rows))
    achieved = samples.next_observations["achieved_goal"].numpy()
    goals = samples.observations["desired_goal"].numpy()
    reached = np.all(achieved == goals, axis=1)
    dones = samples.dones.numpy().ravel().astype(bool)
    # SB3 kept the stored done: rows that reached the original goal stayed terminal for any goal.
    assert reached.any() and (~reached).any()
    np.testing.assert_array_equal(dones, reached)
    setup.close()


def test_an_env_that_terminates_without_compute_terminated_is_stopped() -> None:
    from mtgc_cli.envs.bit_flipping import BitFlippingGoalsEnv

    original = BitFlippingGoalsEnv.compute_terminated
    del BitFlippingGoalsEnv.compute_terminated
    try:
        with pytest.raises(RuntimeError, match="compute_terminated"):
            _filled_buffer([])
    finally:
        BitFlippingGoalsEnv.compute_terminated = original
