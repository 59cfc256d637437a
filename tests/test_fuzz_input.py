"""Generated bad input: presets and ``--set`` values drawn from the schema, each checked for the
contract of mtgc's bad-input handling.

For every case: exit 0 or 2; on exit 2 one stderr line under 300 characters; never a traceback;
nothing written outside the scratch folder. The corpus is fixed (a seeded generator, no
hypothesis), so a failure names a case that fails again. Cases run in-process through
``mtgc presets show`` (the preset check every command runs) and, for those it refuses,
``mtgc train`` too, which must refuse them before it builds or writes anything.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from mtgc_cli.algos import POLICY_RULES, RULES
from mtgc_cli.cli.app import app
from mtgc_cli.presets import RunConfig

PRESETS = Path(__file__).resolve().parent.parent / "presets"
N_CASES = 120

# Values of every kind a setting can be wrong in.
WRONG_TYPES: list[Any] = ["abc", [1, 2], {"a": 1}, True, None, "", "1e-3", [], {}, "[", "{a: ", "- x"]
OUT_OF_RANGE: list[Any] = [-1, 0, -0.5, 1.5, 2, 10**12, 2**70, -(10**9), 1e-300, 255, 3.0]
NON_FINITE = [".inf", "-.inf", ".nan", "1e999", "inf", "-inf", "nan", ".NaN", "-1e999"]
ODD_NAMES = [
    "../../escaped", "/abs/escaped", "a/b", "..", ".", "x" * 300, "bad name", "tab\tname",
    "naïve", "semi;colon", "$(echo hi)", "~user", "C:\\windows", "-leading-dash", "ok-name_1.2",
]  # fmt: skip
UNKNOWN_KEYS = ["algo.foo", "env.nope", "train.seedz", "zzz", "relabel.stratgy", "algo.policy_kwargs.foo.bar",
                "env.kwargs.nope", "train.timesteps.x", "env.tasks.0.name", "name.x"]  # fmt: skip


def schema_keys() -> list[str]:
    """Every dotted key of the schema: RunConfig's fields, SB3's ruled arguments, policy kwargs."""
    keys: list[str] = []

    def walk(model: type, prefix: str) -> None:
        for name, field in model.model_fields.items():
            annotation = field.annotation
            inner = [annotation, *getattr(annotation, "__args__", ())]
            section = next((t for t in inner if isinstance(t, type) and hasattr(t, "model_fields")), None)
            if section is not None and name not in ("tasks",):
                walk(section, f"{prefix}{name}.")
            else:
                keys.append(f"{prefix}{name}")

    walk(RunConfig, "")
    keys += [f"algo.{key}" for key in RULES]
    keys += [f"algo.policy_kwargs.{key}" for key in POLICY_RULES]
    keys += ["env.kwargs.n_bits", "env.kwargs.continuous", "algo.noise_std", "algo.train_freq"]
    return sorted(set(keys))


def yaml_text(value: Any) -> str:
    """A value as it is typed after ``--set KEY=``: YAML, or the raw text for strings of YAML."""
    if isinstance(value, str):
        return value
    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()


def cases() -> list[tuple[str, str, list[str], dict[str, Any] | None]]:
    """``(id, preset, --set values, changes to write into a preset file or None)``."""
    rng = random.Random(17)
    keys = schema_keys()
    pools = [WRONG_TYPES, OUT_OF_RANGE, NON_FINITE, ODD_NAMES]
    made = []
    for i in range(N_CASES):
        preset = rng.choice(["bit-flip", "point-tasks", "point-tasks-bc"])
        kind = i % 4
        if kind == 0:  # one --set of a schema key to a bad value
            key = rng.choice(keys)
            sets = [f"{key}={yaml_text(rng.choice(rng.choice(pools)))}"]
            made.append((f"{i}-set-{key}", preset, sets, None))
        elif kind == 1:  # an unknown key, or an odd name
            if rng.random() < 0.5:
                sets = [f"{rng.choice(UNKNOWN_KEYS)}={yaml_text(rng.choice(OUT_OF_RANGE))}"]
            else:
                sets = [f"name={rng.choice(ODD_NAMES)}"]
            made.append((f"{i}-key-or-name", preset, sets, None))
        elif kind == 2:  # a preset file with one to three values replaced
            changes = {rng.choice(keys): rng.choice(rng.choice(pools)) for _ in range(rng.randint(1, 3))}
            made.append((f"{i}-file", preset, [], changes))
        else:  # several --set values at once, good and bad mixed
            good = ["train.timesteps=100", "algo.learning_rate=0.001", "train.eval_episodes=2"]
            bad = [f"{rng.choice(keys)}={yaml_text(rng.choice(rng.choice(pools)))}" for _ in range(2)]
            sets = rng.sample(good + bad, k=len(good) + len(bad))
            made.append((f"{i}-mixed", preset, sets, None))
    return made


def write_preset(folder: Path, preset: str, changes: dict[str, Any]) -> Path:
    data = yaml.safe_load((PRESETS / f"{preset}.yaml").read_text())
    for dotted, value in changes.items():
        node = data
        *parents, last = dotted.split(".")
        for part in parents:
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node = node[part]
        node[last] = value
    path = folder / "fuzzed.yaml"
    # Values such as "x"*300 or tabs are written as YAML strings; non-finite strings stay strings
    # and are read back as YAML floats where they spell one (.inf).
    path.write_text(
        yaml.safe_dump(data, allow_unicode=True).replace("'.inf'", ".inf").replace("'.nan'", ".nan")
    )
    return path


def tree(root: Path, skip: Path) -> set[str]:
    found = set()
    for top, dirs, files in os.walk(root):
        if Path(top) == skip:
            dirs[:] = []
            continue
        found.update(os.path.join(top, name) for name in [*dirs, *files])
    return found


def check(result: Any, where: str) -> None:
    assert result.exit_code in (0, 2), f"{where}: exit {result.exit_code}\n{result.output}"
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"{where}: {type(result.exception).__name__}: {result.exception}"
    )
    assert "Traceback" not in result.output, f"{where}:\n{result.output}"
    if result.exit_code == 2:
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, f"{where}: {len(lines)} stderr lines\n{result.stderr}"
        assert len(lines[0]) < 300, f"{where}: {len(lines[0])} characters: {lines[0][:400]}"
        assert lines[0].startswith("mtgc: error: "), f"{where}: {lines[0]}"


def test_generated_bad_input_is_one_short_line_or_accepted(tmp_path: Path, monkeypatch) -> None:
    corpus = cases()
    assert len(corpus) >= 50
    scratch = tmp_path / "a" / "b" / "scratch"
    scratch.mkdir(parents=True)
    monkeypatch.chdir(scratch)
    runner = CliRunner()
    outside_before = tree(tmp_path, scratch)
    project_before = tree(PRESETS, PRESETS / "none")
    refused = 0
    for case_id, preset, sets, changes in corpus:
        source = str(write_preset(scratch, preset, changes)) if changes is not None else preset
        set_args = [arg for text in sets for arg in ("--set", text)]
        shown = runner.invoke(app, ["presets", "show", source, *set_args])
        check(shown, f"{case_id}: presets show {source} {sets} {changes}")
        if shown.exit_code == 2:
            refused += 1
            # train refuses it too, before it builds an env or writes a run folder.
            trained = runner.invoke(
                app, ["train", "--preset", source, *set_args, "--runs-dir", str(scratch / "runs")]
            )
            check(trained, f"{case_id}: train {source} {sets} {changes}")
            assert trained.exit_code == 2, f"{case_id}: train accepted what presets show refused"
            assert not (scratch / "runs").exists(), f"{case_id}: a refused train wrote a run folder"
    assert tree(tmp_path, scratch) == outside_before, "a file was written outside the scratch folder"
    assert tree(PRESETS, PRESETS / "none") == project_before
    assert not Path("/abs/escaped").exists()
    assert refused >= len(corpus) // 2  # the corpus is mostly bad input


@pytest.mark.parametrize(
    "key", ["name", "train.seed", "env.n_envs", "algo.learning_rate", "algo.policy_kwargs.net_arch"]
)
def test_the_corpus_draws_from_the_schema(key: str) -> None:
    assert key in schema_keys()
