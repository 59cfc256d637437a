"""Language task descriptions: learning against the one-hot, and success under new wordings.

For each seed, trains the preset with ``env.task_encoding: language`` (and, with ``--onehot``, the
same preset and settings with the one-hot), then evaluates the language run's last model as
``mtgc eval RUN --task-description TASK=TEXT`` does: with the trained descriptions, and with each
set of paraphrases below in turn, every task keeping its own reward and goals (zero-shot).

    OMP_NUM_THREADS=1 python benchmarks/paraphrase.py --preset point-tasks --timesteps 12000 \\
        --seeds 0 1 2 --onehot
    OMP_NUM_THREADS=1 python benchmarks/paraphrase.py --run runs/point-tasks/<run>  # a trained run

Prints, per run: final eval success per task (``train.eval_episodes`` each) and the first eval at
which every task was at or above 0.9; then, per language run, a row per task and wording: the
wording's cosine similarity to the trained description, the task whose trained description is
nearest, success over ``--episodes`` episodes with its 95% Wilson interval and, for point-tasks,
where the point ends: the median distance to the task's own target and the target it ends nearest.
Runs are kept under ``--root`` (default ./bench-paraphrase).
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from mtgc_cli import presets, runs, training
from mtgc_cli.evaluation import LoadedModel, evaluate, load_for_eval

# Per env, per task: wordings the policy never saw, from close to far from the trained one.
PARAPHRASES: dict[str, dict[str, tuple[str, ...]]] = {
    "mtgc/PointTasks-v0": {
        "east": ("go to the eastern target", "head east", "go right"),
        "north": ("go to the northern target", "head north", "go up"),
        "west": ("go to the western target", "head west", "go left"),
        "south": ("go to the southern target", "head south", "go down"),
    },
    "mtgc/FetchTasks-v0": {
        "reach": ("move the gripper to the goal", "put the hand at the target position"),
        "push": ("push the cube to the goal on the table", "slide the block along the table to the target"),
        "lift": ("lift the cube up to the goal in the air", "pick the block up and hold it at the target"),
    },
}

stdout = Console(width=160)


def first_all_above(progress: Path, tasks: list[str], threshold: float = 0.9) -> int | None:
    """The first eval step at which every task's eval success was at or above ``threshold``."""
    with progress.open() as f:
        for row in csv.DictReader(f):
            if all(float(row[f"success/{task}"]) >= threshold for task in tasks):
                return int(row["env_steps"])
    return None


def train_one(
    preset: str, encoding: str, seed: int, timesteps: int | None, sets: list[str], root: Path
) -> Path:
    sets = [*sets, f"env.task_encoding={encoding}"]
    config = presets.load(preset, seed=seed, timesteps=timesteps, sets=sets)
    summary = training.run(training.prepare(config), root / "runs", command=["benchmarks/paraphrase.py"])
    return Path(summary["run_dir"])


def learning_row(run_dir: Path) -> list[str]:
    saved = runs.open_run(run_dir)
    config = saved.config
    summary = runs.read_summary(run_dir) or {}
    tasks = config.env.task_labels
    at = first_all_above(run_dir / runs.PROGRESS, tasks)
    final = summary.get("final_task_success") or {}
    return [
        config.env.task_encoding,
        str(config.train.seed),
        f"{summary.get('steps', 0):,}",
        f"{summary.get('seconds', 0):.0f}",
        *(f"{final.get(task, float('nan')):.2f}" for task in tasks),
        "never" if at is None else f"{at:,}",
    ]


def where_it_ends(loaded: LoadedModel, tasks: list[str]) -> dict[str, str]:
    """Point-tasks: per task, the median final distance to its own target and the nearest target.

    One episode per eval slot (deterministic policy), from the eval envs' next starts.
    """
    env = loaded.env
    if not env.has_attr("targets"):
        return {}
    targets = env.get_attr("targets", indices=[0])[0]
    finals: dict[int, list[np.ndarray]] = {}
    obs = env.reset()
    ended = np.zeros(env.num_envs, dtype=bool)
    while not ended.all():
        actions, _ = loaded.model.predict(obs, deterministic=True)  # type: ignore[arg-type]
        obs, _, dones, infos = env.step(actions)
        for slot in np.flatnonzero(dones & ~ended):
            finals.setdefault(int(infos[slot]["task"]), []).append(
                infos[slot]["terminal_observation"]["observation"]
            )
        ended |= dones
    found = {}
    for task, positions in finals.items():
        distances = np.linalg.norm(
            np.asarray(positions)[:, None] - targets[None], axis=-1
        )  # (episodes, targets)
        nearest = np.bincount(distances.argmin(axis=1), minlength=len(tasks)).argmax()
        found[tasks[task]] = f"{np.median(distances[:, task]):.2f}, nearest {tasks[nearest]}"
    return found


