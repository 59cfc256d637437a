"""TensorBoard events of a run, in ``<run>/tb``; a resumed run hides what was logged after its
checkpoint."""

from __future__ import annotations

from pathlib import Path

from stable_baselines3.common.logger import Logger, TensorBoardOutputFormat, configure


class _ResumedTensorBoard(TensorBoardOutputFormat):
    """SB3's TensorBoard output that hides what the stopped run logged after its checkpoint.

    ``purge_step`` makes TensorBoard drop earlier events at or after that step, so the steps
    between the checkpoint and the stop, logged again by the resumed run, appear once.
    """

    def __init__(self, folder: str, purge_step: int):
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=folder, purge_step=purge_step)
        self._is_closed = False


def make_logger(run_dir: Path, resumed_at: int | None) -> Logger:
    """TensorBoard events in ``run_dir/tb``: a resumed run writes a new file in the same run."""
    folder = str(run_dir / "tb")
    if resumed_at is None:
        return configure(folder, ["tensorboard"])
    return Logger(folder=folder, output_formats=[_ResumedTensorBoard(folder, resumed_at + 1)])
