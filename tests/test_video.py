"""Eval videos on real envs: a short FetchPush run (action repeat 3) with train.video_every, then
`mtgc eval --video`; frames are read back from the MP4s with imageio. Rendering that fails and envs
that cannot render give one line, and the evaluation still gives its results."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from mtgc_cli import presets, training
from mtgc_cli.envs.recording import frame_array
from mtgc_cli.errors import UsageError
from tests.conftest import assert_one_line_error, mtgc_subprocess, run_dirs

FETCH_STEPS = 50  # FetchPush-v4's episode, in env steps (17 decisions with action_repeat 3)


def mtgc_in_subprocess(
    args: list[str], env: dict[str, str], timeout: float
) -> subprocess.CompletedProcess[str]:
    """``mtgc ARGS`` in a fresh process: MUJOCO_GL is read when MuJoCo is first imported."""
    return mtgc_subprocess(args, env=env, timeout=timeout)


def frames_of(path: Path) -> np.ndarray:
    """Every frame of an MP4, (T, H, W, 3) uint8, decoded by imageio's ffmpeg plugin."""
    return iio.imread(path, index=None, plugin="FFMPEG")


@pytest.fixture(scope="module")
def push_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """150 env steps of fetch-push (3 episodes), learning from step 90, one eval with a video at 150."""
    config = presets.load(
        "fetch-push",
        timesteps=150,
        sets=[
            "algo.learning_starts=90",  # env steps (30 decisions), after the first episode
            "algo.batch_size=32",
            "algo.buffer_size=1000",
            "algo.policy_kwargs={net_arch: [32, 32]}",
            "train.eval_every=150",
            "train.eval_episodes=1",
            "train.checkpoint_every=null",
            "train.video_every=150",
            "train.video_episodes=1",
        ],
    )
    root = tmp_path_factory.mktemp("push")
    summary = training.run(training.prepare(config), root / "runs")
    assert summary.status == "done" and summary.steps == 150
    (run_dir,) = run_dirs(root)
    return run_dir


def test_train_video_every_writes_an_mp4_and_a_tensorboard_gif(push_run: Path) -> None:
    (video,) = sorted((push_run / "videos" / "step_150").glob("*.mp4"))
    assert video.name in ("FetchPush-v4-ep0-success.mp4", "FetchPush-v4-ep0-failure.mp4")
    frames = frames_of(video)
    # One frame per env step, not per decision of the action repeat.
    assert frames.shape == (FETCH_STEPS, 480, 480, 3)
    assert not list(push_run.rglob("*.partial.mp4"))
    events = EventAccumulator(str(push_run / "tb"), size_guidance={"images": 0})
    events.Reload()
    (image,) = events.Images("eval/video/FetchPush-v4-ep0")
    assert image.step == 150 and image.encoded_image_string.startswith(b"GIF89a")
    assert len(iio.imread(image.encoded_image_string, index=None, extension=".gif")) == FETCH_STEPS


def test_eval_video_frames_equal_the_episode_env_steps(push_run: Path, invoke) -> None:
    plain = invoke("eval", str(push_run), "--episodes", "1", "--json")
    result = invoke("eval", str(push_run), "--video", "--episodes", "1", "--json")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    (video,) = payload["videos"]
    path = Path(video["path"])
    assert path.parent == push_run / "videos" / "eval-model-s0"
    verdict = "success" if payload["overall"]["success"] == 1.0 else "failure"
    assert path.name == f"FetchPush-v4-ep0-{verdict}.mp4"
    assert video["frames"] == FETCH_STEPS and video["task"] == "FetchPush-v4" and len(video["goal"]) == 3
    frames = frames_of(path)
    assert frames.shape == (FETCH_STEPS, 480, 480, 3) and frames.dtype == np.uint8
    assert frames.std() > 10  # a scene, not a blank frame
    # Recording changes no episode: the same results as without --video (rendering runs MuJoCo's
    # forward pass again, which can move a distance in its last bits: 4.0687822655930556e-01 against
    # ...1055e-01).
    for key, value in json.loads(plain.stdout)["overall"].items():
        assert payload["overall"][key] == (
            pytest.approx(value, rel=1e-9) if isinstance(value, float) else value
        )
    # Episode lengths count env steps, as every other count does, not the 17 decisions.
    assert payload["overall"]["mean_length"] == FETCH_STEPS
    assert result.stderr.strip().splitlines() == [f"mtgc: 1 video in {path.parent}: {path.name}"]


