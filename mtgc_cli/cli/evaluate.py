"""`mtgc eval`: deterministic episodes of a saved model, with its own config and statistics."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer

from mtgc_cli.cli.render import eval_table, stdout
from mtgc_cli.errors import UsageError
from mtgc_cli.notices import warn


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
    task_descriptions: Annotated[
        list[str] | None,
        typer.Option(
            "--task-description",
            metavar="TASK=TEXT",
            help="Language runs: evaluate TASK (its own reward and goals) with the policy told TEXT "
            "instead of the trained description, e.g. east='go right'. Repeatable.",
        ),
    ] = None,
) -> None:
    """Evaluate a saved model: success with a 95% interval, return, final goal distance, length."""
    if episodes <= 0:
        raise UsageError(f"--episodes must be a positive number, got {episodes}")
    if seed < 0:
        raise UsageError(f"--seed is {seed}; valid: a non-negative integer, e.g. --seed 0")
    if video_episodes <= 0:
        raise UsageError(f"--video-episodes must be a positive number, got {video_episodes}")
    from mtgc_cli import runs
    from mtgc_cli.envs.recording import prefer_offscreen_gl
    from mtgc_cli.evaluation import evaluate, load_for_eval
    from mtgc_cli.video import EvalVideos

    rewording = _parse_descriptions(task_descriptions or [])
    if video:
        prefer_offscreen_gl()  # before the env is built and MuJoCo imported
    loaded = load_for_eval(target, episodes, seed, task_descriptions=rewording, video=video)
    config = loaded.saved.config
    for change in loaded.rewordings:
        typer.echo(change.line(), err=True)
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
        if loaded.rewordings:
            payload["task_descriptions"] = [asdict(change) for change in loaded.rewordings]
        typer.echo(json.dumps(payload, indent=2))
    else:
        stdout.print(eval_table(result, f"{loaded.saved.model} ({episodes} episodes, seed {seed})"))


def _parse_descriptions(items: list[str]) -> dict[str, str]:
    """``["east=go right"]`` -> ``{"east": "go right"}``."""
    parsed: dict[str, str] = {}
    for item in items:
        task, sep, text = item.partition("=")
        if not sep or not task.strip():
            raise UsageError(
                f"--task-description {item!r}: expected TASK=TEXT; "
                "valid: e.g. --task-description east='go right'"
            )
        if not text.strip():
            raise UsageError(
                f"--task-description {item!r}: the description of task '{task.strip()}' is empty; "
                "valid: a non-empty sentence"
            )
        if task.strip() in parsed:
            raise UsageError(
                f"--task-description gives task '{task.strip()}' twice; valid: one TEXT per task"
            )
        parsed[task.strip()] = text
    return parsed
