"""Videos of deterministic evaluation episodes: MP4 files in the run folder, GIFs in TensorBoard.

``mtgc eval RUN --video`` and ``train.video_every`` record the first episodes of each task of an
evaluation, the same episodes that are scored, one MP4 per episode:

    RUN/videos/<eval-MODEL-sSEED | step_N>/<task or env>-ep<k>-<success|failure>.mp4

Each frame is the scene after one env step (``mtgc_cli.envs.recording``), so a file has exactly
as many frames as its episode has env steps and plays in real time at the env's ``render_fps``.
A band at the top of every frame names the task, the episode and the step, the goal and the
distance to it where the observation has them, and says ``success`` on the steps where the env
reports it; the file name gives the episode's scored outcome. Encoding is imageio's ffmpeg
plugin (H.264); the overlay is drawn with Pillow.

Rendering that fails (no offscreen GL, an env without an image render) never stops an
evaluation: :class:`EvalVideos` keeps one line saying why and what to install, and the caller
prints it.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mtgc_cli.envs.recording import frame_array, video_failure
from mtgc_cli.envs.wrappers import SUCCESS_KEYS
from mtgc_cli.write_check import mp4_problem, write_problem

if TYPE_CHECKING:
    from stable_baselines3.common.logger import Logger
    from stable_baselines3.common.vec_env import VecEnv

# Frames kept per video for TensorBoard: downscaled to this width and at most this many.
PREVIEW_WIDTH = 240
PREVIEW_FRAMES = 200


def file_stem(name: str) -> str:
    """A task or env name as a file name part: ``mtgc/PointTasks-v0`` -> ``mtgc_PointTasks-v0``."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "env"


@dataclass
class Video:
    """One recorded episode: where it was written and what it shows."""

    path: Path
    task: str  # the task's name, or the env's for a single-task run
    episode: int  # index among this evaluation's recorded episodes of the task
    success: bool  # the episode's scored outcome (the eval's success rule)
    frames: int  # = the episode's env steps
    goal: list[float] | None  # the desired goal at the first step, where the observation has one
    fps: float
    preview: np.ndarray | None = field(default=None, repr=False)  # (T, h, w, 3) uint8, for TensorBoard

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "task": self.task,
            "episode": self.episode,
            "success": self.success,
            "frames": self.frames,
            "goal": self.goal,
            "fps": self.fps,
        }


def _goal_and_distance(obs: Any) -> tuple[np.ndarray | None, float | None]:
    """The desired goal and ||achieved - desired|| of a raw goal-env observation (None otherwise)."""
    if not isinstance(obs, dict) or "desired_goal" not in obs:
        return None, None
    goal = np.asarray(obs["desired_goal"], dtype=np.float64).ravel()
    if "achieved_goal" not in obs:
        return goal, None
    achieved = np.asarray(obs["achieved_goal"], dtype=np.float64).ravel()
    return goal, float(np.linalg.norm(achieved - goal)) if achieved.shape == goal.shape else None


def _vector(values: np.ndarray) -> str:
    shown = " ".join(f"{v:.2f}" for v in values[:6])
    return f"({shown}{' ...' if len(values) > 6 else ''})"


class _Overlay:
    """Two lines of text on a dark band at the top of a frame (Pillow's built-in font)."""

    def __init__(self) -> None:
        from PIL import ImageFont

        self.font = ImageFont.load_default(size=13)

    def draw(self, frame: np.ndarray, lines: list[tuple[str, tuple[int, int, int]]]) -> np.ndarray:
        from PIL import Image, ImageDraw

        image = Image.fromarray(frame)
        band = 6 + 16 * len(lines)
        draw = ImageDraw.Draw(image, "RGBA")
        draw.rectangle((0, 0, image.width, band), fill=(0, 0, 0, 150))
        for i, (text, colour) in enumerate(lines):
            draw.text((5, 3 + 16 * i), text, fill=colour, font=self.font)
        return np.asarray(image)


@dataclass
class _Pending:
    """A recorded episode written under a temporary name, renamed once its outcome is known."""

    slot: int
    index: int
    tmp: Path
    frames: int
    goal: list[float] | None
    preview: list[np.ndarray] | None


