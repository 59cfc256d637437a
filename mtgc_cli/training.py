"""The training loop around SB3's ``model.learn``: envs, buffer, model, callbacks, run files."""

from __future__ import annotations

import copy
import csv
import os
import pickle
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import numpy as np
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import Logger, TensorBoardOutputFormat, configure
from stable_baselines3.common.vec_env import VecEnv, VecNormalize, sync_envs_normalization

from mtgc_cli import checkpoint, folder_lock, runs
from mtgc_cli.algos import make_model
from mtgc_cli.console import Snapshot, warn
from mtgc_cli.envs.factory import make_vec_env, normalize, task_encoding_for
from mtgc_cli.envs.task_encoding import TaskEncoding
from mtgc_cli.errors import RunFailed
from mtgc_cli.evaluation import EvalResult, check_success_signal, evaluate, make_eval_env
from mtgc_cli.features import clipped_extractor
from mtgc_cli.finite import non_finite_parameter
from mtgc_cli.presets import AlgoConfig, RunConfig
from mtgc_cli.relabel import replay_setup
from mtgc_cli.seeding import Stream
from mtgc_cli.video import EvalVideos, log_to_tensorboard, prefer_offscreen_gl

Reporter = Callable[[Snapshot], None]


@dataclass
class Setup:
    """Everything a run needs, built and checked before its folder is created."""

    config: RunConfig
    env: VecEnv
    eval_env: VecEnv
    eval_counts: list[int]
    model: BaseAlgorithm
    records: bool = False  # the eval envs render frames (train.video_every)
    encoding: TaskEncoding | None = None
    """The task vectors of a multi-task run (saved in the run folder for a language encoding)."""

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


# SB3 settings counted in its own steps, which are decisions under env.action_repeat (one SB3 step
# is `action_repeat` env steps). mtgc makes SB3's clock count env steps (RunCallback sets
# num_timesteps), so learning_starts, exploration_fraction and every progress schedule are in env
# steps as they are; these two count env.step calls themselves and are converted to decisions.
DECISION_COUNTS = ("train_freq", "target_update_interval")


def _algo_in_decisions(algo: AlgoConfig, repeat: int) -> AlgoConfig:
    """The algo section with its env-step counts of :data:`DECISION_COUNTS` in decisions (at least 1)."""
    if repeat == 1:
        return algo
    update: dict[str, Any] = {}
    freq = algo.kwargs.get("train_freq")
    if isinstance(freq, int):
        update["train_freq"] = max(1, round(freq / repeat))
    elif isinstance(freq, (list, tuple)) and freq[1] == "step":
        update["train_freq"] = [max(1, round(freq[0] / repeat)), "step"]
    interval = algo.kwargs.get("target_update_interval")
    if isinstance(interval, int):
        update["target_update_interval"] = max(1, round(interval / repeat))
    if not update:
        return algo
    return AlgoConfig.model_validate({**algo.model_dump(), **update})


def prepare(config: RunConfig, encoding: TaskEncoding | None = None) -> Setup:
    """Build envs, replay buffer and model; any bad input raises before anything is written.

    ``encoding``: the task vectors a resumed run was trained with (default: the preset's, embedded
    once here for a language encoding and shared by the training and evaluation envs).
    """
    seed = config.train.seed
    records = False
    if config.train.video_every is not None:
        from mtgc_cli.envs.recording import render_problem

        prefer_offscreen_gl()
        problem = render_problem(config.env)
        if problem is not None:
            warn(f"{problem}; training goes on without videos (train.video_every)")
        records = problem is None
    if config.env.is_multitask and encoding is None:
        encoding = task_encoding_for(config.env)
    env = normalize(
        make_vec_env(config.env, seed=seed, stream=Stream.TRAIN, encoding=encoding), config.env, training=True
    )
    try:
        buffer_class, buffer_kwargs = replay_setup(config, env)
        model = make_model(
            _algo_in_decisions(_algo_with_input_clip(config, env), config.env.action_repeat),
            env,
            seed=seed,
            replay_buffer_class=buffer_class,
            replay_buffer_kwargs=buffer_kwargs,
            tensorboard_log=None,
        )
        # SB3 seeds the training envs with seed + slot when the model is built (set_random_seed),
        # which overlaps between run seeds (seed 0's slot 1 is seed 1's slot 0). make_vec_env has
        # already seeded every slot from its own SeedSequence stream; drop SB3's pending seeds.
        env.unwrapped._reset_seeds()  # type: ignore[attr-defined]
        # Evaluation runs on separate envs with their own seeds, so it never disturbs training.
        eval_env, counts = make_eval_env(
            config,
            config.train.eval_episodes,
            seed=seed,
            stream=Stream.EVAL,
            encoding=encoding,
            record=records,
        )
        try:
            check_success_signal(eval_env, config)
        except BaseException:
            eval_env.close()
            raise
    except BaseException:
        env.close()
        raise
    return Setup(
        config=config,
        env=env,
        eval_env=eval_env,
        eval_counts=counts,
        model=model,
        records=records,
        encoding=encoding,
    )


