"""What a whole checkpoint costs (MB, seconds to write, seconds to read back) at a preset's full
replay buffer, and at a part-full one.

Filling fetch-push's 1,000,000-transition buffer by training takes days on a laptop, so the
buffer is filled with synthetic 50-step episodes (random observations, consistent episode
bookkeeping): a pickle costs the same whatever the numbers are. Then ``checkpoint.write`` (the
code ``mtgc train`` runs) and ``checkpoint.restore`` (what ``--resume`` runs) are timed.

    python benchmarks/checkpoint_cost.py --preset fetch-push [--fill 1.0] [--dir runs/bench-ckpt]
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

import numpy as np

from mtgc_cli import checkpoint, presets, training


def fill(buffer, fraction: float, episode: int, rng: np.random.Generator) -> None:
    """Synthetic whole episodes in the first ``fraction`` of the buffer (all of it at 1.0)."""
    rows = (
        buffer.buffer_size if fraction >= 1.0 else (int(fraction * buffer.buffer_size) // episode) * episode
    )
    for store in (buffer.observations, buffer.next_observations):
        for value in store.values():
            value[:rows] = rng.standard_normal(value[:rows].shape)
    buffer.actions[:rows] = rng.uniform(-1, 1, buffer.actions[:rows].shape)
    buffer.rewards[:rows] = -1.0
    starts = (np.arange(rows) // episode) * episode
    buffer.ep_start[:rows] = starts[:, None]
    buffer.ep_length[:rows] = episode
    buffer.timeouts[starts + episode - 1] = 1.0
    buffer.dones[starts + episode - 1] = 1.0
    buffer.pos = rows % buffer.buffer_size
    buffer.full = rows == buffer.buffer_size
    buffer._current_ep_start[:] = buffer.pos


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--preset", default="fetch-push")
    parser.add_argument("--fill", type=float, nargs="+", default=[1.0, 0.1])
    parser.add_argument("--dir", type=Path, default=Path("runs/bench-checkpoint"))
    args = parser.parse_args()
    config = presets.load(args.preset)
    setup = training.prepare(config)
    buffer = setup.model.replay_buffer
    episode = 50
    print(
        f"{args.preset}: {config.algo.name}, buffer {buffer.buffer_size:,} x {buffer.n_envs} env(s), "
        f"observation dtype {next(iter(buffer.observations.values())).dtype}"
    )
    for fraction in args.fill:
        fill(buffer, fraction, episode, np.random.default_rng(0))
        run_dir = args.dir
        shutil.rmtree(run_dir, ignore_errors=True)
        run_dir.mkdir(parents=True)
        (run_dir / "config.yaml").write_text(config.to_yaml())
        rows = buffer.buffer_size if buffer.full else buffer.pos
        written = checkpoint.write(run_dir, rows, setup.model, setup.env, setup.eval_env, {}, config)
        files = written.manifest["files"]
        fresh = training.prepare(config)
        start = time.perf_counter()
        plan = checkpoint.ResumePlan(run_dir, config, [written])
        restored = checkpoint.restore(plan, fresh.model, fresh.env, fresh.eval_env)
        read_seconds = time.perf_counter() - start
        assert restored.model.replay_buffer.full == buffer.full
        fresh.close()
        print(
            f"  {rows:>9,} transitions ({fraction:.0%}): {written.bytes / 1e6:8.1f} MB "
            f"(replay_buffer.pkl {files['replay_buffer.pkl'] / 1e6:.1f} MB, model.zip "
            f"{files['model.zip'] / 1e6:.1f} MB), write {written.seconds:.2f} s incl. fsync, "
            f"read back {read_seconds:.2f} s"
        )
        shutil.rmtree(run_dir, ignore_errors=True)
    setup.close()


if __name__ == "__main__":
    main()
