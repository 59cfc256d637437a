"""Presets: the typed schema of a run, loading YAML by name or path, and command-line overrides.

A preset is data. It is parsed with ``yaml.safe_load`` into :class:`RunConfig`; each section is
handed to what it configures (``env`` to the env builder, ``algo`` to the SB3 class, ``relabel``
to the replay buffer, ``train`` to the training loop). Unknown keys are rejected with the closest
valid name, so a typo never silently falls back to a default.
"""

from __future__ import annotations

import copy
import difflib
import os
from collections.abc import Iterable, Sequence
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from mtgc_cli import safe_yaml
from mtgc_cli.errors import UsageError, excerpt
from mtgc_cli.finite import non_finite_message
from mtgc_cli.names import VALID as VALID_NAME
from mtgc_cli.names import name_problem
from mtgc_cli.validation_lines import valid_for

GOAL_STRATEGIES = ("none", "final", "future", "episode")
TASK_RELABELS = ("none", "random", "best")
SAMPLINGS = ("stratified", "uniform")
# A preset is a page of YAML; a file far larger is not one (and is not read into memory whole).
MAX_PRESET_BYTES = 1_000_000


class _Section(BaseModel):
    # allow_inf_nan: "inf" as a string is otherwise read as a float (RunConfig refuses the floats).
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


class TaskConfig(_Section):
    """One task of a multi-task env.

    Either ``id`` (a separate gymnasium env: tasks with their own dynamics) or ``name`` (a task of
    the env named by ``env.id``, which shares one scene and its dynamics across tasks).
    """

    name: str | None = None
    id: str | None = None
    kwargs: dict[str, Any] = Field(default_factory=dict)
    # What the task asks, in words: embedded for env.task_encoding: language. Kept with the task,
    # so that a preset whose tasks are overridden (--set env.tasks=...) keeps descriptions and
    # tasks together; env.task_descriptions overrides it by task name.
    description: str | None = None

    @model_validator(mode="after")
    def _name_or_id(self) -> TaskConfig:
        if self.name is None and self.id is None:
            raise ValueError("a task needs a 'name' (a task of env.id) or an 'id' (an env of its own)")
        return self

    @property
    def label(self) -> str:
        return self.name or str(self.id)


class EnvConfig(_Section):
    # The env, or for named tasks the env that holds them; omitted when every task has its own id.
    id: str | None = None
    kwargs: dict[str, Any] = Field(default_factory=dict)
    # None keeps the env's own reward; sparse is -(d > eps), dense is -d.
    reward_type: Literal["sparse", "dense"] | None = None
    n_envs: int = Field(1, ge=1)
    vec_env: Literal["dummy", "subproc"] = "dummy"
    normalize: bool = False
    normalize_clip: float = Field(5.0, gt=0)
    # The info key that reports success; None detects "is_success" (Fetch, SB3) or "success"
    # (Meta-World, gymnasium-robotics mazes) at set-up, and an env with neither is refused.
    success_key: str | None = None
    # "end": success is the last step's (the Fetch convention); "any": an episode succeeds if any
    # step reported success (Meta-World's own evaluation, which terminates on success).
    success_at: Literal["end", "any"] = "end"
    tasks: list[TaskConfig] | None = None
    task_sampling: Literal["uniform", "per-slot"] = "uniform"
    # What tells the policy the task (z_i under the observation's "task" key): a one-hot, or the
    # embedding of a sentence describing the task (mtgc_cli/envs/task_encoding.py).
    task_encoding: Literal["onehot", "language"] = "onehot"
    # Task label -> description, for the language encoding; named tasks of mtgc's envs have their
    # own (PointTasks, FetchTasks), which these replace.
    task_descriptions: dict[str, str] = Field(default_factory=dict)
    # Each policy action is applied for this many env steps (a decision every k steps): fewer,
    # longer decisions shorten the horizon that credit must travel, and fewer gradient steps
    # per env step at one update per decision. Episode length in env steps is unchanged.
    action_repeat: int = Field(1, ge=1)
    # Append the fraction of the episode left to the observation (sb3-contrib's TimeFeatureWrapper).
    time_feature: bool = False

    @field_validator("tasks", mode="before")
    @classmethod
    def _task_shorthand(cls, value: Any) -> Any:
        # "tasks: [reach, push]" is shorthand for named tasks of env.id.
        if isinstance(value, list):
            return [{"name": item} if isinstance(item, str) else item for item in value]
        return value

    @model_validator(mode="after")
    def _tasks_consistent(self) -> EnvConfig:
        # Counted first: the checks below read tasks[0].
        if self.tasks is not None and len(self.tasks) < 2:
            raise ValueError(
                f"env.tasks needs at least two tasks, got {self.task_labels}; valid: two or more task "
                "names of env.id (e.g. [east, north]), or envs of their own ([{id: FetchPush-v4}, ...])"
            )
        if (self.tasks is None or self.tasks[0].id is None) and self.id is None:
            raise ValueError("env.id is required (unless every entry of env.tasks has its own id)")
        if self.tasks is not None:
            kinds = {task.id is not None for task in self.tasks}
            if len(kinds) > 1:
                raise ValueError("env.tasks must all be env ids or all be task names, not a mix")
            if any(task.kwargs and task.id is None for task in self.tasks):
                raise ValueError("env.tasks: per-task kwargs apply to tasks given by id; use env.kwargs")
            labels = [task.label for task in self.tasks]
            if len(set(labels)) != len(labels):
                raise ValueError(f"env.tasks has duplicate names: {labels}")
        if self.task_encoding != "onehot" and self.tasks is None:
            raise ValueError(
                f"env.task_encoding '{self.task_encoding}' needs a multi-task env (env.tasks); "
                "valid here: onehot (the default; a single-task env has no task id)"
            )
        unknown = [name for name in self.task_descriptions if name not in self.task_labels]
        if unknown:
            valid = self.task_labels
            raise ValueError(
                f"env.task_descriptions has no task '{unknown[0]}'{_suggest(unknown[0], valid)}; "
                f"valid: {', '.join(valid) or 'none (a single-task env)'}"
            )
        for name, text in self.task_descriptions.items():
            if not text.strip():
                raise ValueError(
                    f"env.task_descriptions: the description of task '{name}' is empty; "
                    "valid: a non-empty sentence"
                )
        return self

    @property
    def is_multitask(self) -> bool:
        return self.tasks is not None

    @property
    def task_labels(self) -> list[str]:
        return [task.label for task in self.tasks or []]

    @property
    def label(self) -> str:
        """What the env is, for tables: its id, or the task envs' ids."""
        if self.id is not None:
            return self.id
        return " + ".join(str(task.id) for task in self.tasks or [])


