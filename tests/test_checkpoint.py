"""The checkpoint format in-process: a multi-task replay buffer round trip (compacted file, per-task
and relabeling state, the episode in progress closed), whole-or-absent folders, pruning."""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from mtgc_cli import checkpoint, presets, training

# Point-tasks episodes are 30 steps: 130 steps leave four whole episodes and 10 steps of a fifth.
STEPS = 130


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory):
    config = presets.load(
        "point-tasks",
        timesteps=1000,
        sets=[
            "algo.learning_starts=60",
            "algo.buffer_size=1000",
            "algo.batch_size=32",
            "algo.policy_kwargs.net_arch=[16]",
            "train.eval_episodes=1",
        ],
    )
    setup = training.prepare(config)
    setup.model.learn(STEPS)
    run_dir = tmp_path_factory.mktemp("run")
    written = checkpoint.write(run_dir, STEPS, setup.model, setup.env, setup.eval_env, {"x": 1}, config)
    yield config, setup, written
    setup.close()


def test_replay_buffer_round_trip_keeps_tasks_returns_and_closes_the_open_episode(trained) -> None:
    config, setup, written = trained
    before = setup.model.replay_buffer
    assert before.pos == STEPS and not before.full
    # Only the rows written are in the file: well under the 1000-row buffer pickled whole.
    assert (written.path / checkpoint.BUFFER).stat().st_size < len(pickle.dumps(before)) / 3

    fresh = training.prepare(config)
    try:
        plan = checkpoint.ResumePlan(written.path.parent.parent, config, [written])
        restored = checkpoint.restore(plan, fresh.model, fresh.env, fresh.eval_env)
        after = restored.model.replay_buffer
        assert restored.trainer == {"x": 1} and restored.checkpoint == written
        assert type(after) is type(before) and after.env is fresh.env  # SB3's set_env on load
        assert after.buffer_size == before.buffer_size and after.pos == STEPS
        for key in before.observations:
            np.testing.assert_array_equal(after.observations[key], before.observations[key])
            np.testing.assert_array_equal(after.next_observations[key], before.next_observations[key])
        np.testing.assert_array_equal(after.tasks, before.tasks)  # -1 in the rows never written
        assert (after.tasks[STEPS:] == -1).all()
        np.testing.assert_array_equal(after.episode_returns[:120], before.episode_returns[:120])
        # The episode that was going on (rows 120-129) is closed as a truncated episode, with
        # best-task's returns cached for it, so HER and best relabeling can use it.
        assert (after.ep_length[120:STEPS, 0] == 10).all() and after._current_ep_start[0] == STEPS
        assert after.timeouts[STEPS - 1, 0] == 1 and before.ep_length[120, 0] == 0
        expected = after._trajectory_returns(np.array([120]), np.array([0]), None)[0]
        np.testing.assert_allclose(after.episode_returns[120:STEPS, 0], np.tile(expected, (10, 1)))
        batch = after.sample(32, env=restored.model.get_vec_normalize_env())
        assert batch.rewards.shape == (32, 1)
        for name, tensor in setup.model.policy.state_dict().items():
            assert torch.equal(tensor, restored.model.policy.state_dict()[name]), name
        assert restored.model.num_timesteps == STEPS and restored.model._last_obs is None
    finally:
        fresh.close()


def test_a_folder_is_whole_only_with_its_manifest_and_sizes(trained, tmp_path: Path) -> None:
    _, _, written = trained
    copy = tmp_path / "checkpoints" / written.path.name
    shutil.copytree(written.path, copy)
    assert isinstance(checkpoint.inspect(copy), checkpoint.Checkpoint)
    (copy / checkpoint.STATE).write_bytes((copy / checkpoint.STATE).read_bytes()[:-10])
    assert "state.pkl is" in checkpoint.inspect(copy)
    (copy / checkpoint.MANIFEST).unlink()
    assert "no manifest.json" in checkpoint.inspect(copy)
    # A manifest is written last; hidden partial writes are never read.
    (tmp_path / "checkpoints" / ".step_9.partial-1").mkdir()
    found, problems = checkpoint.scan(tmp_path)
    assert found == [] and len(problems) == 1


def test_prune_keeps_the_newest_and_trims_buffers_beyond_two(trained, tmp_path: Path) -> None:
    config, setup, _ = trained
    model, env, eval_env = setup.model, setup.env, setup.eval_env
    for step in (10, 20, 30, 40):
        checkpoint.write(tmp_path, step, model, env, eval_env, {}, config)
        checkpoint.prune(tmp_path, keep=3)
    found, problems = checkpoint.scan(tmp_path)
    assert [c.step for c in found] == [40, 30, 20] and not problems
    assert [c.resumable for c in found] == [True, True, False]
    trimmed = json.loads((found[2].path / checkpoint.MANIFEST).read_text())
    assert checkpoint.BUFFER not in trimmed["files"] and (found[2].path / checkpoint.MODEL).is_file()


def test_run_summary_reads_an_older_summary_json(tmp_path: Path) -> None:
    """summary.json is read into a typed RunSummary: a key an older mtgc did not write gets its
    default, a key this one does not know is ignored, and writing it back keeps the key order."""
    from mtgc_cli.runs import RunSummary, read_summary, write_summary

    old = {"run_dir": "runs/x", "preset": "bit-flip", "status": "done", "steps": 400, "seconds": 3.5,
           "final_eval_success": 0.5, "best_eval_success": 0.5, "best_eval_step": 400, "someday": 1}  # fmt: skip
    (tmp_path / "summary.json").write_text(json.dumps(old))
    summary = read_summary(tmp_path)
    assert summary is not None and summary.status == "done" and summary.best_eval_source is None
    assert summary.final_scores == [0.5] and summary.resumed_at == []
    write_summary(tmp_path, summary)
    written = json.loads((tmp_path / "summary.json").read_text())
    assert list(written)[:4] == ["run_dir", "preset", "status", "stopped_by"] and "someday" not in written
    assert RunSummary.from_json(written) == summary
    (tmp_path / "summary.json").write_text("[1, 2]")
    assert read_summary(tmp_path) is None