def test_eval_without_offscreen_gl_says_so_in_one_line_and_gives_results(push_run: Path) -> None:
    """GLFW needs a display: with MUJOCO_GL=glfw and none, rendering fails at the first frame."""
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env.update(MUJOCO_GL="glfw", OMP_NUM_THREADS="1")
    args = ["eval", str(push_run), "--video", "--episodes", "1", "--seed", "7", "--json"]
    done = mtgc_in_subprocess(args, env, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mtgc: warning: rendering FetchPush-v4 failed"), lines
    assert "MUJOCO_GL=glfw" in lines[0] and "libegl1" in lines[0] and "libosmesa6" in lines[0]
    payload = json.loads(done.stdout)
    assert payload["overall"]["episodes"] == 1 and payload["videos"] == []
    assert not (push_run / "videos" / "eval-model-s7").exists() or not any(
        (push_run / "videos" / "eval-model-s7").iterdir()
    )


def test_a_mujoco_gl_that_mujoco_refuses_is_one_line(push_run: Path) -> None:
    """MuJoCo loads its GL backend on import; a bad MUJOCO_GL fails there, before any env exists."""
    env = {**os.environ, "MUJOCO_GL": "bogus", "OMP_NUM_THREADS": "1"}
    args = ["eval", str(push_run), "--video", "--episodes", "1"]
    done = mtgc_in_subprocess(args, env, timeout=120)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mtgc: error: importing gymnasium-robotics failed"), lines
    assert "with MUJOCO_GL=bogus; valid: MUJOCO_GL=egl" in lines[0]


BIT_FLIP = [
    "train", "--preset", "bit-flip", "--timesteps", "200", "--set", "env.kwargs.n_bits=4",
    "--set", "algo.learning_starts=50", "--set", "algo.buffer_size=500",
    "--set", "algo.policy_kwargs.net_arch=[16]", "--set", "train.eval_every=100",
    "--set", "train.eval_episodes=2", "--set", "train.video_every=100",
]  # fmt: skip


def test_env_without_an_image_render_trains_and_evaluates_with_one_line(invoke, tmp_path: Path) -> None:
    trained = invoke(*BIT_FLIP)
    assert trained.exit_code == 0, trained.output
    warnings = [line for line in trained.stderr.splitlines() if line.startswith("mtgc: warning:")]
    assert warnings == [
        "mtgc: warning: mtgc/BitFlipping-v0 cannot render frames (its render modes: none; videos need "
        "rgb_array); training goes on without videos (train.video_every)"
    ]
    (run_dir,) = run_dirs(tmp_path / "runs")
    assert (run_dir / "summary.json").is_file() and not (run_dir / "videos").exists()
    result = invoke("eval", str(run_dir), "--video", "--episodes", "2")
    assert result.exit_code == 0, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "mtgc/BitFlipping-v0 cannot render frames" in lines[0], lines
    assert lines[0].endswith("evaluating without videos")
    assert "success [95% CI]" in result.stdout


@pytest.fixture(scope="module")
def point_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """200 steps of point-tasks (four tasks, 30-step episodes): learning from step 50."""
    config = presets.load(
        "point-tasks",
        timesteps=200,
        sets=[
            "algo.learning_starts=50",
            "algo.buffer_size=500",
            "algo.policy_kwargs.net_arch=[16]",
            "train.eval_every=200",
            "train.eval_episodes=2",
        ],
    )
    root = tmp_path_factory.mktemp("point")
    training.run(training.prepare(config), root / "runs")
    (run_dir,) = run_dirs(root)
    return run_dir


def test_multi_task_eval_writes_the_first_episodes_of_every_task(point_run: Path, invoke) -> None:
    result = invoke("eval", str(point_run), "--video", "--episodes", "3", "--video-episodes", "2", "--json")
    assert result.exit_code == 0, result.output
    videos = json.loads(result.stdout)["videos"]
    tasks = ["east", "north", "west", "south"]
    assert [(v["task"], v["episode"]) for v in videos] == [(t, k) for t in tasks for k in (0, 1)]
    for video in videos:
        path = Path(video["path"])
        verdict = "success" if video["success"] else "failure"
        assert path.name == f"{video['task']}-ep{video['episode']}-{verdict}.mp4"
        assert frames_of(path).shape == (30, 240, 240, 3)  # 30-step episodes, the env's own render size
        assert video["goal"] is None  # no desired_goal in this env's observation
    assert "8 videos in" in result.stderr


def test_a_video_that_cannot_be_written_is_one_line_and_eval_goes_on(point_run: Path, invoke) -> None:
    (point_run / "videos").mkdir(exist_ok=True)
    (point_run / "videos" / "eval-model-s3").write_text("a file where the folder would go")
    result = invoke("eval", str(point_run), "--video", "--episodes", "2", "--seed", "3")
    assert result.exit_code == 0, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        "mtgc: warning: writing a video of mtgc/PointTasks-v0 failed"
    )
    assert "mean over tasks" in result.stdout


def test_training_goes_on_when_rendering_fails(tmp_path: Path) -> None:
    """Two evals with a video due, rendering failing (GLFW, no display): one line, the run finishes."""
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env.update(MUJOCO_GL="glfw", OMP_NUM_THREADS="1")
    args = [
        "train", "--preset", "fetch-reach", "--timesteps", "100", "--set", "algo.learning_starts=50",
        "--set", "algo.buffer_size=500", "--set", "train.eval_every=50", "--set", "train.eval_episodes=1",
        "--set", "train.checkpoint_every=null", "--set", "train.video_every=50", "--runs-dir", str(tmp_path),
    ]  # fmt: skip
    done = mtgc_in_subprocess(args, env, timeout=180)
    assert done.returncode == 0, done.stderr
    warnings = [line for line in done.stderr.splitlines() if "mtgc: warning:" in line]
    assert len(warnings) == 1 and "rendering FetchReach-v4 failed with MUJOCO_GL=glfw" in warnings[0]
    assert "no more videos in this run, training goes on" in warnings[0]
    (run_dir,) = run_dirs(tmp_path)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "done" and summary["steps"] == 100
    assert not list(run_dir.rglob("*.mp4"))


def test_a_render_that_is_not_an_image_is_refused_by_name() -> None:
    with pytest.raises(
        ValueError, match=r"MyEnv's rgb_array render is not an RGB image \(got shape \(4,\)\)"
    ):
        frame_array(np.zeros(4), "MyEnv")
    assert frame_array(np.ones((4, 6, 4)), "MyEnv").shape == (4, 6, 3)  # RGBA, floats in [0, 1]


def test_bad_video_settings_are_one_line(invoke) -> None:
    assert_one_line_error(
        invoke("eval", "runs/none", "--video", "--video-episodes", "0"), 2, "--video-episodes"
    )
    with pytest.raises(UsageError, match=r"train\.video_every"):
        presets.load("fetch-reach", sets=["train.video_every=0"])
