"""Presets: finding one by name or path, ``--set`` and ``--strategy`` overrides, validation.

The schema is :mod:`mtgc_cli.config` (re-exported here). Every bad input raises
:class:`~mtgc_cli.errors.UsageError` naming the closest valid choice.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Iterable, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from mtgc_cli import safe_yaml
from mtgc_cli.config import (
    GOAL_STRATEGIES,
    SAMPLINGS,
    TASK_RELABELS,
    AlgoConfig,
    EnvConfig,
    RelabelConfig,
    RunConfig,
    TaskConfig,
    TrainConfig,
)
from mtgc_cli.errors import UsageError, excerpt
from mtgc_cli.errors import suggest as _suggest
from mtgc_cli.validation_lines import valid_for

__all__ = [
    "GOAL_STRATEGIES",
    "SAMPLINGS",
    "TASK_RELABELS",
    "AlgoConfig",
    "EnvConfig",
    "RelabelConfig",
    "RunConfig",
    "TaskConfig",
    "TrainConfig",
    "apply_override",
    "load",
    "parse_assignment",
    "preset_dirs",
    "read_yaml",
    "resolve_preset",
    "shipped_presets",
    "strategy_overrides",
    "validate",
]


# ---------------------------------------------------------------------------------------------
# Finding presets


def preset_dirs() -> list[Path]:
    """Where shipped presets live: inside an installed wheel, or the repository's ``presets/``."""
    dirs: list[Path] = []
    packaged = resources.files("mtgc_cli") / "_presets"
    if packaged.is_dir():
        dirs.append(Path(str(packaged)))
    source = Path(__file__).resolve().parent.parent / "presets"
    if source.is_dir():
        dirs.append(source)
    return dirs


def shipped_presets() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for directory in preset_dirs():
        for path in sorted(directory.glob("*.yaml")):
            found.setdefault(path.stem, path)
    return found


def resolve_preset(name_or_path: str) -> Path:
    """A preset name (``fetch-push``) or a path to a YAML file."""
    looks_like_path = name_or_path.endswith((".yaml", ".yml")) or os.sep in name_or_path
    if looks_like_path:
        path = Path(name_or_path)
        if not path.is_file():
            raise UsageError(f"preset file '{name_or_path}' does not exist")
        return path
    presets = shipped_presets()
    if name_or_path in presets:
        return presets[name_or_path]
    raise UsageError(
        f"unknown preset '{name_or_path}'{_suggest(name_or_path, presets)}; valid: {', '.join(presets)}"
    )


# A preset is a page of YAML; a file far larger is not one (and is not read into memory whole).
MAX_PRESET_BYTES = 1_000_000


def read_yaml(path: Path) -> dict[str, Any]:
    try:
        if path.stat().st_size > MAX_PRESET_BYTES:
            raise UsageError(f"{path}: a preset is at most {MAX_PRESET_BYTES:,} bytes; this file is larger")
        data = safe_yaml.safe_load(path.read_text())
    except RecursionError as exc:
        raise UsageError(f"{path}: malformed YAML: nested too deeply") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise UsageError(f"{path}: malformed YAML{where}: {problem}") from exc
    except OSError as exc:
        raise UsageError(f"{path}: cannot read preset: {exc.strerror}") from exc
    if not isinstance(data, dict):
        raise UsageError(f"{path}: a preset must be a YAML mapping with sections env, algo, relabel, train")
    return data


# ---------------------------------------------------------------------------------------------
# Overrides


def parse_assignment(text: str) -> tuple[list[str], Any]:
    """``algo.batch_size=512`` -> (["algo", "batch_size"], 512); the value is read as YAML."""
    if "=" not in text:
        raise UsageError(f"--set '{text}': expected KEY=VALUE, e.g. --set algo.batch_size=512")
    key, raw = text.split("=", 1)
    path = [part for part in key.strip().split(".") if part]
    if not path:
        raise UsageError(f"--set '{text}': empty key")
    try:
        value = safe_yaml.safe_load(raw) if raw.strip() else None
    except (yaml.YAMLError, RecursionError) as exc:
        problem = getattr(exc, "problem", None) or "nested too deeply"
        raise UsageError(f"--set {excerpt(text)}: the value is not valid YAML ({problem})") from exc
    return path, value


def apply_override(data: dict[str, Any], path: Sequence[str], value: Any) -> None:
    node: Any = data
    dotted = ".".join(path)
    for i, part in enumerate(path[:-1]):
        if not isinstance(node, dict):
            parent = ".".join(path[:i])
            raise UsageError(f"--set {dotted}: '{parent}' is not a section")
        node = node.setdefault(part, {})
    if not isinstance(node, dict):
        parent = ".".join(path[:-1])
        raise UsageError(f"--set {dotted}: '{parent}' is not a section")
    node[path[-1]] = value


def strategy_overrides(spec: str) -> dict[str, str]:
    """A relabel choice as the CLI writes it: ``future``, ``random-task``, ``future+best-task``.

    A ``stratified`` or ``uniform`` part also sets ``relabel.sampling`` (``future+uniform``), so
    that ``compare --strategies stratified,uniform`` compares minibatch sampling.
    """
    overrides = {"strategy": "none", "task": "none"}
    for part in (p.strip() for p in spec.split("+")):
        if part in GOAL_STRATEGIES:
            overrides["strategy"] = part
        elif part.endswith("-task") and part[: -len("-task")] in TASK_RELABELS[1:]:
            overrides["task"] = part[: -len("-task")]
        elif part in SAMPLINGS:
            overrides["sampling"] = part
        else:
            valid = [
                *GOAL_STRATEGIES,
                "random-task",
                "best-task",
                "future+random-task",
                "future+best-task",
                *SAMPLINGS,
                "future+uniform",
            ]
            raise UsageError(f"unknown strategy '{spec}'{_suggest(part, valid)}; valid: {', '.join(valid)}")
    return overrides


