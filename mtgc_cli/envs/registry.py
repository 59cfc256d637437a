"""Gymnasium registration of the env families mtgc uses, done once and only when needed.

Importing gymnasium-robotics (MuJoCo) or Meta-World takes a while, so each family is imported
on first use of one of its ids.
"""

from __future__ import annotations

import gymnasium as gym

from mtgc_cli.errors import UsageError

_done: set[str] = set()


def _register_mtgc() -> None:
    gym.register(
        id="mtgc/BitFlipping-v0",
        # SB3's BitFlippingEnv with a random goal per episode; it truncates itself after n_bits steps.
        entry_point="mtgc_cli.envs.bit_flipping:BitFlippingGoalsEnv",
        disable_env_checker=True,
    )
    gym.register(
        id="mtgc/PointTasks-v0",
        entry_point="mtgc_cli.envs.point_tasks:PointTasksEnv",
        disable_env_checker=True,
    )
    gym.register(
        id="mtgc/FetchTasks-v0",
        entry_point="mtgc_cli.envs.fetch_tasks:FetchTasksEnv",
        max_episode_steps=50,
        disable_env_checker=True,
    )


def _register_robotics() -> None:
    import contextlib
    import io
    import warnings

    # gymnasium-robotics prints a notice about the Adroit envs' rewards on import; mtgc uses
    # none of them, and the notice would sit in every run's output.
    with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        import gymnasium_robotics

    gym.register_envs(gymnasium_robotics)


def _register_metaworld() -> None:
    try:
        import metaworld  # noqa: F401  (importing registers the Meta-World/* ids)
    except ImportError as exc:
        raise UsageError(
            "Meta-World is not installed; install it with: pip install 'metaworld>=3.1,<3.2'"
        ) from exc


def register_envs(*env_ids: str) -> None:
    """Register mtgc's ids, and the families that the given ids belong to (all when none given)."""
    families = {"mtgc"}
    for env_id in env_ids or ("Fetch",):
        if env_id.startswith("Meta-World/"):
            families.add("metaworld")
        elif not env_id.startswith("mtgc/") or env_id == "mtgc/FetchTasks-v0":
            families.add("robotics")
    for family in families - _done:
        {"mtgc": _register_mtgc, "robotics": _register_robotics, "metaworld": _register_metaworld}[family]()
        _done.add(family)
