"""Training: set a run up, train it with its callbacks, stop it whole, resume it.

``setup`` (prepare envs, buffer, model), ``callbacks`` and ``evals`` (what happens after each
env step), ``best`` (the best-model choice), ``logger`` (TensorBoard), and
``loop`` (train, and :func:`start_or_resume`, the one way in for the CLI and the backends).
"""

from mtgc_cli.stop import StopRequest
from mtgc_cli.training.best import BestModel, recheck_factor, save_model
from mtgc_cli.training.loop import resume_config, run, start_or_resume, train
from mtgc_cli.training.setup import Setup, prepare

__all__ = [
    "BestModel",
    "Setup",
    "StopRequest",
    "prepare",
    "recheck_factor",
    "resume_config",
    "run",
    "save_model",
    "start_or_resume",
    "train",
]