def load(
    name_or_path: str,
    *,
    timesteps: int | None = None,
    seed: int | None = None,
    strategy: str | None = None,
    sets: Iterable[str] = (),
) -> RunConfig:
    """Read a preset, apply overrides, validate. Raises :class:`UsageError` on any bad input."""
    path = resolve_preset(name_or_path)
    data = read_yaml(path)
    data.setdefault("name", path.stem)
    options = {"timesteps": timesteps, "seed": seed, "strategy": strategy, "sets": list(sets)}
    preset = copy.deepcopy(data)
    data = _apply_cli_overrides(data, **options)  # type: ignore[arg-type]
    try:
        return validate(data, source=str(path))
    except UsageError as exc:
        # A bad value given on the command line is named as given there, not as the preset's.
        failing = _failing_option(preset, **options)  # type: ignore[arg-type]
        if failing is None:
            raise
        option, problem = failing
        raise UsageError(f"{option}: {problem}") from exc


def _failing_option(
    preset: dict[str, Any], *, timesteps: int | None, seed: int | None, strategy: str | None, sets: list[str]
) -> tuple[str, str] | None:
    """The first command-line option (``--set KEY=VALUE``, ``--seed N``) after which the preset
    no longer validates, and the problem it brings; None if the preset alone does not (only on
    the error path)."""
    given: list[tuple[str, dict[str, Any]]] = [
        (f"--set {text if len(text) <= 60 else text[:57] + '...'}", {"sets": [text]}) for text in sets
    ]
    given += [(f"--timesteps {timesteps}", {"timesteps": timesteps})] if timesteps is not None else []
    given += [(f"--seed {seed}", {"seed": seed})] if seed is not None else []
    given += [(f"--strategy {strategy}", {"strategy": strategy})] if strategy is not None else []
    data = copy.deepcopy(preset)
    for label, option in [("", {}), *given]:
        data = _apply_cli_overrides(
            data, **{"timesteps": None, "seed": None, "strategy": None, "sets": [], **option}
        )
        try:
            validate(copy.deepcopy(data), source="")
        except UsageError as exc:
            return (label, str(exc).removeprefix(": ")) if label else None
    return None


def _apply_cli_overrides(
    data: dict[str, Any],
    *,
    timesteps: int | None,
    seed: int | None,
    strategy: str | None,
    sets: Iterable[str],
) -> dict[str, Any]:
    for text in sets:
        path, value = parse_assignment(text)
        apply_override(data, path, value)
    if timesteps is not None:
        if timesteps <= 0:
            raise UsageError(f"--timesteps must be a positive number of env steps, got {timesteps}")
        apply_override(data, ["train", "timesteps"], timesteps)
    if seed is not None:
        apply_override(data, ["train", "seed"], seed)
    if strategy is not None:
        for key, value in strategy_overrides(strategy).items():
            apply_override(data, ["relabel", key], value)
    return data


def validate(data: dict[str, Any], source: str = "preset") -> RunConfig:
    try:
        config = RunConfig.model_validate(data)
    except ValidationError as exc:
        raise UsageError(f"{source}: {_describe(exc)}") from exc
    # The algorithm's kwargs are checked against the SB3 class itself.
    from mtgc_cli.algos import check_algo_kwargs

    check_algo_kwargs(config.algo, source)
    return config


def _describe(exc: ValidationError) -> str:
    """The first validation problem as one line, with the closest valid key for a typo."""
    # A typo gives both an unknown and a missing key; the unknown one explains the problem.
    error = sorted(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")[0]
    loc = [str(part) for part in error["loc"]]
    where = ".".join(loc) or "preset"
    if error["type"] == "extra_forbidden":
        model = _model_at(loc[:-1])
        valid = list(model.model_fields) if model else []
        return f"unknown key '{where}'{_suggest(loc[-1], valid)}; valid keys: {', '.join(valid)}"
    if error["type"] == "missing":
        return f"missing key '{where}'"
    if error["type"] == "literal_error":
        expected = error.get("ctx", {}).get("expected", "")
        return f"'{where}' is {excerpt(error['input'])}; valid: {expected}"
    if error["type"] == "value_error" and not isinstance(error.get("input"), dict):
        # A field's own check: its message says what is wrong with the value and what is valid.
        return f"{where} {str(error['msg']).removeprefix('Value error, ')}"
    if error["type"] == "value_error" and isinstance(error.get("input"), dict):
        # A whole-section check (a model validator): its message names the keys; the section's
        # every value would only bury it.
        message = str(error["msg"]).removeprefix("Value error, ")
        return message if not loc or message.startswith(where) else f"'{where}': {message}"
    model = _model_at(loc[:-1]) if loc else None
    field = model.model_fields.get(loc[-1]) if model is not None else None
    valid = valid_for(error, field.annotation if field is not None else None)
    if valid is not None:
        return f"{where} is {excerpt(error.get('input'))}; valid: {valid}"
    return f"'{where}': {error['msg']} (got {excerpt(error.get('input'))})"


def _model_at(loc: Sequence[str]) -> type[BaseModel] | None:
    model: type[BaseModel] = RunConfig
    for part in loc:
        if part.isdigit():
            continue
        field = model.model_fields.get(part)
        if field is None:
            return None
        annotation = field.annotation
        candidates = [annotation, *getattr(annotation, "__args__", ())]
        for candidate in candidates:
            inner = [candidate, *getattr(candidate, "__args__", ())]
            found = next((c for c in inner if isinstance(c, type) and issubclass(c, BaseModel)), None)
            if found:
                model = found
                break
        else:
            return None
    return model
