"""Wall-clock minutes and env steps until a preset's eval success reaches 0.5 and 0.9.

Runs `mtgc train` for each preset and seed within a wall-clock budget, evaluating every
``--eval-every`` env steps on ``--eval-episodes`` deterministic episodes, then prints per run:
minutes and env steps to 0.5 and 0.9, final success, env steps/s and gradient steps/s (both
over training time, evaluation excluded), the cores it ran on, and the median over seeds. When
the budget stops a run after its last scheduled eval (a slow preset may not reach its first),
its final model is evaluated there on as many episodes, and that is its final success.
Writes ``time_to_success.json`` and ``time_to_success.png`` (success against wall-clock minutes).

    python benchmarks/time_to_success.py --preset fetch-push --seeds 0,1,2 --minutes 60
    python benchmarks/time_to_success.py --preset fetch-push --also fetch-push-zoo --seeds 0 --minutes 60

Runs go ``--parallel`` at a time. With 1 a run gets every core (torch's default threads); with
more, each run is pinned to one core (``taskset``) with one torch thread, so runs never fight
over threads; the table says which. ``--cores 1`` pins the runs to the cores listed (one run per
core at a time, one torch thread each), e.g. to leave core 0 to other work. Minutes are
wall-clock from the run's start and include its evaluations (``minutes``), and without them
(``train min``).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

THRESHOLDS = (0.5, 0.9)


@dataclass
class Job:
    preset: str
    seed: int
    cores: str  # "all" or the core it was pinned to
    run_root: Path
    log: Path
    process: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    stop_eval: dict[str, float] | None = None
    stopped_at_threshold: bool = False
    best_fresh: dict[str, float] | None = None


@dataclass
class Outcome:
    preset: str
    seed: int
    cores: str
    status: str
    env_steps: int
    minutes: float
    final_success: float | None
    env_steps_per_s: float | None
    gradient_steps_per_s: float | None
    reached: dict[str, dict[str, float] | None] = field(default_factory=dict)
    curve: list[dict[str, float]] = field(default_factory=list)
    run_dir: str | None = None
    # The final model evaluated where the budget stopped the run, when its last scheduled eval
    # is older (a slow preset may not reach its first eval at all): success and env steps.
    stop_eval: dict[str, float] | None = None
    # --stop-at: the run was stopped when its eval reached the threshold.
    stopped_at_threshold: bool = False
    # Its best model on fresh episodes (a seed no scheduled eval used), once the run stopped.
    best_fresh: dict[str, float] | None = None


def _mtgc() -> list[str]:
    exe = shutil.which("mtgc")
    return [exe] if exe else [sys.executable, "-m", "mtgc_cli.cli.app"]


def start(job: Job, args: argparse.Namespace, pinned: bool) -> None:
    env = dict(os.environ)
    command = [
        *_mtgc(), "train", "--preset", job.preset, "--seed", str(job.seed),
        "--timesteps", str(args.timesteps), "--runs-dir", str(job.run_root),
        "--set", f"train.eval_every={args.eval_every}", "--set", f"train.eval_episodes={args.eval_episodes}",
    ]  # fmt: skip
    for assignment in args.set or []:
        command += ["--set", assignment]
    if pinned:
        env["OMP_NUM_THREADS"] = "1"
        env["MKL_NUM_THREADS"] = "1"
        command = ["taskset", "-c", job.cores, *command]
    job.log.parent.mkdir(parents=True, exist_ok=True)
    with job.log.open("wb") as log:
        job.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    job.started = time.monotonic()


def eval_at_stop(job: Job, args: argparse.Namespace, pinned: bool) -> dict[str, float] | None:
    """Evaluate the model a budget-stopped run saved, if its last scheduled eval is older.

    Same episodes count and one deterministic seed as the scheduled evals; pinned to the run's
    core. None when the last eval was at the stop already or the run saved no model.
    """
    summaries = sorted(job.run_root.rglob("summary.json"))
    if not summaries:
        return None
    summary = json.loads(summaries[-1].read_text())
    model = summaries[-1].parent / "model.zip"
    steps = int(summary.get("steps") or 0)
    if not model.is_file() or steps == 0 or summary.get("final_eval_step") == steps:
        return None
    command = [*_mtgc(), "eval", str(model), "--episodes", str(args.eval_episodes), "--seed", "0", "--json"]
    env = dict(os.environ)
    if pinned:
        env["OMP_NUM_THREADS"] = "1"
        command = ["taskset", "-c", job.cores, *command]
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        problem = done.stderr.strip()[-300:]
        print(f"eval at stop of {job.preset} seed {job.seed} failed: {problem}", flush=True)
        return None
    success = float(json.loads(done.stdout)["overall"]["success"])
    print(f"{job.preset} seed {job.seed}: model at the stop ({steps:,} env steps): {success:.2f}", flush=True)
    return {"env_steps": steps, "success": success, "seconds": float(summary.get("seconds") or 0)}


def best_eval(job: Job) -> float | None:
    """The highest scheduled eval success the run has logged so far (None before its first)."""
    runs = sorted(job.run_root.rglob("progress.csv"))
    if not runs:
        return None
    with runs[-1].open() as f:
        values = [float(r["eval_success"]) for r in csv.DictReader(f) if r.get("eval_success")]
    return max(values, default=None)


# Episodes of the fresh evaluation of a stopped run's best model: a seed no scheduled eval used.
FRESH_SEED = 10_007


def eval_best_fresh(job: Job, args: argparse.Namespace, pinned: bool) -> dict[str, float] | None:
    """``best_model.zip`` evaluated on ``--eval-episodes`` episodes that chose nothing."""
    models = sorted(job.run_root.rglob("best_model.zip"))
    if not models:
        return None
    command = [*_mtgc(), "eval", str(models[-1]), "--episodes", str(args.eval_episodes),
               "--seed", str(FRESH_SEED), "--json"]  # fmt: skip
    env = dict(os.environ)
    if pinned:
        env["OMP_NUM_THREADS"] = "1"
        command = ["taskset", "-c", job.cores, *command]
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        print(f"fresh eval of {job.preset} seed {job.seed}'s best model failed: {done.stderr[-300:]}")
        return None
    overall = json.loads(done.stdout)["overall"]
    print(f"{job.preset} seed {job.seed}: best model on fresh episodes {overall['success']:.2f}", flush=True)
    return {"success": float(overall["success"]), "episodes": float(overall["episodes"])}


def read_outcome(job: Job) -> Outcome:
    runs = sorted(job.run_root.rglob("progress.csv"))
    rows: list[dict[str, str]] = []
    if runs:
        with runs[-1].open() as f:
            rows = list(csv.DictReader(f))
    summary_file = runs[-1].parent / "summary.json" if runs else None
    status = "no result"
    if summary_file is not None and summary_file.is_file():
        status = json.loads(summary_file.read_text()).get("status", "done")
    curve = [
        {
            "env_steps": int(r["env_steps"]),
            "minutes": float(r["wall_seconds"]) / 60,
            "train_minutes": (float(r["wall_seconds"]) - float(r.get("eval_seconds") or 0)) / 60,
            "success": float(r["eval_success"]),
            "gradient_steps": int(r.get("gradient_steps") or 0),
        }
        for r in rows
    ]
    reached: dict[str, dict[str, float] | None] = {}
    for threshold in THRESHOLDS:
        hit = next((point for point in curve if point["success"] >= threshold), None)
        reached[str(threshold)] = (
            {"minutes": hit["minutes"], "train_minutes": hit["train_minutes"], "env_steps": hit["env_steps"]}
            if hit
            else None
        )
    last = curve[-1] if curve else None
    train_seconds = last["train_minutes"] * 60 if last else 0.0
    stop = job.stop_eval
    return Outcome(
        preset=job.preset,
        seed=job.seed,
        cores=job.cores,
        status=status,
        env_steps=int(stop["env_steps"]) if stop else (last["env_steps"] if last else 0),
        minutes=last["minutes"] if last else 0.0,
        final_success=stop["success"] if stop else (last["success"] if last else None),
        env_steps_per_s=(
            last["env_steps"] / train_seconds
            if last and train_seconds
            else (stop["env_steps"] / stop["seconds"] if stop and stop["seconds"] else None)
        ),
        gradient_steps_per_s=last["gradient_steps"] / train_seconds if last and train_seconds else None,
        reached=reached,
        curve=curve,
        run_dir=str(runs[-1].parent) if runs else None,
        stop_eval=stop,
        stopped_at_threshold=job.stopped_at_threshold,
        best_fresh=job.best_fresh,
    )


def run_all(jobs: list[Job], args: argparse.Namespace) -> list[Outcome]:
    pending = list(jobs)
    running: list[Job] = []
    pinned = args.parallel > 1 or args.cores is not None
    free_cores = args.cores.split(",") if args.cores else [str(core) for core in range(args.parallel)]
    budget = args.minutes * 60
    while pending or running:
        while pending and len(running) < args.parallel:
            job = pending.pop(0)
            job.cores = free_cores.pop(0) if pinned else "all"
            start(job, args, pinned)
            running.append(job)
            print(f"started {job.preset} seed {job.seed} on cores {job.cores}: log {job.log}", flush=True)
        time.sleep(5)
        stopped = []
        for job in running:
            assert job.process is not None
            if job.process.poll() is not None:
                continue
            over = time.monotonic() - job.started > budget
            there = args.stop_at is not None and (best_eval(job) or 0.0) >= args.stop_at
            if over or there:
                # SIGINT: mtgc saves the model and writes its summary as `interrupted`.
                job.process.send_signal(signal.SIGINT)
                job.stopped_at_threshold = there and not over
                stopped.append(job)
        for job in stopped:
            assert job.process is not None
            try:
                job.process.wait(timeout=300)
            except subprocess.TimeoutExpired:
                job.process.kill()
        for job in stopped:  # after every over-budget run has stopped, so none overruns meanwhile
            if not job.stopped_at_threshold:
                job.stop_eval = eval_at_stop(job, args, pinned)
            job.best_fresh = eval_best_fresh(job, args, pinned)
        for job in list(running):
            assert job.process is not None
            if job.process.poll() is not None:
                running.remove(job)
                if job.cores != "all":
                    free_cores.append(job.cores)
                print(f"finished {job.preset} seed {job.seed} (exit {job.process.returncode})", flush=True)
    return [read_outcome(job) for job in jobs]


def _fmt_reach(value: dict[str, float] | None) -> str:
    if value is None:
        return "not reached"
    return f"{value['minutes']:.1f} min ({value['train_minutes']:.1f} train) / {value['env_steps']:,.0f}"


def report(outcomes: list[Outcome], args: argparse.Namespace) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"time to success: {args.minutes:.0f} min budget, {args.eval_episodes} eval episodes")
    for column in ("preset", "seed", "cores", "to 0.5: min / steps", "to 0.9: min / steps", "final",
                   "best, fresh", "steps", "env steps/s", "grad steps/s", "status"):  # fmt: skip
        table.add_column(column)
    for o in outcomes:
        table.add_row(
            o.preset, str(o.seed), o.cores,
            _fmt_reach(o.reached.get("0.5")), _fmt_reach(o.reached.get("0.9")),
            "-" if o.final_success is None else f"{o.final_success:.2f}",
            "-" if not o.best_fresh else f"{o.best_fresh['success']:.2f}", f"{o.env_steps:,}",
            "-" if o.env_steps_per_s is None else f"{o.env_steps_per_s:.1f}",
            "-" if o.gradient_steps_per_s is None else f"{o.gradient_steps_per_s:.1f}", o.status,
        )  # fmt: skip
    for preset in dict.fromkeys(o.preset for o in outcomes):
        mine = [o for o in outcomes if o.preset == preset]
        cells = [seed_share(mine, threshold) for threshold in THRESHOLDS]
        finals = [o.final_success for o in mine if o.final_success is not None]
        fresh = [o.best_fresh["success"] for o in mine if o.best_fresh]
        table.add_row(
            preset, f"{len(mine)} seeds", "", cells[0], cells[1],
            f"{statistics.median(finals):.2f}" if finals else "-",
            f"{statistics.median(fresh):.2f}" if fresh else "-", "", "", "", "",
        )  # fmt: skip
    Console(width=max(Console().width, 170)).print(table)


def seed_share(mine: list[Outcome], threshold: float) -> str:
    """Seeds that reached ``threshold``: their share with its 95% Wilson interval over seeds, and
    the Kaplan-Meier median of the minutes to it (a seed that never got there is censored at the
    minutes it was followed; the median is "> budget" while fewer than half got there)."""
    from mtgc_cli.compare import time_to_threshold
    from mtgc_cli.evaluation import wilson_interval

    hits = [o.reached.get(str(threshold)) for o in mine]
    minutes = [h["minutes"] if h else None for h in hits]
    horizons = [o.minutes for o in mine]
    reached = sum(m is not None for m in minutes)
    low, high = wilson_interval(reached, len(mine))
    median = time_to_threshold(minutes, horizons).median
    when = f"median {median:.1f} min" if median is not None else "median > budget"
    return f"{reached}/{len(mine)} seeds [{low:.2f}, {high:.2f}], {when}"


def plot(outcomes: list[Outcome], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    colours = {preset: f"C{i}" for i, preset in enumerate(dict.fromkeys(o.preset for o in outcomes))}
    for o in outcomes:
        ax.plot(
            [p["minutes"] for p in o.curve], [p["success"] for p in o.curve], color=colours[o.preset],
            label=f"{o.preset} s{o.seed} (cores {o.cores})", marker=".",
        )  # fmt: skip
    for threshold in THRESHOLDS:
        ax.axhline(threshold, color="grey", lw=0.5, ls="--")
    ax.set_xlabel("wall-clock minutes (evaluation included)")
    ax.set_ylabel("eval success")
    ax.set_ylim(-0.02, 1.02)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--preset", default="fetch-push")
    parser.add_argument("--also", default="", help="more presets run side by side, comma-separated")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--minutes", type=float, default=60.0, help="wall-clock budget per run")
    parser.add_argument(
        "--timesteps", type=int, default=10_000_000, help="env-step cap (the budget usually ends first)"
    )
    parser.add_argument("--eval-every", type=int, default=10_000)
    parser.add_argument("--eval-episodes", type=int, default=100)
    parser.add_argument("--parallel", type=int, default=1, help="runs at once, one core each when > 1")
    parser.add_argument(
        "--cores",
        help="comma-separated cores to pin runs to, one run per core at a time (e.g. 1: one run on core 1 "
        "with one torch thread, leaving core 0 free); default: cores 0.. when --parallel > 1",
    )
    parser.add_argument(
        "--stop-at",
        type=float,
        help="stop a run once an eval reaches this success (its best model is "
        "then evaluated on fresh episodes), so that more seeds fit in a session",
    )
    parser.add_argument("--set", action="append", help="KEY=VALUE passed to every run")
    parser.add_argument("--out", type=Path, default=Path("runs/benchmarks/time_to_success"))
    parser.add_argument(
        "--report",
        type=Path,
        nargs="+",
        help="print the table (and plot) of earlier time_to_success.json files, runs nothing",
    )
    args = parser.parse_args()
    if args.report:
        outcomes = []
        for path in args.report:
            outcomes += [Outcome(**run) for run in json.loads(path.read_text())["runs"]]
        saved = json.loads(args.report[0].read_text())["args"]
        args.eval_episodes, args.minutes = saved["eval_episodes"], saved["minutes"]
        report(outcomes, args)
        plot(outcomes, args.report[0].with_name("time_to_success_report.png"))
        return
    if args.parallel > (os.cpu_count() or 1):
        parser.error(f"--parallel {args.parallel} exceeds the {os.cpu_count()} cores")
    if args.cores is not None:
        cores = args.cores.split(",")
        if not all(c.isdigit() and int(c) < (os.cpu_count() or 1) for c in cores):
            parser.error(f"--cores {args.cores}: give core numbers below {os.cpu_count()}, comma-separated")
        args.parallel = len(cores)
    presets = [args.preset, *[p for p in args.also.split(",") if p]]
    seeds = [int(s) for s in args.seeds.split(",")]
    stamp = time.strftime("%Y%m%dT%H%M%S")
    out = args.out / stamp
    jobs = [
        Job(preset, seed, "all", out / "runs" / f"{preset}-s{seed}", out / "logs" / f"{preset}-s{seed}.log")
        for seed in seeds
        for preset in presets
    ]
    outcomes = run_all(jobs, args)
    report(outcomes, args)
    payload = {"args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
               "runs": [asdict(o) for o in outcomes]}  # fmt: skip
    (out / "time_to_success.json").write_text(json.dumps(payload, indent=2))
    plot(outcomes, out / "time_to_success.png")
    print(f"wrote {out / 'time_to_success.json'} and {out / 'time_to_success.png'}")


if __name__ == "__main__":
    main()
