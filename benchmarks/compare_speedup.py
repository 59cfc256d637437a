"""Wall time of `mtgc compare` with --workers 1 against --workers 2 (same grid, fresh folders).

python benchmarks/compare_speedup.py [--preset bit-flip] [--strategies none,future] [--seeds 3]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
import time
from pathlib import Path


def run(preset: str, strategies: str, seeds: int, workers: int, root: Path) -> float:
    start = time.perf_counter()
    subprocess.run(
        ["mtgc", "compare", "--preset", preset, "--strategies", strategies, "--seeds", str(seeds),
         "--workers", str(workers), "--runs-dir", str(root), "--name", f"w{workers}"],
        check=True,
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    wall = time.perf_counter() - start
    data = json.loads((root / "compare" / f"w{workers}" / "compare.json").read_text())
    for row in data["strategies"]:
        print(f"  workers {workers}: {row['strategy']:<10} final success {row['final_success_mean']:.2f}")
    return wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--preset", default="bit-flip")
    parser.add_argument("--strategies", default="none,future")
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        one = run(args.preset, args.strategies, args.seeds, 1, Path(tmp))
        two = run(args.preset, args.strategies, args.seeds, 2, Path(tmp))
    print(f"workers 1: {one:.0f} s   workers 2: {two:.0f} s   ratio {two / one:.2f}")


if __name__ == "__main__":
    main()
