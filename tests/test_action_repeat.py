"""env.action_repeat: every count of the preset is in env steps, on real runs (bit flipping).

One SB3 step is a decision of ``action_repeat`` env steps. SB3 counted its own settings in
decisions: at repeat 3, learning started at 3x the preset's learning_starts, the progress
schedules ended at 0.667, and a 3,000-env-step run with learning_starts 1,000 took no gradient step.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mtgc_cli import presets, training

SETS = [
    "algo.learning_starts=1000",
    "algo.buffer_size=5000",
    "algo.batch_size=32",
    "algo.target_update_interval=300",
    "train.eval_every=1500",
    "train.eval_episodes=5",
    "train.checkpoint_every=1500",
]


@pytest.fixture(scope="module")
def repeated(tmp_path_factory: pytest.TempPathFactory):
    """3,000 env steps of bit flipping (15-step episodes) with each action repeated 3 times."""
    config = presets.load("bit-flip", timesteps=3000, sets=[*SETS, "env.action_repeat=3"])
    setup = training.prepare(config)
    summary = training.run(setup, Path(tmp_path_factory.mktemp("repeat")) / "runs")
    return setup.model, summary


def test_sb3_clock_counts_env_steps(repeated) -> None:
    model, summary = repeated
    assert summary.status == "done" and summary.steps == 3000
    assert model.num_timesteps == 3000
    # The schedules (exploration here) ran to their end: progress remaining is 0, not 1/3.
    assert model._current_progress_remaining == pytest.approx(0.0, abs=0.01)
    assert model.exploration_rate == pytest.approx(model.exploration_final_eps)


def test_learning_starts_after_learning_starts_env_steps(repeated) -> None:
    model, _ = repeated
    # One gradient step per decision from env step 1,000 on: about 2,000 / 3 of them (decisions
    # end early at an episode's end, 5 per 15-step episode). At repeat 3 in decisions it was 0.
    assert 600 <= model._n_updates <= 700


def test_step_counts_become_decisions(repeated) -> None:
    model, _ = repeated
    # target_update_interval 300 env steps is 100 decisions; train_freq 1 stays 1 decision.
    assert model.target_update_interval == 100
    assert model.train_freq.frequency == 1


def test_dense_goal_reward_with_relabeling_under_a_repeat_is_refused() -> None:
    # A dense reward is summed over a decision's env steps; relabeling could recompute only the
    # last one's, so the stored and the relabeled rewards would disagree.
    from mtgc_cli.errors import UsageError

    with pytest.raises(UsageError) as err:
        presets.load("fetch-push", sets=["env.reward_type=dense"])
    assert "reward_type dense" in str(err.value) and "valid:" in str(err.value)
    presets.load("fetch-push", sets=["env.reward_type=dense", "relabel.strategy=none"])
    presets.load("fetch-push", sets=["env.reward_type=dense", "env.action_repeat=1"])