class _SlotWriter:
    """The :class:`~mtgc_cli.envs.recording.FrameSink` of one eval slot: MP4s, frame by frame.

    Frames stream into the encoder as they are rendered, so a 500-step Meta-World episode does not
    sit in memory (480 x 480 x 3 bytes a frame).
    """

    def __init__(
        self, videos: EvalVideos, slot: int, task: str, first_index: int, fps: float, max_steps: int | None
    ) -> None:
        self.videos = videos
        self.slot = slot
        self.task = task
        self.first_index = first_index
        self.index = first_index
        self.fps = fps
        self.max_steps = max_steps
        self.writer: Any = None
        self.tmp: Path | None = None
        self.frames = 0
        self.goal: list[float] | None = None
        self.preview: list[np.ndarray] | None = None

    def add(self, frame: Any, obs: Any, info: dict[str, Any]) -> None:
        image = frame_array(frame, self.videos.env_label)
        goal, distance = _goal_and_distance(obs)
        if self.writer is None:
            import imageio.v2 as imageio

            self.videos.folder.mkdir(parents=True, exist_ok=True)
            self.tmp = self.videos.folder / f".slot{self.slot}-ep{self.index}.partial.mp4"
            # macro_block_size 2: H.264 with yuv420p needs even sizes; other sizes are left alone.
            self.writer = imageio.get_writer(
                self.tmp,
                format="FFMPEG",
                mode="I",
                fps=self.fps,
                codec="libx264",
                quality=7,
                macro_block_size=2,
                # quiet: a failure is one line from mtgc (why, in the OS's words), not ffmpeg's.
                ffmpeg_log_level="quiet",
            )
            self.frames = 0
            self.goal = None if goal is None else [round(float(g), 4) for g in goal]
            self.preview = [] if self.videos.previews else None
        self.frames += 1
        steps = f"{self.frames}/{self.max_steps}" if self.max_steps else str(self.frames)
        key = self.videos.success_key
        flag = info.get(key) if key else next((info[k] for k in SUCCESS_KEYS if k in info), None)
        succeeding = flag is not None and float(flag) > 0
        detail = []
        if goal is not None:
            detail.append(f"goal {_vector(goal)}")
        if distance is not None:
            detail.append(f"distance {distance:.3f}")
        if succeeding:
            detail.append("success")
        lines = [(f"{self.task}  episode {self.index}  step {steps}", (255, 255, 255))]
        if detail:
            lines.append(("  ".join(detail), (120, 255, 120) if succeeding else (255, 255, 255)))
        shown = self.videos.overlay.draw(image, lines)
        self.writer.append_data(shown)
        if self.preview is not None and len(self.preview) < PREVIEW_FRAMES:
            self.preview.append(_downscale(shown, PREVIEW_WIDTH))

    def end_episode(self) -> None:
        if self.writer is None or self.tmp is None:
            return
        self.writer.close()
        self.writer = None
        # ffmpeg may leave a file cut short (a full disk) and still exit cleanly.
        cut = mp4_problem(self.tmp)
        if cut is not None:
            raise OSError(f"{cut}; {write_problem(self.videos.folder, self.tmp.stat().st_size + 65536)}")
        preview = self.preview
        self.videos.pending.append(_Pending(self.slot, self.index, self.tmp, self.frames, self.goal, preview))
        self.index += 1
        self.tmp = None

    def fail(self, exc: BaseException, rendering: bool) -> None:
        self.discard()
        self.videos.note_failure(exc, rendering)

    def discard(self) -> None:
        """Close and remove an episode that did not end (a failure, or an eval that stopped)."""
        if self.writer is not None:
            with contextlib.suppress(Exception):  # an encoder that already failed
                self.writer.close()
            self.writer = None
        if self.tmp is not None:
            self.tmp.unlink(missing_ok=True)
            self.tmp = None


def _downscale(frame: np.ndarray, width: int) -> np.ndarray:
    from PIL import Image

    image = Image.fromarray(frame)
    if image.width <= width:
        return frame
    height = max(2, round(image.height * width / image.width))
    return np.asarray(image.resize((width, height), Image.Resampling.BILINEAR))


