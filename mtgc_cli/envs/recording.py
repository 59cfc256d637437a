"""Frames of chosen episodes, rendered after every env step, for evaluation videos.

:class:`FrameRecorder` sits directly around the env that ``gym.make`` builds, inside any action
repeat, so a video has one frame per env step and plays at the env's own speed: a 50-step Fetch
episode is 50 frames whatever ``env.action_repeat`` is. It renders only while it records, so an
eval env built with ``render_mode="rgb_array"`` costs nothing extra in the episodes it skips.
What becomes of the frames is the sink's business (``mtgc_cli.video`` writes MP4s); the recorder
only decides which steps are rendered.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable
from typing import Any, Protocol, SupportsFloat

import gymnasium as gym
import numpy as np
from gymnasium.envs.registration import load_env_creator

from mtgc_cli.config import EnvConfig
from mtgc_cli.envs.registry import register_envs, split_module

__all__ = ["RENDER_MODE", "FrameRecorder", "FrameSink", "NotAnImage", "frame_array", "render_problem"]

RENDER_MODE = "rgb_array"


class FrameSink(Protocol):
    """Where a :class:`FrameRecorder` sends the frames of the episodes it records."""

    def add(self, frame: Any, obs: Any, info: dict[str, Any]) -> None:
        """One frame, rendered after an env step, with that step's raw observation and info."""

    def end_episode(self) -> None:
        """The recorded episode ended (terminated or truncated) with the last frame added."""

    def fail(self, exc: BaseException, rendering: bool) -> None:
        """Rendering (``rendering``) or the sink itself raised; no more frames come to this sink."""


class FrameRecorder(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Render after every step of the next ``episodes`` episodes and hand the frames to a sink.

    ``record(sink, n)`` arms it: recording starts at the next ``reset`` (the start of an
    episode, never in the middle of one) and stops after ``n`` whole episodes. A render or sink
    that raises is reported to the sink once and recording stops; the episode itself goes on,
    since rendering does not change the simulation's state.
    """

    def __init__(self, env: gym.Env) -> None:
        gym.utils.RecordConstructorArgs.__init__(self)
        gym.Wrapper.__init__(self, env)
        self._sink: FrameSink | None = None
        self._episodes_left = 0
        self._active = False

    @property
    def fps(self) -> float:
        """Frames per second at which the episode plays in real time (30 when the env does not say)."""
        return float(self.env.metadata.get("render_fps") or 30)

    @property
    def max_steps(self) -> int | None:
        """The episode's step limit where the env has one (``max_episode_steps``), for "step 12/50"."""
        spec = self.env.spec
        return None if spec is None else spec.max_episode_steps

    def record(self, sink: FrameSink | None, episodes: int) -> None:
        """Record the next ``episodes`` episodes into ``sink``; ``record(None, 0)`` disarms."""
        self._sink = sink if episodes > 0 else None
        self._episodes_left = max(0, episodes) if sink is not None else 0
        self._active = False

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        obs, info = self.env.reset(seed=seed, options=options)
        self._active = self._sink is not None and self._episodes_left > 0
        return obs, info

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        if self._active and self._sink is not None:
            sink = self._sink
            rendering = True
            try:
                with warnings.catch_warnings():
                    # GLFW without a display warns before it fails; the failure is what is reported.
                    warnings.simplefilter("ignore")
                    frame = self.env.render()
                rendering = False
                sink.add(frame, obs, info)
                if terminated or truncated:
                    sink.end_episode()
            except Exception as exc:  # a missing GL library, an encoder error: never the episode's end
                self.record(None, 0)
                sink.fail(exc, rendering)
            else:
                if terminated or truncated:
                    self._episodes_left -= 1
                    self._active = False
                    if self._episodes_left == 0:
                        self.record(None, 0)
        return obs, reward, terminated, truncated, info


def _env_ids(cfg: EnvConfig) -> list[str]:
    """The gymnasium ids that an env section builds: ``env.id``, or each task's own id."""
    if cfg.tasks is not None and cfg.tasks[0].id is not None:
        return [str(task.id) for task in cfg.tasks]
    return [str(cfg.id)]


def _render_modes(env_id: str) -> Iterable[str] | None:
    """The render modes that ``env_id``'s class declares, or None where its entry point does not say."""
    register_envs(env_id)
    entry = gym.spec(split_module(env_id)[1]).entry_point
    creator = load_env_creator(entry) if isinstance(entry, str) else entry
    metadata = getattr(creator, "metadata", None)
    if not isinstance(metadata, dict):
        return None  # a factory function (Meta-World's MT1): only rendering will tell
    return list(metadata.get("render_modes") or [])


def render_problem(cfg: EnvConfig) -> str | None:
    """Why the envs of ``cfg`` cannot render RGB frames, or None when they declare that they can.

    Only what the env classes declare is checked here; a declared render that fails (no GL) or
    returns no image is found when the first frame is rendered.
    """
    for env_id in _env_ids(cfg):
        try:
            modes = _render_modes(env_id)
        except Exception:
            return None  # an id that cannot be inspected is reported by the env builder itself
        if modes is not None and RENDER_MODE not in modes:
            declared = ", ".join(modes) or "none"
            return f"{env_id} cannot render frames (its render modes: {declared}; videos need {RENDER_MODE})"
    return None


class NotAnImage(ValueError):
    """An env's ``rgb_array`` render returned something that is not an RGB image."""


def frame_array(frame: Any, label: str) -> np.ndarray:
    """``frame`` as an (H, W, 3) uint8 image; raises :class:`NotAnImage` naming ``label`` if it is none."""
    array = np.asarray(frame) if frame is not None else None
    if array is None or array.ndim != 3 or array.shape[2] not in (3, 4) or min(array.shape[:2]) < 2:
        shape = None if array is None else array.shape
        raise NotAnImage(f"{label}'s {RENDER_MODE} render is not an RGB image (got shape {shape})")
    if array.dtype != np.uint8:
        if np.issubdtype(array.dtype, np.floating) and array.max(initial=0.0) <= 1.0:
            array = array * 255.0
        array = np.clip(array, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(array[:, :, :3])


OFFSCREEN_HELP = (
    "offscreen MuJoCo needs EGL (apt install libegl1; MUJOCO_GL=egl, mtgc's default) or OSMesa "
    "(apt install libosmesa6; MUJOCO_GL=osmesa)"
)


def prefer_offscreen_gl() -> None:
    """Render MuJoCo through EGL unless the user chose a backend (``MUJOCO_GL``).

    Called wherever rendering is requested, before the first frame is rendered (gymnasium reads
    the variable when it creates the GL context). Unset, gymnasium tries GLFW first, which needs
    a display and, on a headless machine, fails rather than falling back to EGL.
    """
    os.environ.setdefault("MUJOCO_GL", "egl")


def _what(exc: BaseException) -> str:
    """``Type: first line of the message`` (cut at 140 characters), for one-line reports."""
    detail = str(exc).splitlines()[0] if str(exc) else ""
    if len(detail) > 140:
        detail = detail[:137] + "..."
    return f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__


def video_failure(label: str, exc: BaseException, rendering: bool) -> str:
    """One line: why videos of ``label`` failed and, for a render, what makes offscreen rendering work."""
    if isinstance(exc, NotAnImage):
        return str(exc)
    if not rendering:
        return f"writing a video of {label} failed ({_what(exc)})"
    return (
        f"rendering {label} failed with MUJOCO_GL={os.environ.get('MUJOCO_GL', 'unset')} ({_what(exc)}); "
        f"{OFFSCREEN_HELP}"
    )
