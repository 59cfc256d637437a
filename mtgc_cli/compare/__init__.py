"""``mtgc compare``: a grid of relabel strategies x seeds, run on a backend, then aggregated.

Each grid cell is a normal run folder, ``runs/compare/<name>/<strategy>-s<seed>/``, so when the
command is run again a cell that finished with the same config is skipped and a cell that was
stopped (Ctrl-C, SIGTERM, a crash) goes on from its newest whole checkpoint. Where the cells run
(processes on this machine, or a Ray cluster) is the backend's business (``backends/``); this
package keeps the grid (``grid``), the statistics (``stats``), the aggregate and its files
(``report``), and the command's course (``run``).
"""

from mtgc_cli.compare.grid import Cell, cell_state, expand, jobs, run_grid
from mtgc_cli.compare.report import STATISTICS, aggregate, finished, plot_curves, read_curve, write_outputs
from mtgc_cli.compare.run import CompareResult, Display, compare
from mtgc_cli.compare.stats import Estimate, TimeToThreshold, iqm, steps_to, time_to_threshold

__all__ = [
    "STATISTICS",
    "Cell",
    "CompareResult",
    "Display",
    "Estimate",
    "TimeToThreshold",
    "aggregate",
    "cell_state",
    "compare",
    "expand",
    "finished",
    "iqm",
    "jobs",
    "plot_curves",
    "read_curve",
    "run_grid",
    "steps_to",
    "time_to_threshold",
    "write_outputs",
]