class AlgoConfig(BaseModel):
    """The algorithm and its stable-baselines3 keyword arguments.

    Every key other than ``name``, ``noise_std`` and ``precision`` is passed to the SB3 class
    unchanged; they are checked against the class's signature when the preset loads (see ``algos.py``).
    """

    model_config = ConfigDict(extra="allow", validate_assignment=True, allow_inf_nan=False)

    # bc: behaviour cloning from a demonstration dataset (mtgc_cli/imitation/bc.py).
    name: Literal["sac", "td3", "ddpg", "tqc", "dqn", "bc"]
    # Gaussian action noise for TD3/DDPG (a numpy object can't be written in YAML).
    noise_std: float | None = Field(None, ge=0)
    # The arithmetic of gradient steps: bfloat16 runs them under torch's CPU autocast (matrix
    # products in bfloat16 on CPUs with AMX / AVX-512 BF16, weights and optimiser kept in
    # float32), which took 0.60-0.78x the float32 time per step here. Collection, eval and saved
    # models stay float32, so plain SB3 loads them.
    precision: Literal["float32", "bfloat16"] = "float32"
    # sparse: the target networks' values clipped to [-1/(1-gamma), 0], the range of returns of a
    # reward in [-1, 0] per decision (baselines' clip_return; mtgc_cli/bounded_target.py).
    target_bound: Literal["none", "sparse"] = "none"

    @property
    def kwargs(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class RelabelConfig(_Section):
    strategy: Literal["none", "final", "future", "episode"] = "none"
    n_sampled_goal: int = Field(4, ge=1)
    # Cross-task relabeling (multi-task envs with shared dynamics only).
    task: Literal["none", "random", "best"] = "none"
    task_fraction: float = Field(0.5, ge=0.0, le=1.0)
    sampling: Literal["stratified", "uniform"] = "stratified"

    @property
    def label(self) -> str:
        """The compare-grid name of this choice, e.g. ``future+best-task``."""
        parts = [] if self.strategy == "none" and self.task != "none" else [self.strategy]
        if self.task != "none":
            parts.append(f"{self.task}-task")
        return "+".join(parts)


class TrainConfig(_Section):
    timesteps: int = Field(gt=0)
    # Seeds feed numpy's SeedSequence, which takes non-negative integers only.
    seed: int = Field(0, ge=0)
    eval_every: int = Field(gt=0)
    eval_episodes: int = Field(gt=0)
    checkpoint_every: int | None = Field(None, gt=0)
    # Older checkpoints are deleted beyond this many (None keeps all).
    keep_checkpoints: int | None = Field(3, gt=0)
    # Videos (RUN/videos/step_<N>/): at the first eval at or after every video_every env steps,
    # the first video_episodes eval episodes of each task are recorded (None: no videos).
    video_every: int | None = Field(None, gt=0)
    video_episodes: int = Field(1, gt=0)


class RunConfig(_Section):
    name: str
    description: str = ""
    env: EnvConfig
    algo: AlgoConfig
    relabel: RelabelConfig = Field(default_factory=RelabelConfig)
    train: TrainConfig

    @model_validator(mode="before")
    @classmethod
    def _every_number_finite(cls, data: Any) -> Any:
        # Every section, the SB3 kwargs and env kwargs included: an inf learning rate trains NaNs.
        problem = non_finite_message(data)
        if problem is not None:
            raise ValueError(problem)
        return data

    @field_validator("name")
    @classmethod
    def _name_is_one_path_component(cls, value: str) -> str:
        # The run folder is runs/<name>/: a name like ../x or /abs would write outside --runs-dir.
        problem = name_problem(value)
        if problem is not None:
            raise ValueError(f"{problem}; {VALID_NAME}")
        return value

    @model_validator(mode="after")
    def _relabel_fits_env(self) -> RunConfig:
        if self.relabel.task != "none" and not self.env.is_multitask:
            raise ValueError("relabel.task needs a multi-task env (env.tasks)")
        return self

    @model_validator(mode="after")
    def _dense_reward_fits_relabel(self) -> RunConfig:
        # Under an action repeat a dense reward is summed over the decision's env steps; relabeling
        # recomputes a reward from the stored (last) state only, so the two would disagree.
        env = self.env
        relabels = self.relabel.strategy != "none" or self.relabel.task != "none"
        if env.reward_type == "dense" and env.action_repeat > 1 and relabels:
            raise ValueError(
                f"env.reward_type dense with env.action_repeat {env.action_repeat} and relabeling "
                f"({self.relabel.label}): relabeling recomputes only a decision's last env step's "
                "reward, the env gives the sum over its env steps; valid: reward_type sparse, "
                "action_repeat 1, or relabel.strategy none and relabel.task none"
            )
        return self

    @model_validator(mode="after")
    def _n_envs_fits_budget(self) -> RunConfig:
        # One step of every env is n_envs env steps (times the action repeat): beyond the budget
        # the first step overshoots it, and beyond DQN's target update interval SB3 warns and
        # updates the target network at every step.
        n_envs, per_step = self.env.n_envs, self.env.n_envs * self.env.action_repeat
        if per_step > self.train.timesteps:
            raise ValueError(
                f"env.n_envs {n_envs} takes {per_step:,} env steps at a time, more than "
                f"train.timesteps {self.train.timesteps:,}; valid: n_envs <= "
                f"{max(1, self.train.timesteps // self.env.action_repeat):,} for this budget"
            )
        interval = self.algo.kwargs.get("target_update_interval", 10_000)  # SB3's default
        if self.algo.name == "dqn" and isinstance(interval, int) and 1 <= interval < per_step:
            raise ValueError(
                f"env.n_envs {n_envs} takes {per_step:,} env steps at a time, more than "
                f"algo.target_update_interval {interval:,}; valid: n_envs <= "
                f"{max(1, interval // self.env.action_repeat):,}, or a longer interval"
            )
        return self

    @model_validator(mode="after")
    def _bc_fits_env(self) -> RunConfig:
        # Behaviour cloning steps no env while it trains: its steps are gradient steps, its input
        # is standardised with the dataset's statistics, and its actions are the recorded ones.
        if self.algo.name != "bc":
            return self
        rules = {
            "env.n_envs": (self.env.n_envs, 1),
            "env.normalize": (self.env.normalize, False),
            "env.action_repeat": (self.env.action_repeat, 1),
            "relabel.task": (self.relabel.task, "none"),
        }
        for key, (value, valid) in rules.items():
            if value != valid:
                raise ValueError(f"{key} is {value!r} with algo.name bc; valid: {valid!r}")
        return self

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json", exclude_none=False), sort_keys=False)


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


def _suggest(word: str, valid: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(valid), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""
