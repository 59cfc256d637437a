"""The evaluations of a run: every ``train.eval_every`` env steps, a row of ``progress.csv``, the
best-model choice (a re-evaluation decides), videos when due, and a fresh score of the chosen
model when the run ends."""

from __future__ import annotations

import copy
import pickle
import time
from pathlib import Path
from typing import Any

from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.logger import Logger
from stable_baselines3.common.vec_env import VecNormalize, sync_envs_normalization

from mtgc_cli import runs
from mtgc_cli.evaluation import EvalResult, evaluate
from mtgc_cli.notices import warn
from mtgc_cli.training.best import BestModel, recheck_factor, save_model
from mtgc_cli.training.setup import Setup
from mtgc_cli.video import EvalVideos, log_to_tensorboard


class Evaluator:
    """Runs a run's evaluations on its eval envs and records them; holds the eval schedule."""

    def __init__(self, setup: Setup, run_dir: Path):
        self.setup = setup
        self.run_dir = run_dir
        self.train_cfg = setup.config.train
        self.task_names = setup.config.env.task_labels
        self.seconds = 0.0  # time spent evaluating, videos included
        self.next_eval = self.train_cfg.eval_every
        # Videos are taken at the first eval at or after each multiple of video_every.
        self.next_video = self.train_cfg.video_every if setup.records else None
        self.last: EvalResult | None = None
        self.last_step = -1
        self.best = BestModel()
        self.recheck_counts = [n * recheck_factor(self.train_cfg.eval_episodes) for n in setup.eval_counts]

    def start_progress_file(self) -> None:
        runs.start_progress(self.run_dir, self.task_names)

    # What a checkpoint keeps of the evaluations (keys of the trainer state), and taking it back.
    def state(self) -> dict[str, Any]:
        return {
            "eval_seconds": self.seconds,
            "next_eval": self.next_eval,
            "next_video": self.next_video,
            "last_eval": self.last,
            "last_eval_step": self.last_step,
            "best": self.best,
        }

    def load_state(self, state: dict[str, Any], env_steps: int) -> None:
        self.seconds = state["eval_seconds"]
        self.next_eval = state["next_eval"]
        self.last = state["last_eval"]
        self.last_step = state["last_eval_step"]
        self.best = state["best"]
        every = self.train_cfg.video_every
        if self.next_video is not None and every is not None:
            # A checkpoint of an mtgc without videos: the next multiple of video_every.
            self.next_video = state.get("next_video") or (env_steps // every + 1) * every

    def due(self, env_steps: int) -> bool:
        """Whether an eval is due at ``env_steps``; moves the schedule past it when it is."""
        if env_steps < self.next_eval:
            return False
        while self.next_eval <= env_steps:
            self.next_eval += self.train_cfg.eval_every
        return True

    def _evaluate(
        self, model: BaseAlgorithm, counts: list[int], videos: EvalVideos | None = None
    ) -> EvalResult:
        """Deterministic episodes on the eval envs, the time they take (videos included) counted."""
        start = time.perf_counter()
        result = evaluate(model, self.setup.eval_env, counts, self.task_names, videos=videos)
        self.seconds += time.perf_counter() - start
        return result

    def _videos_due(self, env_steps: int) -> EvalVideos | None:
        """A recorder for this eval's first episodes, when a video is due (never for re-evaluations)."""
        every = self.train_cfg.video_every
        if self.next_video is None or every is None or env_steps < self.next_video:
            return None
        while self.next_video <= env_steps:
            self.next_video += every
        env = self.setup.config.env
        return EvalVideos(
            runs.train_video_dir(self.run_dir, env_steps),
            per_task=min(self.train_cfg.video_episodes, self.train_cfg.eval_episodes),
            task_names=self.task_names,
            env_label=env.label,
            success_key=env.success_key,
            previews=True,
        )

    def _videos_done(self, videos: EvalVideos, logger: Logger, env_steps: int) -> None:
        if videos.problem is not None:
            # Rendering fails the same way every time: one line, and no more tries in this run.
            warn(f"{videos.problem}; no more videos in this run, training goes on")
            self.next_video = None
            return
        try:
            log_to_tensorboard(logger, videos.videos, env_steps)
        except Exception as exc:  # training never fails because of a video
            warn(f"TensorBoard preview of the videos at {env_steps:,} env steps failed ({exc})")

    def run(
        self,
        model: BaseAlgorithm,
        logger: Logger,
        env_steps: int,
        wall: float,
        train_success: float | None,
        fps: float,
    ) -> EvalResult:
        """An eval at ``env_steps``: its row in progress.csv and TensorBoard, a best-model candidate."""
        train_env = model.get_vec_normalize_env()
        if isinstance(train_env, VecNormalize):
            sync_envs_normalization(train_env, self.setup.eval_env)
        videos = self._videos_due(env_steps)
        result = self._evaluate(model, self.setup.eval_counts, videos)
        if videos is not None:
            self._videos_done(videos, logger, env_steps)
        self.last = result
        self.last_step = env_steps
        row: list[Any] = [
            env_steps,
            round(wall, 2),
            round(result.success, 4),
            round(result.overall.mean_return, 4),
            "" if train_success is None else round(train_success, 4),
            round(fps, 1),
            int(getattr(model, "_n_updates", 0)),
            round(self.seconds, 2),
        ]
        row += [round(r.success, 4) for r in result.rows] if self.task_names else []
        runs.append_progress(self.run_dir, row)
        logger.record("eval/success_rate", result.success)
        logger.record("eval/mean_return", result.overall.mean_return)
        for task_row in result.rows if self.task_names else []:
            logger.record(f"eval/success_{task_row.name}", task_row.success)
        logger.dump(env_steps)
        if self.best.is_candidate(result.success):
            recheck = self._evaluate(model, self.recheck_counts)
            logger.record("eval/recheck_success", recheck.success)
            logger.dump(env_steps)
            if self.best.offer(env_steps, result.success, recheck):
                save_model(model, self.run_dir / runs.BEST_MODEL)
        return result

    def best_fresh(self, model: BaseAlgorithm, logger: Logger, env_steps: int) -> None:
        """The chosen model (best_model.zip) on new episodes, its score for the summary.

        Its weights and normalisation statistics are read from the files, evaluated on the eval
        envs (whose random stream goes on: no episode repeats), and the training model's own
        parameters are put back, optimiser state included.
        """
        best_path = self.run_dir / runs.BEST_MODEL
        if self.best.success is None or not best_path.is_file():
            return
        # A copy: the state dicts hold the live tensors, which loading the best model overwrites.
        current = copy.deepcopy(model.get_parameters())
        eval_env = self.setup.eval_env
        stats_path = runs.stats_path_for(best_path)
        saved_rms = None
        if isinstance(eval_env, VecNormalize) and stats_path.is_file():
            with stats_path.open("rb") as f:
                saved = pickle.load(f)
            saved_rms = eval_env.obs_rms
            eval_env.obs_rms = saved.obs_rms
        try:
            model.set_parameters(str(best_path), exact_match=False)
            self.best.fresh = self._evaluate(model, self.recheck_counts)
        finally:
            model.set_parameters(current, exact_match=True)
            if saved_rms is not None:
                assert isinstance(eval_env, VecNormalize)
                eval_env.obs_rms = saved_rms
        logger.record("eval/best_fresh_success", self.best.fresh.success)
        logger.dump(env_steps)
