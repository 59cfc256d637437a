"""The training loop around SB3's ``model.learn``: envs, buffer, model, callbacks, run files."""

from __future__ import annotations

import csv
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback, CallbackList, CheckpointCallback
from stable_baselines3.common.logger import configure
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from stable_baselines3.common.vec_env import VecEnv, VecNormalize, sync_envs_normalization

from mtgc_cli import runs
from mtgc_cli.algos import make_model
from mtgc_cli.console import Snapshot
from mtgc_cli.envs.factory import make_vec_env, normalize
from mtgc_cli.errors import RunFailed
from mtgc_cli.evaluation import EvalResult, check_success_signal, evaluate, make_eval_env
from mtgc_cli.features import clipped_extractor
from mtgc_cli.presets import AlgoConfig, RunConfig
from mtgc_cli.relabel import replay_setup
from mtgc_cli.seeding import Stream

Reporter = Callable[[Snapshot], None]


@dataclass
class Setup:
    """Everything a run needs, built and checked before its folder is created."""

    config: RunConfig
    env: VecEnv
    eval_env: VecEnv
    eval_counts: list[int]
    model: OffPolicyAlgorithm

    def close(self) -> None:
        self.env.close()
        self.eval_env.close()


def _algo_with_input_clip(config: RunConfig, env: VecEnv) -> AlgoConfig:
    """The algo section, with the policy clipping its normalised input when observations are normalised."""
    algo = config.algo
    if not config.env.normalize:
        return algo
    policy_kwargs = dict(algo.kwargs.get("policy_kwargs") or {})
    if "features_extractor_class" in policy_kwargs:
        return algo  # the preset chose its own extractor
    policy_kwargs["features_extractor_class"] = clipped_extractor(env.observation_space)
    policy_kwargs["features_extractor_kwargs"] = {
        **policy_kwargs.get("features_extractor_kwargs", {}),
        "clip": config.env.normalize_clip,
    }
    return AlgoConfig.model_validate({**algo.model_dump(), "policy_kwargs": policy_kwargs})


def prepare(config: RunConfig) -> Setup:
    """Build envs, replay buffer and model; any bad input raises before anything is written."""
    seed = config.train.seed
    env = normalize(make_vec_env(config.env, seed=seed, stream=Stream.TRAIN), config.env, training=True)
    try:
        buffer_class, buffer_kwargs = replay_setup(config, env)
        model = make_model(
            _algo_with_input_clip(config, env),
            env,
            seed=seed,
            replay_buffer_class=buffer_class,
            replay_buffer_kwargs=buffer_kwargs,
            tensorboard_log=None,
        )
        # Evaluation runs on separate envs with their own seeds, so it never disturbs training.
        eval_env, counts = make_eval_env(config, config.train.eval_episodes, seed=seed, stream=Stream.EVAL)
        try:
            check_success_signal(eval_env, config)
        except BaseException:
            eval_env.close()
            raise
    except BaseException:
        env.close()
        raise
    return Setup(config=config, env=env, eval_env=eval_env, eval_counts=counts, model=model)


def save_model(model: OffPolicyAlgorithm, model_path: Path) -> None:
    model.save(model_path)
    vec_normalize = model.get_vec_normalize_env()
    if vec_normalize is not None:
        vec_normalize.save(str(runs.stats_path_for(model_path)))


class PrunedCheckpoints(CheckpointCallback):
    """SB3's checkpoints, keeping only the newest ``keep`` (with their statistics)."""

    def __init__(self, keep: int | None, **kwargs: Any):
        super().__init__(**kwargs)
        self.keep = keep

    def _on_step(self) -> bool:
        result = super()._on_step()
        if self.keep is not None and self.n_calls % self.save_freq == 0:
            folder = Path(self.save_path)
            models = sorted(folder.glob("rl_model_*_steps.zip"), key=lambda p: int(p.stem.split("_")[-2]))
            for old in models[: -self.keep]:
                old.unlink()
                runs.stats_path_for(old).unlink(missing_ok=True)
        return result


# A re-evaluation runs this many times the eval's episodes, at most RECHECK_MAX_EPISODES per task:
# four times the episodes halve the standard error of a success rate.
RECHECK_FACTOR = 4
RECHECK_MAX_EPISODES = 100