class EvalVideos:
    """Records the first ``per_task`` episodes of each task of one evaluation into ``folder``.

    Use: ``start`` before the episodes run, ``finish`` with the scored episodes after. The
    recorded episodes are among those scored (the first episodes of each task's first eval slots),
    so a video shows exactly what the success rate counted.
    """

    def __init__(
        self,
        folder: Path,
        per_task: int,
        task_names: list[str],
        env_label: str,
        success_key: str | None = None,
        previews: bool = False,
    ) -> None:
        self.folder = folder
        self.per_task = per_task
        self.task_names = task_names
        self.env_label = env_label
        self.success_key = success_key
        self.previews = previews
        self.problem: str | None = None
        self.pending: list[_Pending] = []
        self.videos: list[Video] = []
        self.overlay = _Overlay()
        self._writers: dict[int, _SlotWriter] = {}
        self._env: VecEnv | None = None

    def note_failure(self, exc: BaseException, rendering: bool = False) -> None:
        """The first failure is the one reported; every slot stops recording (each would fail alike)."""
        if self.problem is None:
            why = write_problem(self.folder, 1 << 20) if self.folder.is_dir() and not rendering else None
            if why is not None:  # the disk, not the encoder's "Broken pipe" that follows from it
                self.problem = f"writing videos in {self.folder} failed ({why})"
            else:
                self.problem = video_failure(self.env_label, exc, rendering)
            self._disarm()

    def _task_name(self, task: int) -> str:
        return self.task_names[task] if self.task_names else self.env_label

    def start(self, env: VecEnv, counts: list[int]) -> None:
        """Arm the first slots of each task for their first episodes, up to ``per_task`` per task."""
        self._env = env
        try:
            self._arm(env, counts)
        except Exception as exc:
            self.note_failure(exc)

    def _arm(self, env: VecEnv, counts: list[int]) -> None:
        n_tasks = max(1, len(self.task_names))
        per_slot_block = len(counts) // n_tasks  # slot_plan lays the tasks out in equal blocks
        fps = float(env.get_attr("fps", indices=[0])[0])
        max_steps = env.get_attr("max_steps", indices=[0])[0]
        for task in range(n_tasks):
            left, index = self.per_task, 0
            for slot in range(task * per_slot_block, (task + 1) * per_slot_block):
                take = min(left, counts[slot])
                if take <= 0:
                    break
                writer = _SlotWriter(self, slot, self._task_name(task), index, fps, max_steps)
                self._writers[slot] = writer
                env.env_method("record", writer, take, indices=[slot])
                left, index = left - take, index + take

    def _disarm(self) -> None:
        if self._env is not None:
            for slot in self._writers:
                self._env.env_method("record", None, 0, indices=[slot])

    def finish(self, outcomes: list[tuple[int, float]]) -> list[Video]:
        """Disarm, and name each recorded episode by its outcome.

        ``outcomes`` holds the slot and the scored success of each scored episode, in the order
        the evaluation counted them; a slot's recorded episodes are its first ones.
        """
        try:
            return self._finish(outcomes)
        except Exception as exc:  # a full disk while renaming: the evaluation's results still count
            self.note_failure(exc)
            self.videos.clear()
            return self.videos

    def _finish(self, outcomes: list[tuple[int, float]]) -> list[Video]:
        self._disarm()
        for writer in self._writers.values():
            writer.discard()
        outcome: dict[tuple[int, int], float] = {}
        seen: dict[int, int] = {}
        for slot, success in outcomes:
            nth = seen.get(slot, 0)
            seen[slot] = nth + 1
            outcome[(slot, nth)] = success
        for pending in self.pending:
            writer = self._writers[pending.slot]
            success = outcome.get((pending.slot, pending.index - writer.first_index))
            if success is None or self.problem is not None:
                pending.tmp.unlink(missing_ok=True)
                continue
            verdict = "success" if success > 0 else "failure"
            path = self.folder / f"{file_stem(writer.task)}-ep{pending.index}-{verdict}.mp4"
            os.replace(pending.tmp, path)
            self.videos.append(
                Video(
                    path=path,
                    task=writer.task,
                    episode=pending.index,
                    success=success > 0,
                    frames=pending.frames,
                    goal=pending.goal,
                    fps=writer.fps,
                    preview=np.stack(pending.preview) if pending.preview else None,
                )
            )
        self.pending.clear()
        if self.problem is not None:  # no videos: no empty folders either
            for folder in (self.folder, self.folder.parent):
                with contextlib.suppress(OSError):
                    folder.rmdir()
        order = {name: i for i, name in enumerate(self.task_names)}
        self.videos.sort(key=lambda v: (order.get(v.task, 0), v.episode))
        return self.videos

    def summary_line(self) -> str:
        """``4 videos in RUN/videos/eval-model-s0: FetchPush-v4-ep0-success.mp4, ...``"""
        names = ", ".join(v.path.name for v in self.videos[:4]) + (", ..." if len(self.videos) > 4 else "")
        plural = "s" if len(self.videos) != 1 else ""
        return f"{len(self.videos)} video{plural} in {self.folder}: {names}"


def log_to_tensorboard(logger: Logger, videos: list[Video], step: int) -> None:
    """Each video's preview as an animated GIF under ``eval/video/<task>-ep<k>`` (TensorBoard's Images).

    This is what ``SummaryWriter.add_video`` writes, without moviepy: torch's add_video needs
    moviepy 1.x (``moviepy.editor``, gone in 2.0). The GIF is encoded by imageio (Pillow).
    """
    from stable_baselines3.common.logger import TensorBoardOutputFormat

    writers = [f.writer for f in logger.output_formats if isinstance(f, TensorBoardOutputFormat)]
    if not writers:
        return
    import imageio.v3 as iio
    from tensorboard.compat.proto.summary_pb2 import Summary

    for video in videos:
        if video.preview is None or len(video.preview) == 0:
            continue
        buffer = io.BytesIO()
        iio.imwrite(buffer, video.preview, extension=".gif", duration=1000.0 / video.fps, loop=0)
        height, width = video.preview.shape[1:3]
        image = Summary.Image(
            height=height, width=width, colorspace=3, encoded_image_string=buffer.getvalue()
        )
        tag = f"eval/video/{file_stem(video.task)}-ep{video.episode}"
        summary = Summary(value=[Summary.Value(tag=tag, image=image)])
        for writer in writers:
            # SummaryWriter has no public call for a prepared summary; add_video itself uses this.
            writer._get_file_writer().add_summary(summary, step)
            writer.flush()