def save_model(model: BaseAlgorithm, model_path: Path) -> None:
    """``model_path`` and its statistics, each replaced atomically: a stop mid-write keeps the old."""
    checkpoint.write_atomic(model_path, model.save)  # type: ignore[arg-type]
    vec_normalize = model.get_vec_normalize_env()
    if vec_normalize is not None:
        # What VecNormalize.save writes, into the temporary file.
        checkpoint.write_atomic(runs.stats_path_for(model_path), lambda f: pickle.dump(vec_normalize, f))


class StopRequest:
    """SIGINT and SIGTERM while training: stop at the next env step with a whole checkpoint.

    The handler only records the signal; the training loop checks it after each env step, where
    model, buffer and counters agree, and saves there. A second signal while it saves changes
    nothing, so a second Ctrl-C cannot leave a half-written checkpoint. Handlers are installed
    explicitly for both signals: a job started with ``&`` from a script inherits SIGINT ignored.
    """

    def __init__(self) -> None:
        self.signum: int | None = None

    @property
    def name(self) -> str | None:
        return None if self.signum is None else signal.Signals(self.signum).name

    @property
    def exit_code(self) -> int:
        """The shell's code for a process ended by the signal: 130 for SIGINT, 143 for SIGTERM."""
        return 128 + (self.signum or 0)

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is None:
            self.signum = signum
        elif signum == signal.SIGINT:  # Ctrl-C again (a repeated SIGTERM is a parent passing it on)
            # os.write, not print: a handler can run in the middle of another write to stderr.
            os.write(2, b"mtgc: stopping at the next env step with a whole checkpoint; please wait\n")

    def install(self) -> dict[int, Any]:
        """Install for SIGINT and SIGTERM (main thread only); returns the handlers it replaced."""
        if threading.current_thread() is not threading.main_thread():
            return {}
        return {signum: signal.signal(signum, self) for signum in (signal.SIGINT, signal.SIGTERM)}

    @contextmanager
    def installed(self) -> Iterator[StopRequest]:
        previous = self.install()
        try:
            yield self
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)


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
    # The chosen model evaluated once more when the run ends, on episodes no choice was made on.
    # The re-evaluation above is still a maximum: a model is kept only when its re-evaluation
    # beats the best so far, so across several candidates it reads high (a policy fixed at 0.5
    # was reported at 0.54-0.57 after 5-20 evals); this one is not.
    fresh: EvalResult | None = None

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
        chosen = (
            f"re-evaluated on {per_task} new episodes{' per task' if n_tasks > 1 else ''} each "
            "time an eval reached the best re-evaluated success so far; kept the highest "
            "re-evaluated success (ties: the later model); best_screen_success is the eval that "
            "proposed it, best_recheck_success the re-evaluation that chose it"
        )
        interval = None if self.low is None else [self.low, self.high]
        summary: dict[str, Any] = {
            "best_eval_success": self.success,
            "best_eval_interval": interval,
            "best_eval_episodes": self.episodes,
            "best_eval_step": self.step,
            "best_screen_success": self.screen_success,
            "best_recheck_success": self.success,
            "best_recheck_interval": interval,
            "best_eval_source": "recheck",
        }
        if self.fresh is not None:
            overall = self.fresh.overall
            summary.update(
                best_eval_success=self.fresh.success,
                best_eval_interval=[overall.success_low, overall.success_high],
                best_eval_episodes=overall.episodes,
                best_eval_source="fresh",
            )
            chosen += (
                f"; best_eval_success is the chosen model on {overall.episodes} more new episodes "
                "when the run ended, which chose nothing (unbiased)"
            )
        else:
            chosen += "; best_eval_success is that re-evaluation (the run stopped before a fresh one)"
        summary["best_selection"] = chosen
        return summary


