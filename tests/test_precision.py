"""algo.precision: bfloat16 gradient steps on a real FetchReach run, float32 everywhere else."""

from __future__ import annotations

import pytest
import torch
from sb3_contrib import TQC

from mtgc_cli import checkpoint, presets, training
from mtgc_cli.algos import Bfloat16Training, model_class
from mtgc_cli.errors import UsageError
from mtgc_cli.evaluation import load_for_eval
from tests.conftest import run_dirs

SETS = [
    "algo.name=tqc",
    "algo.precision=bfloat16",
    "algo.learning_starts=100",
    "algo.buffer_size=2000",
    "algo.batch_size=64",
    "train.eval_every=150",
    "train.eval_episodes=2",
    "train.checkpoint_every=150",
]


def _critic_dtypes(model) -> list[torch.dtype]:
    """Record the dtype of every critic output during training (a forward hook on the critic)."""
    seen: list[torch.dtype] = []
    model.critic.register_forward_hook(lambda _m, _i, out: seen.append(out.dtype))
    return seen


@pytest.fixture(scope="module")
def bf16_run(tmp_path_factory: pytest.TempPathFactory):
    """300 steps of FetchReach with TQC in bfloat16: learning starts at 100, an episode ends at 50."""
    config = presets.load("fetch-reach", timesteps=300, sets=SETS)
    setup = training.prepare(config)
    dtypes = _critic_dtypes(setup.model)
    root = tmp_path_factory.mktemp("bf16")
    summary = training.run(setup, root / "runs")
    (run_dir,) = run_dirs(root)
    return config, setup.model, summary, run_dir, dtypes


def test_bfloat16_gradient_steps_run_under_autocast(bf16_run) -> None:
    _, model, summary, _, dtypes = bf16_run
    assert summary["status"] == "done" and model._n_updates > 0
    assert isinstance(model, Bfloat16Training) and isinstance(model, TQC)
    # The critic's products came out in bfloat16 during the gradient steps...
    assert torch.bfloat16 in dtypes
    # ...while its weights, gradients and the optimiser stayed float32.
    assert {p.dtype for p in model.policy.parameters()} == {torch.float32}
    assert all(s["exp_avg"].dtype == torch.float32 for s in model.critic.optimizer.state.values())
    # Outside train(), prediction is plain float32.
    with torch.no_grad():
        obs = model.policy.obs_to_tensor(model.env.reset())[0]
        assert model.policy.actor(obs).dtype == torch.float32


def test_bfloat16_model_loads_as_plain_sb3_and_in_eval(bf16_run) -> None:
    _, model, _, run_dir, _ = bf16_run
    plain = TQC.load(run_dir / "model.zip", env=model.env, device="cpu")
    assert type(plain) is TQC
    for name, tensor in plain.policy.state_dict().items():
        torch.testing.assert_close(tensor, model.policy.state_dict()[name])
    loaded = load_for_eval(run_dir, episodes_per_task=1, seed=0)
    try:
        assert loaded.saved.config.algo.precision == "bfloat16"
    finally:
        loaded.env.close()


def test_resume_from_a_checkpoint_trains_in_bfloat16_again(bf16_run) -> None:
    config, _, _, run_dir, _ = bf16_run
    written = checkpoint.newest(run_dir)
    assert written is not None
    fresh = training.prepare(config)
    try:
        plan = checkpoint.ResumePlan(run_dir, config, [written])
        restored = checkpoint.restore(plan, fresh.model, fresh.env, fresh.eval_env)
        assert isinstance(restored.model, Bfloat16Training) and isinstance(restored.model, TQC)
    finally:
        fresh.close()


def test_float32_is_the_default_and_unchanged() -> None:
    config = presets.load("fetch-reach", sets=["algo.name=tqc"])
    assert config.algo.precision == "float32"
    assert model_class(config.algo) is TQC
    # The Fetch manipulation presets train in bfloat16 (benchmarks/README.md, runs 13-14).
    assert presets.load("fetch-push").algo.precision == "bfloat16"


def test_unknown_precision_is_one_clear_error() -> None:
    with pytest.raises(UsageError) as err:
        presets.load("fetch-push", sets=["algo.precision=float16"])
    assert "precision" in str(err.value) and "bfloat16" in str(err.value)


def test_precision_is_refused_where_it_would_do_nothing() -> None:
    # Behaviour cloning's gradient steps do not go through train(): bfloat16 would be a no-op.
    with pytest.raises(UsageError) as err:
        presets.load("point-tasks-bc", sets=["algo.precision=bfloat16"])
    assert "algo.precision" in str(err.value) and "bc" in str(err.value)
