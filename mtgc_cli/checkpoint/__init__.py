"""Whole checkpoints: everything a stopped run needs to go on as if it had not stopped.

A checkpoint is a folder ``checkpoints/step_<N>/`` of the run folder, N the env steps done::

    model.zip              the model: SB3's ``save`` (weights, optimisers, counters, schedules)
    vecnormalize.pkl       its normalisation statistics (when the env normalises observations)
    replay_buffer.pkl      the replay buffer, SB3's ``save_replay_buffer`` pickle (mtgc's per-task
                           and relabeling state included), without the rows it has never written
    state.pkl              mtgc's training state (env steps, eval and checkpoint schedule,
                           best-model record, training-success window, wall clock) and the random
                           states: python, numpy, torch, each env's generator, the action space's
    best_model.zip, best_vecnormalize.pkl    the best model as of step N (hard links)
    run_config.yaml        the config the run had at step N
    manifest.json          written last: format, step, every file's size, what the write cost
                           (written_bytes, seconds)

``model.zip`` (with ``vecnormalize.pkl`` beside it) is an ordinary model file, so ``mtgc eval``
reads a checkpoint like any other model.

A checkpoint is whole or absent. It is written under a hidden temporary name, every file and
the folder are fsynced, the manifest goes last, and one ``rename`` publishes it; a crash or a
full disk before that leaves the hidden folder, which is never read and is removed by the next
checkpoint. A file damaged later (a truncated copy) no longer matches the size its manifest
records, and resuming takes the newest checkpoint that does. Older checkpoints are removed only
once the new one is whole. The newest ``RESUMABLE_KEPT`` keep their replay buffer; older ones
(up to ``train.keep_checkpoints``) are trimmed to what ``mtgc eval`` needs, because a replay
buffer is the bulk of a checkpoint (hundreds of MB for Fetch at a full buffer).

Modules: ``atomic`` (files that are whole or absent), ``buffers`` (compact replay-buffer
pickles), ``rng`` (random states), ``store`` (write, prune, scan), ``resume`` (plan and restore).
"""

from mtgc_cli.checkpoint.atomic import fsync_path, link_atomic, write_atomic, write_file
from mtgc_cli.checkpoint.buffers import _expand, save_buffer
from mtgc_cli.checkpoint.resume import (
    Restored,
    ResumePlan,
    check_run_folder,
    config_differences,
    plan_resume,
    restore,
)
from mtgc_cli.checkpoint.rng import random_states, set_random_states
from mtgc_cli.checkpoint.store import (
    BUFFER,
    CONFIG,
    FORMAT,
    MANIFEST,
    MODEL,
    RESUMABLE_KEPT,
    STATE,
    STATS,
    Checkpoint,
    Damaged,
    folder_name,
    inspect,
    newest,
    prune,
    scan,
    write,
)

__all__ = [
    "BUFFER",
    "CONFIG",
    "FORMAT",
    "MANIFEST",
    "MODEL",
    "RESUMABLE_KEPT",
    "STATE",
    "STATS",
    "Checkpoint",
    "Damaged",
    "Restored",
    "ResumePlan",
    "_expand",  # replay buffers pickled by earlier versions name mtgc_cli.checkpoint._expand
    "check_run_folder",
    "config_differences",
    "folder_name",
    "fsync_path",
    "inspect",
    "link_atomic",
    "newest",
    "plan_resume",
    "prune",
    "random_states",
    "restore",
    "save_buffer",
    "scan",
    "set_random_states",
    "write",
    "write_atomic",
    "write_file",
]