class RunCallback(BaseCallback):
    """Tracks training success, evaluates every N steps, keeps the best model, writes checkpoints,
    reports progress, and stops the run when a signal asks for it."""

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
        self.task_names = setup.config.env.task_labels
        self.recent_success: deque[float] = deque(maxlen=100)
        # Env steps, not SB3's timesteps: with env.action_repeat one SB3 step (a decision) is
        # several env steps, and budgets, evals and progress are all in env steps.
        self.env_steps = 0
        self.eval_seconds = 0.0
        self.next_eval = self.train_cfg.eval_every
        self.next_checkpoint = self.train_cfg.checkpoint_every
        # Videos are taken at the first eval at or after each multiple of video_every.
        self.next_video = self.train_cfg.video_every if setup.records else None
        self.last_eval: EvalResult | None = None
        self.last_eval_step = -1
        self.best = BestModel()
        self.recheck_counts = [n * recheck_factor(self.train_cfg.eval_episodes) for n in setup.eval_counts]
        self.checkpoint_seconds = 0.0
        self.last_checkpoint: checkpoint.Checkpoint | None = None
        self.resumed_at: list[int] = []
        self.start = time.perf_counter()
        self.last_report = 0.0
        self.progress_file = run_dir / runs.PROGRESS
        if resumed is not None:
            self._load_state(resumed)
        else:
            fields = runs.PROGRESS_FIELDS + [f"success/{name}" for name in self.task_names]
            with self.progress_file.open("w", newline="") as f:
                csv.writer(f).writerow(fields)

    # What a checkpoint keeps of this callback, and how a resumed run takes it back.
    def state(self) -> dict[str, Any]:
        return {
            "env_steps": self.env_steps,
            "eval_seconds": self.eval_seconds,
            "next_eval": self.next_eval,
            "next_checkpoint": self.next_checkpoint,
            "next_video": self.next_video,
            "last_eval": self.last_eval,
            "last_eval_step": self.last_eval_step,
            "best": self.best,
            "recent_success": list(self.recent_success),
            "wall_seconds": time.perf_counter() - self.start,
            "checkpoint_seconds": self.checkpoint_seconds,
            "resumed_at": self.resumed_at,
        }

    def _load_state(self, state: dict[str, Any]) -> None:
        self.env_steps = state["env_steps"]
        self.eval_seconds = state["eval_seconds"]
        self.next_eval = state["next_eval"]
        self.last_eval = state["last_eval"]
        self.last_eval_step = state["last_eval_step"]
        self.best = state["best"]
        self.recent_success.extend(state["recent_success"])
        self.next_checkpoint = state["next_checkpoint"]
        every = self.train_cfg.video_every
        if self.next_video is not None and every is not None:
            # A checkpoint of an mtgc without videos: the next multiple of video_every.
            self.next_video = state.get("next_video") or (self.env_steps // every + 1) * every
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

    def _on_step(self) -> bool:
        for done, info in zip(self.locals["dones"], self.locals["infos"], strict=True):
            self.env_steps += int(info.get("env_steps", 1))
            if done and "is_success" in info:
                self.recent_success.append(float(info["is_success"]))
        # SB3's clock in env steps: it has just added one per env (a decision each); under an
        # action repeat that is fewer than the env steps taken. Set here, before SB3 reads it
        # for learning_starts, its progress schedules and exploration, so all count env steps.
        self.model.num_timesteps = self.env_steps
        if self.env_steps >= self.next_eval:
            self.run_eval()
            while self.next_eval <= self.env_steps:
                self.next_eval += self.train_cfg.eval_every
        if self.stop.signum is not None:
            # Stop here, before SB3 stores this step: the whole checkpoint is written once
            # learn() has returned, and the transition of this last step is not in it.
            return False
        due = self.next_checkpoint is not None and self.env_steps >= self.next_checkpoint
        # The last one is written when training ends, after the final eval.
        if due and self.env_steps < self.train_cfg.timesteps:
            self.save_checkpoint()
        now = time.perf_counter()
        if self.report is not None and now - self.last_report > 0.5:
            self.last_report = now
            self.send("running")
        # Stop at the env-step budget (with an action repeat SB3's budget, in decisions, is
        # larger), before SB3 trains once more: the model that ends the run (model.zip, the
        # last checkpoint) is then the one its final eval scored.
        return self.env_steps < self.train_cfg.timesteps

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

    def _evaluate(self, counts: list[int], videos: EvalVideos | None = None) -> EvalResult:
        """Deterministic episodes on the eval envs, the time they take (videos included) counted in
        eval_seconds."""
        start = time.perf_counter()
        result = evaluate(self.model, self.setup.eval_env, counts, self.task_names, videos=videos)
        self.eval_seconds += time.perf_counter() - start
        return result

    def _videos_due(self) -> EvalVideos | None:
        """A recorder for this eval's first episodes, when a video is due (never for re-evaluations)."""
        every = self.train_cfg.video_every
        if self.next_video is None or every is None or self.env_steps < self.next_video:
            return None
        while self.next_video <= self.env_steps:
            self.next_video += every
        env = self.setup.config.env
        return EvalVideos(
            runs.train_video_dir(self.run_dir, self.env_steps),
            per_task=min(self.train_cfg.video_episodes, self.train_cfg.eval_episodes),
            task_names=self.task_names,
            env_label=env.label,
            success_key=env.success_key,
            previews=True,
        )

    def _videos_done(self, videos: EvalVideos) -> None:
        if videos.problem is not None:
            # Rendering fails the same way every time: one line, and no more tries in this run.
            warn(f"{videos.problem}; no more videos in this run, training goes on")
            self.next_video = None
            return
        try:
            log_to_tensorboard(self.logger, videos.videos, self.env_steps)
        except Exception as exc:  # training never fails because of a video
            warn(f"TensorBoard preview of the videos at {self.env_steps:,} env steps failed ({exc})")

    def evaluate_best_fresh(self) -> None:
        """The chosen model (best_model.zip) on new episodes, its score for the summary.

        Its weights and normalisation statistics are read from the files, evaluated on the eval
        envs (whose random stream goes on: no episode repeats), and the training model's own
        parameters are put back, optimiser state included.
        """
        best_path = self.run_dir / runs.BEST_MODEL
        if self.best.success is None or not best_path.is_file():
            return
        # A copy: the state dicts hold the live tensors, which loading the best model overwrites.
        current = copy.deepcopy(self.model.get_parameters())
        eval_env = self.setup.eval_env
        stats_path = runs.stats_path_for(best_path)
        saved_rms = None
        if isinstance(eval_env, VecNormalize) and stats_path.is_file():
            with stats_path.open("rb") as f:
                saved = pickle.load(f)
            saved_rms = eval_env.obs_rms
            eval_env.obs_rms = saved.obs_rms
        try:
            self.model.set_parameters(str(best_path), exact_match=False)
            self.best.fresh = self._evaluate(self.recheck_counts)
        finally:
            self.model.set_parameters(current, exact_match=True)
            if saved_rms is not None:
                assert isinstance(eval_env, VecNormalize)
                eval_env.obs_rms = saved_rms
        self.logger.record("eval/best_fresh_success", self.best.fresh.success)
        self.logger.dump(self.env_steps)

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
        train_env = self.model.get_vec_normalize_env()
        if isinstance(train_env, VecNormalize):
            sync_envs_normalization(train_env, self.setup.eval_env)
        videos = self._videos_due()
        result = self._evaluate(self.setup.eval_counts, videos)
        if videos is not None:
            self._videos_done(videos)
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
            recheck = self._evaluate(self.recheck_counts)
            self.logger.record("eval/recheck_success", recheck.success)
            self.logger.dump(self.env_steps)
            if self.best.offer(self.env_steps, result.success, recheck):
                save_model(self.model, self.run_dir / runs.BEST_MODEL)
        return result


class _ResumedTensorBoard(TensorBoardOutputFormat):
    """SB3's TensorBoard output that hides what the stopped run logged after its checkpoint.

    ``purge_step`` makes TensorBoard drop earlier events at or after that step, so the steps
    between the checkpoint and the stop, logged again by the resumed run, appear once.
    """

    def __init__(self, folder: str, purge_step: int):
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=folder, purge_step=purge_step)
        self._is_closed = False


