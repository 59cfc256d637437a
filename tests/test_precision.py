"""algo.precision: bfloat16 gradient steps on a real FetchReach run, float32 everywhere else."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from sb3_contrib import TQC
from stable_baselines3 import SAC
from stable_baselines3.common.logger import Logger

from mtgc_cli import checkpoint, presets, training
from mtgc_cli.algos import model_class
from mtgc_cli.errors import UsageError
from mtgc_cli.evaluation import load_for_eval
from mtgc_cli.precision import Bfloat16Training, bfloat16_gradient_steps, networks
from mtgc_cli.presets import AlgoConfig
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
    """Record the dtype of the critic's first layer's output during training (a forward hook)."""
    seen: list[torch.dtype] = []
    first = next(m for m in model.critic.modules() if isinstance(m, torch.nn.Linear))
    first.register_forward_hook(lambda _m, _i, out: seen.append(out.dtype))
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
    assert summary.status == "done" and model._n_updates > 0
    assert isinstance(model, Bfloat16Training) and isinstance(model, TQC)
    # The critic's products came out in bfloat16 during the gradient steps...
    assert torch.bfloat16 in dtypes
    # ...and the critic itself hands float32 to the losses.
    obs = model.policy.obs_to_tensor(model.env.reset())[0]
    action = torch.zeros((1, *model.action_space.shape))
    with torch.no_grad(), bfloat16_gradient_steps():
        assert model.critic(obs, action).dtype == torch.float32
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


# The bfloat16 learner against float32 on a cheap real env (Pendulum): the same algorithm, step for
# step, at lower precision in the matrix products only.


def _pendulum_model(name: str, precision: str, saturate: bool = False):
    """A model whose buffer holds 300 random Pendulum steps, no gradient step taken yet.

    ``saturate``: the actor's mean is 4 on every state with a small std, so tanh(u) is 1 in
    bfloat16 (SAC's log-probability correction saturates there).
    """
    cls = model_class(AlgoConfig.model_validate({"name": name, "precision": precision}))
    model = cls(
        "MlpPolicy",
        gym.make("Pendulum-v1"),
        seed=0,
        learning_starts=10**6,
        batch_size=64,
        policy_kwargs={"net_arch": [64, 64]},
        device="cpu",
        ent_coef="auto_0.1",
    )
    model.learn(300)
    model.set_logger(Logger(None, []))
    if saturate:
        with torch.no_grad():
            model.actor.mu.weight.zero_()
            model.actor.mu.bias.fill_(4.0)
            model.actor.log_std.weight.zero_()
            model.actor.log_std.bias.fill_(-3.0)
    return model


def _train(model, calls: list[int]) -> torch.Tensor:
    np.random.seed(1)
    torch.manual_seed(1)
    for gradient_steps in calls:
        model.train(gradient_steps, 64)
    return torch.cat([p.detach().flatten() for p in model.policy.parameters()])


@pytest.mark.parametrize("name", ["sac", "tqc"])
def test_bfloat16_steps_use_the_weights_as_they_are_now(name: str) -> None:
    # One autocast block around train() cached each weight's bfloat16 copy for the whole call:
    # train(4) took its later steps on the first step's weights, unlike four train(1) calls.
    once = _train(_pendulum_model(name, "bfloat16"), [4])
    stepwise = _train(_pendulum_model(name, "bfloat16"), [1, 1, 1, 1])
    torch.testing.assert_close(once, stepwise, rtol=0, atol=0)


def _gradients(model) -> tuple[torch.Tensor, torch.Tensor, dict]:
    _train(model, [1])
    critic = torch.cat([p.grad.flatten() for p in model.critic.parameters() if p.grad is not None])
    actor = torch.cat([p.grad.flatten() for p in model.actor.parameters() if p.grad is not None])
    return critic, actor, dict(model.logger.name_to_value)


@pytest.mark.parametrize("name", ["sac", "tqc"])
def test_bfloat16_gradient_step_matches_float32_on_saturated_actions(name: str) -> None:
    critic32, actor32, logged32 = _gradients(_pendulum_model(name, "float32", saturate=True))
    critic16, actor16, logged16 = _gradients(_pendulum_model(name, "bfloat16", saturate=True))
    for low, full in ((critic16, critic32), (actor16, actor32)):
        # The same direction and nearly the same size (the actor's was 0.45x, cosine 0.45, when the
        # log-probability was computed in bfloat16).
        assert torch.nn.functional.cosine_similarity(low, full, dim=0) > 0.999
        assert abs(low.norm() / full.norm() - 1) < 0.02
    # The entropy temperature's loss is -log(alpha) * (log_prob + target): it was twice the float32
    # value (33.1 against 16.5) with tanh saturating in bfloat16.
    assert logged16["train/ent_coef_loss"] == pytest.approx(logged32["train/ent_coef_loss"], rel=1e-3)
    assert logged16["train/actor_loss"] == pytest.approx(logged32["train/actor_loss"], rel=1e-2)


@pytest.mark.parametrize("name", ["sac", "tqc"])
def test_target_bound_clips_the_target_networks_to_the_sparse_return_range(name: str, tmp_path) -> None:
    # algo.target_bound: sparse keeps every target value in [-1/(1-gamma), 0] (baselines'
    # clip_return); the critic itself is not clipped, and the saved model is the plain class's.
    cls = model_class(
        AlgoConfig.model_validate({"name": name, "precision": "bfloat16", "target_bound": "sparse"})
    )
    model = cls(
        "MlpPolicy", gym.make("Pendulum-v1"), gamma=0.9, policy_kwargs={"net_arch": [16]}, device="cpu"
    )
    assert isinstance(model, Bfloat16Training) and type(model).__name__ == name.upper()
    obs = torch.zeros((4, 3))
    action = torch.zeros((4, 1))
    for bias, bound in ((100.0, 0.0), (-100.0, -10.0)):
        with torch.no_grad():
            for network in (model.critic, model.critic_target):
                for head in networks(network):  # each Q or quantile head: its output layer
                    last = [m for m in head.modules() if isinstance(m, torch.nn.Linear)][-1]
                    last.bias.fill_(bias)
                    last.weight.zero_()
            target = model.critic_target(obs, action)
            values = torch.cat(target) if isinstance(target, tuple) else target
            critic = model.critic(obs, action)
            raw = torch.cat(critic) if isinstance(critic, tuple) else critic
        assert torch.all(values == bound) and torch.all(raw == bias)
    model.save(tmp_path / "m.zip")
    plain_class = {"tqc": TQC, "sac": SAC}[name]
    assert type(plain_class.load(tmp_path / "m.zip", device="cpu")) is plain_class


def test_target_bound_is_refused_for_bc() -> None:
    with pytest.raises(UsageError) as err:
        presets.load("point-tasks-bc", sets=["algo.target_bound=sparse"])
    assert "algo.target_bound" in str(err.value)
