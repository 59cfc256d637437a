"""`mtgc eval`: deterministic episodes of a saved model, with its own config and statistics."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from mtgc_cli.cli.app import app
from mtgc_cli.console import eval_table, stdout, warn
from mtgc_cli.errors import UsageError


@app.command("eval")
def eval_command(
    target: Annotated[
        Path, typer.Argument(help="A run folder, or a model .zip inside one (best, checkpoint).")
    ],
    episodes: Annotated[
        int, typer.Option("--episodes", "-n", help="Episodes (per task for multi-task runs).")
    ] = 100,
    seed: Annotated[int, typer.Option(help="Seed of the evaluation envs.")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the results as JSON on stdout.")] = False,
    video: Annotated[
        bool,
        typer.Option(
            "--video",
            help="Also write an MP4 of each of the first --video-episodes episodes of every task "
            "to RUN/videos/eval-<model>-s<seed>/ (MuJoCo renders with MUJOCO_GL=egl unless set).",
        ),
    ] = False,
    video_episodes: Annotated[
        int, typer.Option("--video-episodes", help="Episodes per task recorded with --video.")
    ] = 3,
) -> None:
    """Evaluate a saved model: success with a 95% interval, return, final goal distance, length."""
    if episodes <= 0:
        raise UsageError(f"--episodes must be a positive number, got {episodes}")
    if video_episodes <= 0:
        raise UsageError(f"--video-episodes must be a positive number, got {video_episodes}")
    from mtgc_cli import runs
    from mtgc_cli.evaluation import evaluate, load_for_eval
    from mtgc_cli.video import EvalVideos, prefer_offscreen_gl

    if video:
        prefer_offscreen_gl()  # before the env is built and MuJoCo imported
    loaded = load_for_eval(target, episodes, seed, video=video)
    config = loaded.saved.config
    if loaded.video_problem:
        warn(f"{loaded.video_problem}; evaluating without videos")
    recorder = None
    if loaded.records:
        recorder = EvalVideos(
            runs.eval_video_dir(loaded.saved, seed),
            per_task=min(video_episodes, episodes),
            task_names=config.env.task_labels,
            env_label=config.env.label,
            success_key=config.env.success_key,
        )
    try:
        result = evaluate(loaded.model, loaded.env, loaded.counts, config.env.task_labels, videos=recorder)
    finally:
        loaded.env.close()
    if recorder is not None:
        if recorder.problem:
            warn(f"{recorder.problem}; no videos, the evaluation went on without them")
        else:
            typer.echo(f"mtgc: {recorder.summary_line()}", err=True)
    if as_json:
        payload = {"model": str(loaded.saved.model), "episodes": episodes, "seed": seed, **result.to_dict()}
        if video:
            payload["videos"] = [v.to_dict() for v in recorder.videos] if recorder else []
        typer.echo(json.dumps(payload, indent=2))
    else:
        stdout.print(eval_table(result, f"{loaded.saved.model} ({episodes} episodes, seed {seed})"))
