"""The callback SB3's ``learn`` calls after each env step: counts env steps and training success,
and hands the step to the run's jobs in order (evaluations, a stop, checkpoints, progress)."""

from __future__ import annotations

import time
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback

from mtgc_cli import checkpoint
from mtgc_cli.errors import RunFailed
from mtgc_cli.evaluation import EvalResult
from mtgc_cli.finite import non_finite_parameter
from mtgc_cli.notices import Reporter, Snapshot
from mtgc_cli.stop import StopRequest
from mtgc_cli.training.evals import Evaluator
from mtgc_cli.training.setup import Setup

REPORT_EVERY = 0.5  # seconds between progress snapshots


class RunCallback(BaseCallback):
    """One env step of a run: its clock, then each job that is due.

    The jobs are small parts, each with one concern: :class:`Evaluator` (evals, progress.csv,
    best model, videos), :meth:`save_checkpoint` (the checkpoint schedule), :meth:`send`
    (progress snapshots), and the :class:`StopRequest` check.
    """

    def __init__(
        self,
        setup: Setup,
        run_dir: Path,
        report: Reporter | None,
        stop: StopRequest,
        resumed: dict[str, Any] | None = None,
    ):
        super().__init__()
        self.setup = setup
        self.run_dir = run_dir
        self.report = report
        self.stop = stop
        self.train_cfg = setup.config.train
        self.evals = Evaluator(setup, run_dir)
        self.recent_success: deque[float] = deque(maxlen=100)
        # Env steps, not SB3's timesteps: with env.action_repeat one SB3 step (a decision) is
        # several env steps, and budgets, evals and progress are all in env steps.
        self.env_steps = 0
        self.next_checkpoint = self.train_cfg.checkpoint_every
        self.checkpoint_seconds = 0.0
        self.last_checkpoint: checkpoint.Checkpoint | None = None
        self.resumed_at: list[int] = []
        self.start = time.perf_counter()
        self.last_report = 0.0
        if resumed is not None:
            self._load_state(resumed)
        else:
            self.evals.start_progress_file()

    # What a checkpoint keeps of the run's training state, and how a resumed run takes it back.
    def state(self) -> dict[str, Any]:
        return {
            "env_steps": self.env_steps,
            "next_checkpoint": self.next_checkpoint,
            **self.evals.state(),
            "recent_success": list(self.recent_success),
            "wall_seconds": time.perf_counter() - self.start,
            "checkpoint_seconds": self.checkpoint_seconds,
            "resumed_at": self.resumed_at,
        }

    def _load_state(self, state: dict[str, Any]) -> None:
        self.env_steps = state["env_steps"]
        self.evals.load_state(state, self.env_steps)
        self.recent_success.extend(state["recent_success"])
        self.next_checkpoint = state["next_checkpoint"]
        self.checkpoint_seconds = state["checkpoint_seconds"]
        self.resumed_at = [*state["resumed_at"], self.env_steps]
        # wall_seconds in progress.csv goes on from where the stopped run was.
        self.start = time.perf_counter() - state["wall_seconds"]

    @property
    def train_success(self) -> float | None:
        return float(np.mean(self.recent_success)) if self.recent_success else None

    @property
    def fps(self) -> float:
        return self.env_steps / max(time.perf_counter() - self.start, 1e-9)

    @property
    def last_eval(self) -> EvalResult | None:
        return self.evals.last

    @property
    def last_eval_step(self) -> int:
        return self.evals.last_step

    def _on_step(self) -> bool:
        for done, info in zip(self.locals["dones"], self.locals["infos"], strict=True):
            self.env_steps += int(info.get("env_steps", 1))
            if done and "is_success" in info:
                self.recent_success.append(float(info["is_success"]))
        # SB3's clock in env steps: it has just added one per env (a decision each); under an
        # action repeat that is fewer than the env steps taken. Set here, before SB3 reads it
        # for learning_starts, its progress schedules and exploration, so all count env steps.
        self.model.num_timesteps = self.env_steps
        if self.evals.due(self.env_steps):
            self.run_eval()
        if self.stop.signum is not None:
            # Stop here, before SB3 stores this step: the whole checkpoint is written once
            # learn() has returned, and the transition of this last step is not in it.
            return False
        due = self.next_checkpoint is not None and self.env_steps >= self.next_checkpoint
        # The last one is written when training ends, after the final eval.
        if due and self.env_steps < self.train_cfg.timesteps:
            self.save_checkpoint()
        now = time.perf_counter()
        if self.report is not None and now - self.last_report > REPORT_EVERY:
            self.last_report = now
            self.send("running")
        # Stop at the env-step budget (with an action repeat SB3's budget, in decisions, is
        # larger), before SB3 trains once more: the model that ends the run (model.zip, the
        # last checkpoint) is then the one its final eval scored.
        return self.env_steps < self.train_cfg.timesteps

    def check_finite(self) -> None:
        """Stop a diverged run before it evaluates or checkpoints NaNs: the last checkpoint stays."""
        broken = non_finite_parameter(self.model.policy.named_parameters())
        if broken is not None:
            kept = self.last_checkpoint.path if self.last_checkpoint else "none (no checkpoint yet)"
            raise RunFailed(
                f"training diverged at {self.env_steps:,} env steps: the policy's {broken} holds inf "
                f"or NaN; the last finite checkpoint: {kept}; valid: a smaller algo.learning_rate"
            )

    def run_eval(self) -> EvalResult:
        self.check_finite()
        wall = time.perf_counter() - self.start
        return self.evals.run(self.model, self.logger, self.env_steps, wall, self.train_success, self.fps)

    def evaluate_best_fresh(self) -> None:
        self.evals.best_fresh(self.model, self.logger, self.env_steps)

    def save_checkpoint(self) -> checkpoint.Checkpoint:
        """A whole checkpoint at the current step (the previous ones pruned once it is whole)."""
        self.check_finite()
        every = self.train_cfg.checkpoint_every
        if every is not None:
            while self.next_checkpoint is not None and self.next_checkpoint <= self.env_steps:
                self.next_checkpoint += every
        written = checkpoint.write(
            self.run_dir,
            self.env_steps,
            self.model,
            self.setup.env,
            self.setup.eval_env,
            self.state(),
            self.setup.config,
        )
        checkpoint.prune(self.run_dir, self.train_cfg.keep_checkpoints)
        self.checkpoint_seconds += written.seconds
        self.last_checkpoint = written
        self.logger.record("checkpoint/seconds", written.seconds)
        self.logger.record("checkpoint/megabytes", written.bytes / 1e6)
        self.logger.dump(self.env_steps)
        return written

    def send(self, status: str) -> None:
        if self.report is not None:
            last = self.evals.last
            self.report(
                Snapshot(
                    run=self.run_dir.name,
                    steps=self.env_steps,
                    total=self.train_cfg.timesteps,
                    fps=self.fps,
                    train_success=self.train_success,
                    eval_success=last.success if last else None,
                    status=status,
                )
            )