def recheck_factor(eval_episodes: int) -> int:
    """How many times ``train.eval_episodes`` a best-model re-evaluation runs (at least once)."""
    return max(1, min(RECHECK_FACTOR, RECHECK_MAX_EPISODES // eval_episodes))


@dataclass
class BestModel:
    """Which model is ``best_model.zip``: a noisy eval proposes, a re-evaluation decides.

    The maximum over many noisy evals picks lucky models and overstates them: a fetch-push run
    kept a near-random policy for one 0.20 over 20 episodes. Here an eval whose success reaches
    the best re-evaluated success so far (any eval, the first time) makes its model a candidate,
    which is evaluated again on new episodes (the eval envs' random stream goes on, so none
    repeats the screening episodes); the candidate becomes the best model if this second score
    is at least the best one's (ties go to the later, more trained model). The reported success
    is that second score, on episodes the choice was not made from.
    """

    success: float | None = None  # the best model's re-evaluated success
    low: float | None = None  # its 95% Wilson interval
    high: float | None = None
    episodes: int = 0  # episodes of that re-evaluation, all tasks together
    step: int = 0  # env steps at which it was saved
    screen_success: float | None = None  # the eval that proposed it

    def is_candidate(self, screen_success: float) -> bool:
        if self.success is None:
            return True  # the first eval always gives a best model
        if self.success >= 1.0:
            return False  # a perfect re-evaluation cannot be beaten, only tied
        # An eval at 0 cannot show a model better than anything; skipping it saves the
        # re-evaluations of a run that has learnt nothing yet.
        return screen_success > 0.0 and screen_success >= self.success

    def offer(self, step: int, screen_success: float, recheck: EvalResult) -> bool:
        """Take the candidate if its re-evaluation is at least the best's; True if taken."""
        if self.success is not None and recheck.success < self.success:
            return False
        overall = recheck.overall
        self.success, self.low, self.high = recheck.success, overall.success_low, overall.success_high
        self.episodes, self.step, self.screen_success = overall.episodes, step, screen_success
        return True

    def summary(self, eval_episodes: int, n_tasks: int) -> dict[str, Any]:
        """The ``best_*`` keys of summary.json, including how the model was chosen."""
        per_task = eval_episodes * recheck_factor(eval_episodes)
        return {
            "best_eval_success": self.success,
            "best_eval_interval": None if self.low is None else [self.low, self.high],
            "best_eval_episodes": self.episodes,
            "best_eval_step": self.step,
            "best_screen_success": self.screen_success,
            "best_selection": (
                f"re-evaluated on {per_task} new episodes{' per task' if n_tasks > 1 else ''} each "
                "time an eval reached the best re-evaluated success so far; kept the highest "
                "re-evaluated success (ties: the later model); best_eval_success is that "
                "re-evaluation, best_screen_success the eval that proposed it"
            ),
        }


class RunCallback(BaseCallback):
    """Tracks training success, evaluates every N steps, keeps the best model, reports progress."""

    def __init__(self, setup: Setup, run_dir: Path, report: Reporter | None):
        super().__init__()
        self.setup = setup
        self.run_dir = run_dir
        self.report = report
        self.train_cfg = setup.config.train
        self.task_names = setup.config.env.task_labels
        self.recent_success: deque[float] = deque(maxlen=100)
        # Env steps, not SB3's timesteps: with env.action_repeat one SB3 step (a decision) is
        # several env steps, and budgets, evals and progress are all in env steps.
        self.env_steps = 0
        self.eval_seconds = 0.0
        self.next_eval = self.train_cfg.eval_every
        self.last_eval: EvalResult | None = None
        self.last_eval_step = -1
        self.best = BestModel()
        self.recheck_counts = [n * recheck_factor(self.train_cfg.eval_episodes) for n in setup.eval_counts]
        self.start = time.perf_counter()
        self.last_report = 0.0
        self.progress_file = run_dir / runs.PROGRESS
        fields = runs.PROGRESS_FIELDS + [f"success/{name}" for name in self.task_names]
        with self.progress_file.open("w", newline="") as f:
            csv.writer(f).writerow(fields)

    @property
    def train_success(self) -> float | None:
        return float(np.mean(self.recent_success)) if self.recent_success else None

    @property
    def fps(self) -> float:
        return self.env_steps / max(time.perf_counter() - self.start, 1e-9)

    def _on_step(self) -> bool:
        for done, info in zip(self.locals["dones"], self.locals["infos"], strict=True):
            self.env_steps += int(info.get("env_steps", 1))
            if done and "is_success" in info:
                self.recent_success.append(float(info["is_success"]))
        if self.env_steps >= self.next_eval:
            self.run_eval()
            while self.next_eval <= self.env_steps:
                self.next_eval += self.train_cfg.eval_every
        now = time.perf_counter()
        if self.report is not None and now - self.last_report > 0.5:
            self.last_report = now
            self.send("running")
        # SB3 stops at `timesteps` decisions by itself; with an action repeat the env-step budget
        # is reached first, and this stops it there.
        return self.env_steps < self.train_cfg.timesteps or self.setup.config.env.action_repeat == 1

    def send(self, status: str) -> None:
        if self.report is not None:
            self.report(
                Snapshot(
                    run=self.run_dir.name,
                    steps=self.env_steps,
                    total=self.train_cfg.timesteps,
                    fps=self.fps,
                    train_success=self.train_success,
                    eval_success=self.last_eval.success if self.last_eval else None,
                    status=status,
                )
            )

    def run_eval(self) -> EvalResult:
        train_env = self.model.get_vec_normalize_env()
        if isinstance(train_env, VecNormalize):
            sync_envs_normalization(train_env, self.setup.eval_env)
        eval_start = time.perf_counter()
        result = evaluate(self.model, self.setup.eval_env, self.setup.eval_counts, self.task_names)
        self.eval_seconds += time.perf_counter() - eval_start
        self.last_eval = result
        self.last_eval_step = self.env_steps
        wall = time.perf_counter() - self.start
        row: list[Any] = [
            self.env_steps,
            round(wall, 2),
            round(result.success, 4),
            round(result.overall.mean_return, 4),
            "" if self.train_success is None else round(self.train_success, 4),
            round(self.fps, 1),
            int(getattr(self.model, "_n_updates", 0)),
            round(self.eval_seconds, 2),
        ]
        row += [round(r.success, 4) for r in result.rows] if self.task_names else []
        with self.progress_file.open("a", newline="") as f:
            csv.writer(f).writerow(row)
        self.logger.record("eval/success_rate", result.success)
        self.logger.record("eval/mean_return", result.overall.mean_return)
        for task_row in result.rows if self.task_names else []:
            self.logger.record(f"eval/success_{task_row.name}", task_row.success)
        self.logger.dump(self.env_steps)
        if self.best.is_candidate(result.success):
            recheck_start = time.perf_counter()
            recheck = evaluate(self.model, self.setup.eval_env, self.recheck_counts, self.task_names)
            self.eval_seconds += time.perf_counter() - recheck_start
            self.logger.record("eval/recheck_success", recheck.success)
            self.logger.dump(self.env_steps)
            if self.best.offer(self.env_steps, result.success, recheck):
                save_model(self.model, self.run_dir / runs.BEST_MODEL)
        return result


def train(setup: Setup, run_dir: Path, report: Reporter | None = None) -> dict[str, Any]:
    """Train to ``train.timesteps`` with evaluation and checkpoints; write the run's files."""
    config = setup.config
    model = setup.model
    model.set_logger(configure(str(run_dir / "tb"), ["tensorboard"]))
    run_callback = RunCallback(setup, run_dir, report)
    callbacks: list[BaseCallback] = [run_callback]
    if config.train.checkpoint_every:
        callbacks.append(
            PrunedCheckpoints(
                keep=config.train.keep_checkpoints,
                # SB3 counts calls, each of which steps every env once.
                save_freq=max(config.train.checkpoint_every // (model.n_envs * config.env.action_repeat), 1),
                save_path=str(run_dir / runs.CHECKPOINTS),
                save_vecnormalize=True,
            )
        )
    status = "done"
    try:
        model.learn(total_timesteps=config.train.timesteps, callback=CallbackList(callbacks))
    except KeyboardInterrupt:
        status = "interrupted"
    except (RuntimeError, ValueError, FloatingPointError) as exc:
        raise RunFailed(f"training failed at {run_callback.env_steps:,} env steps: {exc}") from exc
    if status == "done" and run_callback.last_eval_step != run_callback.env_steps:
        run_callback.run_eval()
    save_model(model, run_dir / runs.MODEL)
    last = run_callback.last_eval
    summary: dict[str, Any] = {
        "run_dir": str(run_dir),
        "preset": config.name,
        "status": status,
        "strategy": config.relabel.label,
        "seed": config.train.seed,
        "steps": run_callback.env_steps,
        "seconds": round(time.perf_counter() - run_callback.start, 2),
        "final_eval_success": last.success if last else None,
        "final_eval_step": run_callback.last_eval_step if last else None,
        **run_callback.best.summary(config.train.eval_episodes, len(config.env.task_labels)),
        "final_task_success": {r.name: r.success for r in last.rows}
        if last and config.env.is_multitask
        else None,
    }
    runs.write_summary(run_dir, summary)
    run_callback.send(status)
    return summary


def run(
    setup: Setup,
    root: Path,
    report: Reporter | None = None,
    run_dir: Path | None = None,
    command: list[str] | None = None,
) -> dict[str, Any]:
    """Create the run folder and train a prepared setup. A failed start leaves no folder behind."""
    run_dir = run_dir or runs.new_run_dir(root, setup.config)
    try:
        runs.write_run_files(run_dir, setup.config, command)
        return train(setup, run_dir, report)
    except BaseException:
        runs.remove_unfinished(run_dir)
        raise
    finally:
        setup.close()
