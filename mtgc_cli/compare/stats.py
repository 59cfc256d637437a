"""Statistics across seeds: IQM and mean with stratified-bootstrap intervals widened to Wilson's,
paired differences widened to Newcombe's, steps to a threshold with Kaplan-Meier medians."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import stats

from mtgc_cli.evaluation import wilson_interval

# Statistics across seeds. Intervals follow rliable (Agarwal et al. 2021): the interquartile mean
# and percentile intervals from a stratified bootstrap over runs. rliable itself is not a
# dependency: 1.2.0 needs arch<8, which fails to import with pandas 3 (what pip picks today),
# and it would pull pandas, statsmodels, arch and seaborn (about 250 MB) for two functions that
# scipy provides: ``stats.bootstrap`` with one sample per task is exactly the stratified
# bootstrap, and ``stats.trim_mean(x, 0.25)`` is rliable's ``aggregate_iqm``.

CONFIDENCE = 0.95
BOOTSTRAP_RESAMPLES = 10_000
THRESHOLDS = (50, 90)  # percent, for steps-to-threshold
HOLD_EVALS = 2  # a threshold counts as reached once it holds for this many consecutive evals

Statistic = Callable[..., np.ndarray]


@dataclass(frozen=True)
class Estimate:
    """A point estimate and its 95% interval; no interval (``None``) from fewer than 2 seeds."""

    value: float
    low: float | None
    high: float | None


def iqm(*samples: np.ndarray, axis: int = -1) -> np.ndarray:
    """Interquartile mean of all scores pooled (rliable's ``aggregate_iqm``): the mean of the
    middle 50%, robust to one lucky or broken seed, less noisy than the median."""
    return np.asarray(stats.trim_mean(np.concatenate(samples, axis=axis), 0.25, axis=axis))


def pooled_mean(*samples: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.asarray(np.concatenate(samples, axis=axis).mean(axis=axis))


def stratified_bootstrap(scores: np.ndarray, statistic: Statistic) -> tuple[float, float] | None:
    """95% percentile bootstrap interval of ``statistic`` over ``scores`` (seeds, tasks).

    Each task's column is resampled over seeds on its own (rliable's ``StratifiedBootstrap``),
    so every resample keeps every task. ``None`` for fewer than 2 seeds: one seed has no spread.
    The generator is fixed so that the same runs always print the same interval.
    """
    if scores.shape[0] < 2:
        return None
    result = stats.bootstrap(
        tuple(scores.T),
        statistic,
        n_resamples=BOOTSTRAP_RESAMPLES,
        confidence_level=CONFIDENCE,
        method="percentile",
        vectorized=True,
        rng=np.random.default_rng(0),
    )
    interval = result.confidence_interval
    return float(interval.low), float(interval.high)


def pooled_wilson(run_success: np.ndarray, episodes_per_run: int) -> tuple[float, float, float]:
    """Success rate of all runs' final eval episodes pooled, with its 95% Wilson interval."""
    n = len(run_success) * episodes_per_run
    successes = float(np.round(run_success * episodes_per_run).sum())
    low, high = wilson_interval(successes, n)
    return successes / n, low, high


def success_estimate(scores: np.ndarray, episodes_per_run: int, statistic: Statistic) -> Estimate:
    """``statistic`` of final success over (seeds, tasks), with an interval that covers both noises.

    The bootstrap over seeds sees only seed-to-seed spread: seeds that agree (all at 1.00) give
    a zero-width interval although each seed's rate is itself an estimate from a few episodes.
    The interval is therefore widened, where narrower, to the Wilson interval of all final eval
    episodes pooled (3 seeds x 25 episodes, all successes: [0.95, 1.00], not [1.00, 1.00]).
    """
    value = float(statistic(*scores.T))
    boot = stratified_bootstrap(scores, statistic)
    if boot is None:
        return Estimate(value, None, None)
    _, wilson_low, wilson_high = pooled_wilson(scores.mean(axis=1), episodes_per_run)
    return Estimate(value, max(0.0, min(boot[0], wilson_low)), min(1.0, max(boot[1], wilson_high)))


def paired_difference(
    scores: np.ndarray, baseline: np.ndarray, episodes_per_run: int, baseline_episodes_per_run: int
) -> Estimate:
    """Mean over seeds of (strategy - baseline) final success, seed by seed (same seed, same
    initial network and env seeds), with a stratified bootstrap interval of that mean.

    Seed s of every strategy starts from the same network weights and env seeds; pairing takes
    the difference within each seed, so what a seed's runs share (an easy or a hard draw) drops
    out instead of widening the interval as in two unpaired means. As for a level, the interval
    is widened where narrower to Newcombe's interval for the difference of the two pooled episode
    rates (the Wilson-based hybrid score interval), so two strategies that both score 1.00
    everywhere do not print an exact 0.00 [0.00, 0.00].
    """
    diffs = scores - baseline
    value = float(diffs.mean())
    boot = stratified_bootstrap(diffs, pooled_mean)
    if boot is None:
        return Estimate(value, None, None)
    p1, low1, high1 = pooled_wilson(scores.mean(axis=1), episodes_per_run)
    p2, low2, high2 = pooled_wilson(baseline.mean(axis=1), baseline_episodes_per_run)
    newcombe_low = p1 - p2 - float(np.hypot(p1 - low1, high2 - p2))
    newcombe_high = p1 - p2 + float(np.hypot(high1 - p1, p2 - low2))
    return Estimate(value, max(-1.0, min(boot[0], newcombe_low)), min(1.0, max(boot[1], newcombe_high)))


def steps_to(
    steps: np.ndarray, success: np.ndarray, threshold: float, hold: int = HOLD_EVALS
) -> float | None:
    """The first eval step from which success stays at or above ``threshold`` for ``hold``
    consecutive evals; ``None`` if it never does (a single lucky eval does not count, and a
    threshold first met at the last eval cannot be confirmed, so that run is censored)."""
    ok = success >= threshold
    for i in range(len(ok) - hold + 1):
        if ok[i : i + hold].all():
            return float(steps[i])
    return None


@dataclass(frozen=True)
class TimeToThreshold:
    """Steps to a threshold across seeds, with the seeds that never got there right-censored."""

    median: float | None  # Kaplan-Meier median; None while fewer than half the seeds got there
    reached: int
    censored: int
    censored_at: float | None  # the longest a censored seed was followed (its last eval step)


def time_to_threshold(times: list[float | None], horizons: list[float]) -> TimeToThreshold:
    """Kaplan-Meier median of steps to a threshold (scipy's ``ecdf`` on right-censored data).

    A seed that never got there is censored at its last eval step rather than dropped: averaging
    only the seeds that made it hides the ones that did not. With runs of equal length this is
    the median over all seeds counting a censored seed as later than any reached one.
    """
    reached = [t for t in times if t is not None]
    censored = [h for t, h in zip(times, horizons, strict=True) if t is None]
    censored_at = max(censored) if censored else None
    if not reached:
        return TimeToThreshold(None, 0, len(censored), censored_at)
    survival = stats.ecdf(stats.CensoredData(uncensored=reached, right=censored)).sf
    # The survival function only drops at reached times, so the first step where at most half
    # the seeds are still below the threshold is a reached time.
    below = np.flatnonzero(survival.probabilities <= 0.5)
    median = float(survival.quantiles[below[0]]) if len(below) else None
    return TimeToThreshold(median, len(reached), len(censored), censored_at)
