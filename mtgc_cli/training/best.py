"""Which model is ``best_model.zip``, and writing a model file with its statistics."""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stable_baselines3.common.base_class import BaseAlgorithm

from mtgc_cli import runs
from mtgc_cli.checkpoint import write_atomic
from mtgc_cli.evaluation import EvalResult
from mtgc_cli.portable import save_portable


def save_model(model: BaseAlgorithm, model_path: Path) -> None:
    """``model_path`` and its statistics, each replaced atomically: a stop mid-write keeps the old."""
    write_atomic(model_path, save_portable(model))
    vec_normalize = model.get_vec_normalize_env()
    if vec_normalize is not None:
        # What VecNormalize.save writes, into the temporary file.
        write_atomic(runs.stats_path_for(model_path), lambda f: pickle.dump(vec_normalize, f))


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
