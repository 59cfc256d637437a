"""Behaviour cloning: a task- and goal-conditioned policy fitted to demonstrations.

The objective is ``min_theta sum_i L(theta, D_i)`` over the tasks' demonstration sets, with
``L = -E log pi_theta(a | s, z_i)`` (``head: gaussian``) or the squared error of a deterministic
policy (``head: deterministic``, the Gaussian's mean with fixed variance); ``s`` holds the goal and
``z_i`` is the task one-hot, both read from the observation as the env builder makes it.

:class:`BehaviourCloning` is an SB3 algorithm (``algo.name: bc``), so ``mtgc train``, ``compare``
and ``eval`` run it through the same code as SAC: run folder, live view, ``progress.csv``,
checkpoints, best-model selection, ``model.predict``. What differs is ``learn``: one "step" is
one gradient step on a minibatch of demonstrations (nothing steps the env while training), so
``train.timesteps``, ``eval_every`` and ``checkpoint_every`` count gradient steps, and so does
``progress.csv``'s ``env_steps`` column; ``train_success`` stays empty. Each step calls the
callbacks with SB3's per-step locals (``dones`` all False, ``infos`` empty), as a rollout step does.

How minibatches are drawn follows the preset's ``relabel`` section, through the replay-buffer
arguments mtgc builds from it: ``relabel.sampling`` (stratified or uniform over tasks) and
``relabel.strategy`` / ``n_sampled_goal`` (goal relabeling of demonstrations); see ``batches.py``.
Every ``validation_every`` steps the loss on held-out episodes is logged (TensorBoard
``bc/validation_loss``) and appended to ``bc_loss.csv`` in the run folder.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.type_aliases import MaybeCallback, PyTorchObs
from stable_baselines3.common.vec_env import VecEnv

from mtgc_cli.envs.factory import base_attr
from mtgc_cli.errors import UsageError
from mtgc_cli.imitation import dataset as datasets
from mtgc_cli.imitation.batches import DemoSampler, split_episodes
from mtgc_cli.imitation.policy import HEADS, TASK_KEY, BCPolicy, NormalizedInput

__all__ = ["HEADS", "TASK_KEY", "BCPolicy", "BehaviourCloning", "NormalizedInput", "minibatch_plan"]

# The validation loss is computed on at most this many held-out rows (a fixed random subset).
MAX_VALIDATION_ROWS = 20_000


def minibatch_plan(replay_buffer_kwargs: dict[str, Any] | None) -> tuple[str, str, float]:
    """(sampling, goal strategy, relabeled fraction) from the replay arguments of the relabel section."""
    kwargs = replay_buffer_kwargs or {}
    if kwargs.get("task_relabel", "none") != "none":
        raise ValueError(
            "relabel.task: cross-task relabeling of demonstrations is not supported; valid: none"
        )
    goal = str(kwargs.get("goal_strategy", kwargs.get("goal_selection_strategy", "none")))
    n_sampled = int(kwargs.get("n_sampled_goal", 4))
    fraction = 0.0 if goal == "none" else 1.0 - 1.0 / (n_sampled + 1)
    return str(kwargs.get("sampling", "uniform")), goal, fraction


class BehaviourCloning(BaseAlgorithm):
    """Behaviour cloning from a Minari dataset of demonstrations (see the module docstring).

    Args:
        dataset: the Minari dataset id, e.g. ``mtgc/point-tasks-v0`` (made by ``mtgc collect``).
        data_dir: the folder of datasets (default: ``$MINARI_DATASETS_PATH``, else ``./data``).
        head: ``deterministic`` (squared error) or ``gaussian`` (``-log pi``).
        validation_fraction: share of each task's episodes held out for the validation loss.
        validation_every: gradient steps between two validation losses.
    """

    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = {
        "MlpPolicy": BCPolicy,
        "MultiInputPolicy": BCPolicy,
    }
    policy: BCPolicy

    def __init__(
        self,
        policy: str | type[BCPolicy],
        env: VecEnv,
        dataset: str | None = None,
        data_dir: str | None = None,
        head: str = "deterministic",
        learning_rate: float = 1e-3,
        batch_size: int = 256,
        validation_fraction: float = 0.1,
        validation_every: int = 1000,
        policy_kwargs: dict[str, Any] | None = None,
        replay_buffer_class: type | None = None,
        replay_buffer_kwargs: dict[str, Any] | None = None,
        tensorboard_log: str | None = None,
        verbose: int = 0,
        seed: int | None = None,
        device: th.device | str = "auto",
        _init_setup_model: bool = True,
    ) -> None:
        super().__init__(
            policy,
            env,
            learning_rate,
            policy_kwargs=policy_kwargs,
            tensorboard_log=tensorboard_log,
            verbose=verbose,
            device=device,
            seed=seed,
            # Evaluation runs several env slots at once; training steps none of them.
            support_multi_env=True,
            supported_action_spaces=(spaces.Box,),
        )
        self.dataset = dataset
        self.data_dir = data_dir
        self.head = head
        self.batch_size = batch_size
        self.validation_fraction = validation_fraction
        self.validation_every = validation_every
        self.sampling, self.goal_strategy, self.relabel_fraction = minibatch_plan(replay_buffer_kwargs)
        self._n_updates = 0
        self._sampler: DemoSampler | None = None
        self._validation: tuple[PyTorchObs, th.Tensor] | None = None
        # Where each loss row goes (the training loop sets it: bc_loss.csv in the run folder).
        self.loss_log: Callable[[list[Any]], None] | None = None
        if _init_setup_model:
            self._setup_model()
            self._load_demonstrations()

    def _get_torch_save_params(self) -> tuple[list[str], list[str]]:
        # The optimiser's state too (Adam's moments and step count), as SB3's SAC saves its
        # optimisers: a resumed run then continues the same optimisation instead of restarting it.
        return ["policy", "policy.optimizer"], []

    def _excluded_save_params(self) -> list[str]:
        # The demonstrations stay in the dataset; the saved model holds the policy only.
        return [*super()._excluded_save_params(), "_sampler", "_validation", "loss_log"]

    def _setup_model(self) -> None:
        self._setup_lr_schedule()
        self.set_random_seed(self.seed)
        self.policy = self.policy_class(  # type: ignore[assignment]
            self.observation_space, self.action_space, self.lr_schedule, head=self.head, **self.policy_kwargs
        ).to(self.device)

    # ------------------------------------------------------------------------------------------
    # Demonstrations

    def _load_demonstrations(self) -> None:
        if not self.dataset:
            raise UsageError(
                "algo.dataset is required for bc; valid: a Minari dataset id made by `mtgc collect`"
            )
        demos = datasets.read(datasets.data_root(self.data_dir), self.dataset)
        self._check_compatible(demos)
        rng = np.random.default_rng(self.seed)
        train_rows, validation_rows = split_episodes(demos, self.validation_fraction, rng)
        self._sampler = DemoSampler(
            demos, train_rows, rng, self.sampling, self.goal_strategy, self.relabel_fraction
        )  # type: ignore[arg-type]
        self.policy.features_extractor.set_statistics(
            {k: v[train_rows] for k, v in demos.observations.items()}
        )
        if len(validation_rows) > MAX_VALIDATION_ROWS:
            validation_rows = np.sort(rng.choice(validation_rows, MAX_VALIDATION_ROWS, replace=False))
        if len(validation_rows):
            obs = {key: value[validation_rows] for key, value in demos.observations.items()}
            self._validation = (self._to_torch(obs), self._actions(demos.actions[validation_rows]))
        # Saved with the model: what it was trained on.
        self.dataset_info = {
            "dataset": self.dataset,
            "episodes": demos.n_episodes,
            "steps": len(demos.actions),
            "validation_steps": len(validation_rows),
        }

    def _check_compatible(self, demos: datasets.Demonstrations) -> None:
        """The dataset must have been collected in an env like this run's: same spaces and tasks."""

        def shapes(space: spaces.Space) -> dict[str, tuple[int, ...]] | tuple[int, ...]:
            if isinstance(space, spaces.Dict):
                return {key: tuple(sub.shape or ()) for key, sub in space.spaces.items()}
            return tuple(space.shape or ())

        where = f"dataset {self.dataset}"
        if shapes(demos.observation_space) != shapes(self.observation_space):
            raise UsageError(
                f"{where} has observations {shapes(demos.observation_space)}, the preset's env "
                f"{shapes(self.observation_space)}; valid: a dataset collected in this env "
                "(mtgc collect --preset)"
            )
        if shapes(demos.action_space) != shapes(self.action_space):
            raise UsageError(
                f"{where} has actions {shapes(demos.action_space)}, the env {shapes(self.action_space)}"
            )
        assert self.env is not None
        env_tasks = [str(name) for name in base_attr(self.env, "task_names") or []]
        if demos.task_names and env_tasks and demos.task_names != env_tasks:
            raise UsageError(
                f"{where} has tasks {demos.task_names}, the preset's env {env_tasks}; "
                "valid: the same tasks in the same order"
            )

    def _to_torch(self, obs: dict[str, np.ndarray]) -> PyTorchObs:
        if isinstance(self.observation_space, spaces.Dict):
            return {key: th.as_tensor(value, device=self.device) for key, value in obs.items()}
        return th.as_tensor(obs["observation"], device=self.device)

    def _actions(self, actions: np.ndarray) -> th.Tensor:
        """Actions rescaled to [-1, 1], the policy's output range."""
        return th.as_tensor(self.policy.scale_action(actions), dtype=th.float32, device=self.device)

    # ------------------------------------------------------------------------------------------
    # Training

    def validation_loss(self) -> float | None:
        if self._validation is None:
            return None
        self.policy.set_training_mode(False)
        with th.no_grad():
            return float(self.policy.loss(*self._validation))

    def train_step(self) -> float:
        """One gradient step on one minibatch; returns its loss."""
        assert self._sampler is not None, "no demonstrations: a loaded bc model can act but not train"
        obs, actions = self._sampler.sample(self.batch_size)
        self.policy.set_training_mode(True)
        loss = self.policy.loss(self._to_torch(obs), self._actions(actions))
        self.policy.optimizer.zero_grad()
        loss.backward()
        self.policy.optimizer.step()
        self._n_updates += 1
        return loss.item()

    def learn(
        self,
        total_timesteps: int,
        callback: MaybeCallback = None,
        log_interval: int = 100,
        tb_log_name: str = "bc",
        reset_num_timesteps: bool = True,
        progress_bar: bool = False,
    ) -> BehaviourCloning:
        """``total_timesteps`` gradient steps, with the callbacks called after each."""
        total_timesteps, callback = self._setup_learn(
            total_timesteps, callback, reset_num_timesteps, tb_log_name, progress_bar
        )
        callback.on_training_start(locals(), globals())
        losses: list[float] = []
        start = time.perf_counter()
        while self.num_timesteps < total_timesteps:
            losses.append(self.train_step())
            self.num_timesteps += 1
            if self.num_timesteps % self.validation_every == 0 or self.num_timesteps == total_timesteps:
                self._record_losses(float(np.mean(losses)), time.perf_counter() - start)
                losses.clear()
            # A rollout step's locals, with no transition in them: one "step" is a gradient step.
            callback.update_locals({"dones": np.zeros(1, dtype=bool), "infos": [{}]})
            if not callback.on_step():
                break
        callback.on_training_end()
        return self

    def _record_losses(self, train_loss: float, seconds: float) -> None:
        validation = self.validation_loss()
        self.logger.record("bc/train_loss", train_loss)
        if validation is not None:
            self.logger.record("bc/validation_loss", validation)
        self.logger.dump(self.num_timesteps)
        if self.loss_log is not None:
            validation_cell = "" if validation is None else round(validation, 5)
            self.loss_log([self.num_timesteps, round(train_loss, 5), validation_cell, round(seconds, 2)])
