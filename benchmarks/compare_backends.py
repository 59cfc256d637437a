"""Wall time of `mtgc compare` on the local backend against the Ray backend (same grid, fresh folders).

python benchmarks/compare_backends.py [--preset bit-flip] [--strategies none,future] [--seeds 2]
    [--timesteps 5000] [--workers 2] [--address HOST:PORT]

Without --address the Ray run starts (and stops) a local cluster with --workers CPUs, as
`mtgc compare --backend ray` does; the wall time includes that start. Both runs must give the
same final success per strategy: each seed is deterministic whichever backend runs it.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
import time
from pathlib import Path


def run(args: argparse.Namespace, backend: str, root: Path) -> tuple[float, dict[str, float], float]:
    command = ["mtgc", "compare", "--preset", args.preset, "--strategies", args.strategies,
               "--seeds", str(args.seeds), "--workers", str(args.workers), "--runs-dir", str(root),
               "--name", backend, "--backend", backend]  # fmt: skip
    if args.timesteps:
        command += ["--timesteps", str(args.timesteps)]
    if backend == "ray" and args.address:
        command += ["--address", args.address]
    print("$", " ".join(command))
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    data = json.loads((root / "compare" / backend / "compare.json").read_text())
    # Seconds inside the runs (from their first step to their last eval), summed over runs.
    inside = sum(run["wall_seconds"] for run in data["runs"])
    return wall, {row["strategy"]: row["final_success_mean"] for row in data["strategies"]}, inside


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--preset", default="bit-flip")
    parser.add_argument("--strategies", default="none,future")
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--timesteps", type=int, default=5000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--address", default=None, help="a running Ray cluster (default: a local one)")
    parser.add_argument("--order", default="local,ray", help="which backend runs first")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        results = {backend: run(args, backend, Path(tmp)) for backend in args.order.split(",")}
    for backend, (wall, success, inside) in results.items():
        scores = ", ".join(f"{s} {v:.2f}" for s, v in success.items())
        print(f"{backend:>5}: {wall:.0f} s wall, {inside:.0f} s in the runs (summed); success: {scores}")
    print(f"ray / local wall: {results['ray'][0] / results['local'][0]:.2f}")


if __name__ == "__main__":
    main()
