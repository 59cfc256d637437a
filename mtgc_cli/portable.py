"""Model files that plain SB3 / sb3-contrib load without mtgc installed.

SB3 pickles ``policy_kwargs`` and ``replay_buffer_class`` into ``model.zip``. mtgc trains with
its own classes there (the input-clipping feature extractor of ``features.py``, the HER and
multi-task buffers of ``relabel/``), and a zip that names them fails to load where mtgc is not
installed (``ModuleNotFoundError: mtgc_cli``). So a model is written with SB3's own classes in
those places: the clipping extractors have no weights, so SB3's ``CombinedExtractor`` /
``FlattenExtractor`` read the same parameters (the clip at ``env.normalize_clip`` is what
mtgc applies around it, like the normalisation statistics), and the replay buffer class is left
to SB3's default (the buffer itself is a separate file of the checkpoint). mtgc's own loads put
its classes back with ``custom_objects`` (:func:`mtgc_objects`).
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.save_util import json_to_data
from stable_baselines3.common.torch_layers import CombinedExtractor, FlattenExtractor

from mtgc_cli.features import ClippedCombinedExtractor, ClippedFlattenExtractor

_SB3_EXTRACTOR: dict[type, type] = {
    ClippedCombinedExtractor: CombinedExtractor,
    ClippedFlattenExtractor: FlattenExtractor,
}
_MTGC_EXTRACTOR = {sb3: ours for ours, sb3 in _SB3_EXTRACTOR.items()}
_SAVED = ("policy_kwargs", "replay_buffer_class", "replay_buffer_kwargs")


def _is_mtgc(cls: Any) -> bool:
    return isinstance(cls, type) and cls.__module__.split(".")[0] == "mtgc_cli"


def portable_policy_kwargs(policy_kwargs: dict[str, Any]) -> dict[str, Any]:
    """``policy_kwargs`` with SB3's extractor in place of mtgc's clipping one (same weights)."""
    kwargs = dict(policy_kwargs)
    extractor = kwargs.get("features_extractor_class")
    if extractor in _SB3_EXTRACTOR:
        kwargs["features_extractor_class"] = _SB3_EXTRACTOR[extractor]
        rest = {k: v for k, v in kwargs.get("features_extractor_kwargs", {}).items() if k != "clip"}
        kwargs.pop("features_extractor_kwargs", None)
        if rest:
            kwargs["features_extractor_kwargs"] = rest
    return kwargs


@contextmanager
def _portable(model: BaseAlgorithm) -> Iterator[None]:
    before = {name: getattr(model, name) for name in _SAVED if hasattr(model, name)}
    try:
        if isinstance(before.get("policy_kwargs"), dict):
            model.policy_kwargs = portable_policy_kwargs(before["policy_kwargs"])
        if _is_mtgc(before.get("replay_buffer_class")):
            model.replay_buffer_class = None  # type: ignore[attr-defined]
            model.replay_buffer_kwargs = {}  # type: ignore[attr-defined]
        yield
    finally:
        for name, value in before.items():
            setattr(model, name, value)


def save_portable(model: BaseAlgorithm) -> Callable[[IO[bytes]], None]:
    """A writer of ``model.zip`` (for the atomic-write helpers) that names only SB3's classes."""

    def write(file: IO[bytes]) -> None:
        with _portable(model):
            model.save(file)  # type: ignore[arg-type]

    return write


def mtgc_objects(template: BaseAlgorithm) -> dict[str, Any]:
    """``custom_objects`` that load a portable zip with the classes ``template`` was built with."""
    return {name: getattr(template, name) for name in _SAVED if hasattr(template, name)}


def clipped_policy_kwargs(path: Path, clip: float | None) -> dict[str, Any]:
    """``custom_objects`` for loading ``path`` to act as mtgc trained it: the saved policy
    kwargs with mtgc's clipping extractor back (when ``clip`` is set: normalised observations)."""
    # Only the zip's "data" entry: the parameters are read once, by the load this prepares.
    with zipfile.ZipFile(path) as archive:
        data = json_to_data(
            archive.read("data").decode(),
            custom_objects={"replay_buffer_class": None, "replay_buffer_kwargs": {}},
        )
    kwargs = dict(data.get("policy_kwargs") or {})
    extractor = kwargs.get("features_extractor_class")
    if clip is not None and extractor in _MTGC_EXTRACTOR:
        kwargs["features_extractor_class"] = _MTGC_EXTRACTOR[extractor]
        kwargs["features_extractor_kwargs"] = {**kwargs.get("features_extractor_kwargs", {}), "clip": clip}
    return {"policy_kwargs": kwargs, "replay_buffer_class": None, "replay_buffer_kwargs": {}}
