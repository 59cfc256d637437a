"""Gymnasium registration of the env families mtgc uses, done once and only when needed.

Importing gymnasium-robotics (MuJoCo) or Meta-World takes a while, so each family is imported
on first use of one of its ids. A user's own env is named ``module:EnvId`` (gymnasium's
``gym.make`` convention): importing ``module`` registers ``EnvId``.
"""

from __future__ import annotations

import importlib
import os
import sys

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
    try:
        with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")
            import gymnasium_robotics
    except Exception as exc:
        raise _mujoco_import_failed("gymnasium-robotics", exc) from exc

    gym.register_envs(gymnasium_robotics)


def _mujoco_import_failed(package: str, exc: Exception) -> UsageError:
    """One line for a MuJoCo family that fails to import, naming ``MUJOCO_GL`` when it is set.

    MuJoCo loads the GL backend that ``MUJOCO_GL`` names when it is imported: ``osmesa`` without
    libosmesa6 fails there, before any env exists.
    """
    detail = str(exc).splitlines()[0] if str(exc) else ""
    problem = f"importing {package} failed ({type(exc).__name__}: {detail})"
    backend = os.environ.get("MUJOCO_GL")
    if backend is None:
        return UsageError(problem)
    return UsageError(
        f"{problem} with MUJOCO_GL={backend}; valid: MUJOCO_GL=egl (needs libegl1), osmesa (needs "
        "libosmesa6), glfw (needs a display), or unset"
    )


def _register_metaworld() -> None:
    try:
        import metaworld  # noqa: F401  (importing registers the Meta-World/* ids)
    except ModuleNotFoundError as exc:
        if exc.name != "metaworld":
            raise _mujoco_import_failed("metaworld", exc) from exc
        raise UsageError(
            "Meta-World is not installed; install it with: pip install 'metaworld>=3.1,<3.2'"
        ) from exc
    except Exception as exc:
        raise _mujoco_import_failed("metaworld", exc) from exc


def split_module(env_id: str) -> tuple[str | None, str]:
    """``"mymod:MyReach-v0"`` -> ``("mymod", "MyReach-v0")``; a plain id -> ``(None, env_id)``."""
    module, sep, name = env_id.partition(":")
    return (module, name) if sep else (None, env_id)


def import_env_module(env_id: str) -> None:
    """Import the module of a ``module:EnvId`` id, which registers ``EnvId`` with gymnasium.

    Every process that builds the env calls this (through :func:`register_envs`), so vec-env and
    compare workers import the module themselves. The current folder is searched last, as
    ``python script.py`` searches the script's folder: ``mtgc`` is an installed script, so without
    this a module beside the user's preset would not be found. Spawned workers inherit the parent's
    ``sys.path``, so they find it too.
    """
    module, name = split_module(env_id)
    if module is None or module in sys.modules:
        return
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.append(cwd)
    try:
        importlib.import_module(module)
    except ModuleNotFoundError as exc:
        # The named module itself (or its package) is missing, not something it imports.
        if exc.name is not None and (exc.name == module or module.startswith(f"{exc.name}.")):
            raise UsageError(
                f"env id '{env_id}': no module named '{module}'; valid: a module in the current folder "
                f"or on PYTHONPATH that registers '{name}' with gymnasium.register when imported"
            ) from exc
        raise UsageError(f"env id '{env_id}': importing '{module}' failed: {exc}") from exc
    except Exception as exc:  # the user's module raised while importing: its own error, in one line
        detail = str(exc).splitlines()[0] if str(exc) else ""
        raise UsageError(
            f"env id '{env_id}': importing '{module}' failed: {type(exc).__name__}: {detail}"
        ) from exc


def register_envs(*env_ids: str) -> None:
    """Register mtgc's ids, and the families that the given ids belong to (all when none given)."""
    families = {"mtgc"}
    for env_id in env_ids or ("Fetch",):
        if split_module(env_id)[0] is not None:
            # The user's module registers its own ids (and imports what they need).
            import_env_module(env_id)
        elif env_id.startswith("Meta-World/"):
            families.add("metaworld")
        elif not env_id.startswith("mtgc/") or env_id == "mtgc/FetchTasks-v0":
            families.add("robotics")
    for family in families - _done:
        {"mtgc": _register_mtgc, "robotics": _register_robotics, "metaworld": _register_metaworld}[family]()
        _done.add(family)