def paraphrase_rows(run_dir: Path, episodes: int) -> list[list[str]]:
    config = runs.open_run(run_dir).config
    table = PARAPHRASES.get(str(config.env.id), {})
    tasks = config.env.task_labels
    n_sets = max((len(table.get(task, ())) for task in tasks), default=0)
    results: dict[str, list[list[str]]] = {task: [] for task in tasks}
    for k in range(-1, n_sets):
        wording = {task: table[task][k] for task in tasks if k >= 0 and k < len(table.get(task, ()))}
        if k >= 0 and not wording:
            continue
        loaded = load_for_eval(run_dir, episodes, seed=0, task_descriptions=wording or None)
        try:
            result = evaluate(loaded.model, loaded.env, loaded.counts, tasks)
            ends = where_it_ends(loaded, tasks)
        finally:
            loaded.env.close()
        changes = {change.task: change for change in loaded.rewordings}
        assert loaded.saved.run_dir == run_dir
        for row in result.rows:
            change = changes.get(row.name)
            if k >= 0 and change is None:
                continue
            text = "(trained) " + _trained(run_dir, row.name) if change is None else repr(change.text)
            cosine = "1.00" if change is None else f"{change.cosine:.2f}"
            nearest = row.name if change is None else change.nearest
            success = f"{row.success:.2f} [{row.success_low:.2f}, {row.success_high:.2f}]"
            results[row.name].append([row.name, text, cosine, nearest, success, ends.get(row.name, "-")])
    return [line for task in tasks for line in results[task]]


def _trained(run_dir: Path, task: str) -> str:
    encoding = runs.read_task_encoding(run_dir, runs.open_run(run_dir).config)
    assert encoding is not None and encoding.descriptions is not None
    return repr(encoding.descriptions[encoding.names.index(task)])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--preset", default="point-tasks")
    parser.add_argument("--timesteps", type=int, default=None, help="default: the preset's")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--onehot", action="store_true", help="also train the one-hot at the same settings")
    parser.add_argument("--set", dest="sets", action="append", default=[], help="as for mtgc train")
    parser.add_argument("--run", type=Path, action="append", default=[], help="evaluate these runs only")
    parser.add_argument("--episodes", type=int, default=50, help="eval episodes per task and wording")
    parser.add_argument("--root", type=Path, default=Path("bench-paraphrase"))
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 when sharing the CPU)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    run_dirs: list[Path] = list(args.run)
    if not run_dirs:
        for seed in args.seeds:
            for encoding in ("language", "onehot") if args.onehot else ("language",):
                run_dirs.append(train_one(args.preset, encoding, seed, args.timesteps, args.sets, args.root))

    tasks = runs.open_run(run_dirs[0]).config.env.task_labels
    learning = Table(title="final eval success per task (train.eval_episodes each)")
    for column in ("encoding", "seed", "steps", "seconds", *tasks, "every task >= 0.9 from"):
        learning.add_column(column)
    for run_dir in run_dirs:
        learning.add_row(*learning_row(run_dir))
    stdout.print(learning)

    for run_dir in run_dirs:
        if runs.open_run(run_dir).config.env.task_encoding != "language":
            continue
        table = Table(title=f"{run_dir}: success under each wording ({args.episodes} episodes per task)")
        columns = (
            "task",
            "wording",
            "cosine to trained",
            "nearest trained",
            "success [95% CI]",
            "end: distance to own target, nearest",
        )
        for column in columns:
            table.add_column(column)
        for row in paraphrase_rows(run_dir, args.episodes):
            table.add_row(*row)
        stdout.print(table)


if __name__ == "__main__":
    main()