def _logger(run_dir: Path, resumed_at: int | None) -> Logger:
    """TensorBoard events in ``run_dir/tb``: a resumed run writes a new file in the same run."""
    folder = str(run_dir / "tb")
    if resumed_at is None:
        return configure(folder, ["tensorboard"])
    return Logger(folder=folder, output_formats=[_ResumedTensorBoard(folder, resumed_at + 1)])


def train(
    setup: Setup,
    run_dir: Path,
    report: Reporter | None = None,
    stop: StopRequest | None = None,
    resumed: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Train to ``train.timesteps`` with evaluation and checkpoints; write the run's files.

    ``resumed`` is the training state of the checkpoint ``setup.model`` was restored from. The run
    ends with a whole checkpoint, whether it finished or a signal stopped it (status
    ``interrupted`` and ``stopped_by`` in the summary).
    """
    config = setup.config
    model = setup.model
    stop = stop or StopRequest()
    model.set_logger(_logger(run_dir, None if resumed is None else resumed["env_steps"]))
    run_callback = RunCallback(setup, run_dir, report, stop, resumed)
    status = "done"
    with stop.installed():
        # SB3 counts on from model.num_timesteps when reset_num_timesteps is False, and takes
        # the steps still to do.
        if resumed is not None:
            # A checkpoint of an mtgc whose SB3 clock counted decisions: the clock is env steps.
            model.num_timesteps = resumed["env_steps"]
        budget = config.train.timesteps - (model.num_timesteps if resumed is not None else 0)
        try:
            if budget > 0 and run_callback.env_steps < config.train.timesteps:
                model.learn(
                    total_timesteps=budget, callback=run_callback, reset_num_timesteps=resumed is None
                )
        except KeyboardInterrupt:
            status = "interrupted"  # raised only where handlers cannot be installed (not the main thread)
        except (RuntimeError, ValueError, FloatingPointError) as exc:
            raise RunFailed(f"training failed at {run_callback.env_steps:,} env steps: {exc}") from exc
        if stop.signum is not None:
            status = "interrupted"
        if status == "done" and run_callback.last_eval_step != run_callback.env_steps:
            run_callback.run_eval()
        written = run_callback.save_checkpoint()
        if status == "done":
            run_callback.evaluate_best_fresh()
        # model.zip is the newest checkpoint's model: the same file under a second name.
        checkpoint.link_atomic(written.path / checkpoint.MODEL, run_dir / runs.MODEL)
        if (written.path / checkpoint.STATS).is_file():
            checkpoint.link_atomic(written.path / checkpoint.STATS, run_dir / runs.STATS)
    last = run_callback.last_eval
    summary: dict[str, Any] = {
        "run_dir": str(run_dir),
        "preset": config.name,
        "status": status,
        "stopped_by": stop.name,
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
        "checkpoint": {
            "path": str(written.path),
            "megabytes": round(written.bytes / 1e6, 3),
            "seconds": written.seconds,
        },
        "checkpoint_seconds": round(run_callback.checkpoint_seconds, 3),
        "resumed_at": run_callback.resumed_at,
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
    stop: StopRequest | None = None,
) -> dict[str, Any]:
    """Create the run folder and train a prepared setup. A failed start leaves no folder behind."""
    run_dir = run_dir or runs.new_run_dir(root, setup.config)
    try:
        runs.write_run_files(run_dir, setup.config, command)
        # One writer per run folder, for as long as this run writes it.
        with folder_lock.hold(run_dir):
            if setup.encoding is not None and setup.encoding.kind == "language":
                setup.encoding.save(run_dir / runs.TASK_ENCODING)
            return train(setup, run_dir, report, stop)
    except BaseException:
        runs.remove_unfinished(run_dir)
        raise
    finally:
        setup.close()


def resume(
    setup: Setup,
    plan: checkpoint.ResumePlan,
    report: Reporter | None = None,
    command: list[str] | None = None,
    stop: StopRequest | None = None,
    warn: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Go on with the run of ``plan`` from its newest whole checkpoint, to ``setup.config``'s total.

    ``setup`` is prepared from the same config (``plan.config``); its model is replaced by the
    checkpoint's. The run folder is never removed here, whatever happens: it holds a run.
    """
    run_dir = plan.run_dir
    try:
        # One writer per run folder: taken before the restore rewinds anything in it.
        with folder_lock.hold(run_dir):
            restored = checkpoint.restore(plan, setup.model, setup.env, setup.eval_env, warn)
            setup.model = restored.model
            runs.record_resume(run_dir, setup.config, command)
            return train(setup, run_dir, report, stop, resumed=restored.trainer)
    finally:
        setup.close()
