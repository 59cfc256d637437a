"""A short real FetchReach run (MuJoCo), and a save/load round trip with identical actions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mtgc_cli import presets, runs, training
from mtgc_cli.evaluation import load_for_eval
from tests.conftest import run_dirs


@pytest.fixture(scope="module")
def fetch_run(tmp_path_factory: pytest.TempPathFactory):
    """300 steps of FetchReach: learning starts at 100, episodes end at 50, eval and checkpoint at 150."""
    config = presets.load(
        "fetch-reach",
        timesteps=300,
        sets=[
            "algo.learning_starts=100",
            "algo.buffer_size=2000",
            "train.eval_every=150",
            "train.eval_episodes=4",
            "train.checkpoint_every=150",
        ],
    )
    setup = training.prepare(config)
    root = tmp_path_factory.mktemp("fetch")
    model = setup.model
    summary = training.run(setup, root / "runs")
    (run_dir,) = run_dirs(root)
    return config, model, summary, run_dir


def test_short_fetch_run_crosses_learning_start_eval_and_checkpoint(fetch_run) -> None:
    _, model, summary, run_dir = fetch_run
    assert summary.steps == 300 and summary.status == "done"
    assert model._n_updates > 0  # gradient steps happened after learning_starts
    assert model.replay_buffer.ep_length.max() == 50  # whole episodes were stored
    rows = (run_dir / runs.PROGRESS).read_text().splitlines()[1:]
    assert [int(r.split(",")[0]) for r in rows] == [150, 300]
    assert (run_dir / "checkpoints" / "step_150" / "model.zip").is_file()
    assert (run_dir / "checkpoints" / "step_150" / "vecnormalize.pkl").is_file()
    assert (run_dir / runs.STATS).is_file() and (run_dir / runs.BEST_STATS).is_file()


def test_save_load_round_trip_gives_identical_deterministic_actions(fetch_run) -> None:
    _, model, _, run_dir = fetch_run
    loaded = load_for_eval(run_dir, episodes_per_task=1, seed=5)
    try:
        # The saved statistics normalise exactly as the trained model's env did.
        trained_norm = model.get_vec_normalize_env()
        assert np.allclose(loaded.env.obs_rms["observation"].mean, trained_norm.obs_rms["observation"].mean)
        obs = loaded.env.reset()
        for _ in range(5):
            saved_action, _ = loaded.model.predict(obs, deterministic=True)
            trained_action, _ = model.predict(obs, deterministic=True)
            np.testing.assert_array_equal(saved_action, trained_action)
            obs, *_ = loaded.env.step(saved_action)
    finally:
        loaded.env.close()


def test_eval_reads_a_checkpoint_with_its_own_statistics(fetch_run) -> None:
    _, _, _, run_dir = fetch_run
    checkpoint = run_dir / "checkpoints" / "step_150" / "model.zip"
    loaded = load_for_eval(checkpoint, episodes_per_task=1, seed=0)
    try:
        assert loaded.saved.stats == checkpoint.with_name("vecnormalize.pkl")
        assert loaded.saved.run_dir == run_dir
        assert loaded.saved.config.name == "fetch-reach"
    finally:
        loaded.env.close()


def test_failed_start_leaves_no_run_folder(tmp_path: Path) -> None:
    config = presets.load("bit-flip", sets=["env.kwargs.n_bits=4"])
    setup = training.prepare(config)
    # A run folder that cannot be written (its parent is a file) fails before training...
    (tmp_path / "runs").write_text("not a folder")
    with pytest.raises(OSError):
        training.run(setup, tmp_path / "runs")
    assert (tmp_path / "runs").read_text() == "not a folder"
