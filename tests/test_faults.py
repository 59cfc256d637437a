"""Issue 17: faults and bad inputs that gave tracebacks, wrote outside the chosen folder, or
trained on silently. Each is one line on stderr and an exit code, and leaves nothing behind."""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.test_bad_input import BIT_FLIP
from tests.test_cli import assert_one_line_error

PRESETS = Path(__file__).resolve().parent.parent / "presets"


@pytest.fixture(scope="module")
def bit_flip_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished tiny bit-flip run (200 env steps, checkpoints at 100 and 200)."""
    from typer.testing import CliRunner

    from mtgc_cli.cli.app import app
    from tests.conftest import run_dirs

    root = tmp_path_factory.mktemp("bit-flip-run")
    args = [*BIT_FLIP, "--set", "train.checkpoint_every=100", "--runs-dir", str(root / "runs")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    (run,) = run_dirs(root)
    return run


def files_under(root: Path) -> set[Path]:
    return {Path(top) / name for top, dirs, files in os.walk(root) for name in [*files, *dirs]}


def bit_flip_preset(tmp_path: Path, **changes: object) -> Path:
    data = yaml.safe_load((PRESETS / "bit-flip.yaml").read_text())
    data.update(changes)
    path = tmp_path / "preset.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def tiny(preset: Path) -> list[str]:
    return ["--preset", str(preset), *BIT_FLIP[3:]]


# -- item 4: a name is one path component ---------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["../../escaped", "ABS", "a/b", "..", ".", "", "x" * 300, "bad name", "tab\tname"],
    ids=["parent", "absolute", "subfolder", "dotdot", "dot", "empty", "300-chars", "space", "tab"],
)
def test_a_preset_name_that_is_not_one_safe_name_is_refused(invoke, tmp_path: Path, name: str) -> None:
    work = tmp_path / "a" / "b"
    work.mkdir(parents=True)
    absolute = tmp_path / "abs"
    preset = bit_flip_preset(tmp_path, name=str(absolute) if name == "ABS" else name)
    before = files_under(tmp_path)
    os.chdir(work)
    result = invoke("train", *tiny(preset), "--runs-dir", str(work / "runs"))
    assert_one_line_error(result, 2, "name ", "valid: 1-100 characters of A-Z a-z 0-9 . _ -")
    assert files_under(tmp_path) == before
    assert not absolute.exists()


def test_set_name_and_compare_name_are_checked_too(invoke, tmp_path: Path) -> None:
    result = invoke(*BIT_FLIP, "--set", "name=../../escaped")
    assert_one_line_error(result, 2, "name is '../../escaped': a path, not one name", "valid:")
    result = invoke(
        "compare", *BIT_FLIP[1:3], "--seeds", "1", "--name", "../../../escaped2", "--timesteps", "200"
    )
    assert_one_line_error(result, 2, "--name is '../../../escaped2': a path", "valid:")
    assert list(tmp_path.iterdir()) == []
    assert not (tmp_path.parent.parent / "escaped2").exists()


@pytest.mark.parametrize("dataset", ["../../evil-v0", "mtgc/../../evil-v0", "/tmp/evil-v0", "mtgc//x-v0"])
def test_a_dataset_id_cannot_climb_out_of_the_data_dir(invoke, tmp_path: Path, dataset: str) -> None:
    result = invoke("collect", "--preset", "point-tasks", "-n", "1", "--dataset", dataset)
    assert_one_line_error(result, 2, "is not a Minari dataset id", "valid: namespace/name-v<N>")
    assert list(tmp_path.iterdir()) == []
    assert not Path("/tmp/evil-v0").exists()


# -- item 5: a negative seed ------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        [*BIT_FLIP, "--seed", "-1"],
        [*BIT_FLIP, "--set", "train.seed=-1"],
        ["compare", *BIT_FLIP[1:5], "--seeds", "1", "--set", "train.seed=-2"],
    ],
    ids=["train-seed", "set-train-seed", "compare-set-seed"],
)
def test_a_negative_seed_is_one_line_exit_2(invoke, tmp_path: Path, args: list[str]) -> None:
    result = invoke(*args)
    assert_one_line_error(result, 2, "train.seed is -", "valid: int >= 0")
    assert list(tmp_path.iterdir()) == []


def test_eval_with_a_negative_seed_is_one_line_exit_2(invoke, bit_flip_run: Path) -> None:
    result = invoke("eval", str(bit_flip_run), "--seed", "-1", "-n", "1")
    assert_one_line_error(result, 2, "--seed is -1", "valid: a non-negative integer")


# -- item 8: non-finite numbers -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("setting", "fragment"),
    [
        ("algo.learning_rate=.inf", "algo.learning_rate is inf; valid: a finite number"),
        ("algo.learning_rate=-.inf", "algo.learning_rate is -inf"),
        ("algo.learning_rate=1e999", "algo.learning_rate is '1e999'; valid: number > 0"),
        ("algo.exploration_fraction=.nan", "algo.exploration_fraction is nan; valid: a finite number"),
        ("env.normalize_clip=inf", "env.normalize_clip is 'inf'; valid: a finite number"),
        ("env.kwargs.n_bits=.inf", "env.kwargs.n_bits is inf; valid: a finite number"),
        ("algo.policy_kwargs.net_arch=[16, .inf]", "algo.policy_kwargs.net_arch.1 is inf"),
        ("relabel.task_fraction=.nan", "relabel.task_fraction is nan"),
    ],
)
def test_a_non_finite_setting_is_refused(invoke, tmp_path: Path, setting: str, fragment: str) -> None:
    result = invoke(*BIT_FLIP, "--set", setting)
    assert_one_line_error(result, 2, fragment)
    assert list(tmp_path.iterdir()) == []


def test_a_diverging_run_stops_with_one_line_and_keeps_the_last_finite_checkpoint(
    invoke, tmp_path: Path
) -> None:
    import torch
    from stable_baselines3.common.save_util import load_from_zip_file

    # A finite but absurd learning rate: Adam's first steps move each weight by ~1e30, the
    # Q-values overflow and the next gradients are NaN.
    result = invoke(
        *BIT_FLIP, "--timesteps", "300", "--set", "algo.learning_starts=100", "--set",
        "train.checkpoint_every=100", "--set", "train.eval_every=300", "--set", "algo.learning_rate=1e30",
    )  # fmt: skip
    assert result.exit_code == 1, result.output
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("mtgc: error: training diverged at "), result.stderr
    assert "holds inf or NaN; the last finite checkpoint: " in last and "step_100" in last
    assert "Traceback" not in result.output
    (run,) = [p for p in (tmp_path / "runs" / "bit-flip").iterdir()]
    steps = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert steps == ["step_100"]
    _, params, _ = load_from_zip_file(run / "checkpoints" / "step_100" / "model.zip")
    assert all(bool(torch.isfinite(t).all()) for t in params["policy"].values())
    assert not (run / "model.zip").exists()


# -- item 7: YAML alias bombs and huge values in error lines ------------------------------------


def alias_bomb(levels: int = 9, width: int = 9) -> str:
    """``description:`` holding width**levels strings from a few hundred bytes of YAML."""
    lines = [f"l0: &l0 [{', '.join(['lol'] * width)}]"]
    lines += [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * width)}]" for i in range(1, levels)]
    return "\n".join(lines) + f"\ndescription: *l{levels - 1}\n"


def test_a_yaml_alias_bomb_is_refused_at_once(invoke, tmp_path: Path) -> None:
    import time

    base = (PRESETS / "bit-flip.yaml").read_text().split("env:", 1)[1]
    preset = tmp_path / "bomb.yaml"
    preset.write_text(alias_bomb() + "env:" + base)
    start = time.perf_counter()
    result = invoke("train", "--preset", str(preset), "--runs-dir", str(tmp_path / "runs"))
    assert time.perf_counter() - start < 10
    assert_one_line_error(result, 2, "aliases expand to more than 100,000 values", "at line ")
    assert len(result.stderr) < 300
    assert not (tmp_path / "runs").exists()


def test_a_recursive_alias_and_a_bomb_in_set_are_refused(invoke) -> None:
    result = invoke(*BIT_FLIP, "--set", "description=&a [*a]")
    assert_one_line_error(result, 2, "--set", "a recursive alias")
    bomb = "[" + ", ".join(["&x [a, a, a, a, a, a, a, a, a, a]"] + ["*x"] * 9) + "]"
    result = invoke(*BIT_FLIP, "--set", f"description={bomb}")
    assert result.exit_code == 2  # small: a wrong type, said in one short line
    assert len(result.stderr) < 300


def test_a_huge_value_is_quoted_as_a_short_excerpt(invoke) -> None:
    result = invoke(*BIT_FLIP, "--set", f"algo.batch_size={'9' * 5000}x")
    assert_one_line_error(result, 2, "algo.batch_size is '999", "...9", "999x'; valid: int >= 1")
    assert len(result.stderr) < 300


# -- item 3 and 10: collect onto a full disk, or into a folder it cannot write -------------------


def mtgc_with_file_size_limit(args: list[str], cwd: Path, limit: int) -> subprocess.CompletedProcess[str]:
    """`mtgc ARGS` whose writes fail past ``limit`` bytes a file: EFBIG from the kernel, as a full
    disk gives ENOSPC (SIGXFSZ ignored, so the write returns the error instead of killing)."""

    def limit_writes() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return subprocess.run(
        [sys.executable, "-m", "mtgc_cli.cli.app", *args],
        cwd=cwd,
        preexec_fn=limit_writes,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_collect_whose_write_fails_is_one_line_exit_1_and_leaves_nothing(tmp_path: Path) -> None:
    collect = ["collect", "--preset", "point-tasks", "-n", "20", "--data-dir", "data"]
    done = mtgc_with_file_size_limit(collect, tmp_path, 300_000)  # the dataset is ~2 MB
    assert done.returncode == 1, done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines[-1].startswith("mtgc: error: writing dataset mtgc/point-tasks-scripted-v0 in "), lines
    assert "File too large (errno 27); nothing was written" in lines[-1]
    assert "Traceback" not in done.stderr and "h5py" not in done.stderr
    assert not (tmp_path / "data").exists()
    # Nothing in the way of the next collect, which writes a dataset bc reads back.
    again = subprocess.run(
        [sys.executable, "-m", "mtgc_cli.cli.app", *collect[:4], "2", *collect[5:]],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert again.returncode == 0, again.stderr
    from mtgc_cli.imitation.dataset import read

    demos = read(tmp_path / "data", "mtgc/point-tasks-scripted-v0")
    assert demos.n_episodes == 8
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["mtgc"]


def test_collect_into_a_read_only_data_dir_is_refused_before_collecting(invoke, tmp_path: Path) -> None:
    result = invoke("collect", "--preset", "point-tasks", "-n", "1", "--data-dir", "/proc/data")
    assert_one_line_error(result, 2, "--data-dir /proc/data: cannot create folders in /proc", "valid:")
    (tmp_path / "blocked").write_text("a file")
    result = invoke("collect", "--preset", "point-tasks", "-n", "1", "--data-dir", "blocked/data")
    assert_one_line_error(result, 2, "blocked is not a folder", "valid:")


# -- item 6: collect from a run with discrete actions --------------------------------------------


def test_collect_from_a_discrete_action_run_is_one_line_exit_2(
    invoke, tmp_path: Path, bit_flip_run: Path
) -> None:
    result = invoke("collect", "--policy", str(bit_flip_run), "-n", "2", "--data-dir", "data")
    assert_one_line_error(
        result, 2, "collect records continuous (Box) actions for bc", "Discrete(4)", "valid:"
    )
    assert not (tmp_path / "data").exists()


# -- item 12: --resume with a damaged newest model.zip -------------------------------------------


def test_resume_says_the_step_it_resumes_at_when_the_newest_model_is_damaged(
    invoke, tmp_path: Path, bit_flip_run: Path
) -> None:
    import shutil

    run = tmp_path / "run"
    shutil.copytree(bit_flip_run, run)
    model = run / "checkpoints" / "step_200" / "model.zip"
    data = bytearray(model.read_bytes())  # same size, damaged content: the manifest can't tell
    for i in range(len(data) // 2, len(data) // 2 + 64):
        data[i] ^= 0xFF
    model.write_bytes(bytes(data))
    result = invoke("train", "--resume", str(run), "--timesteps", "300")
    assert result.exit_code == 0, result.output
    text = " ".join(result.stderr.split())  # Rich wraps the header line
    assert text.startswith(f"mtgc train resuming {run} at 100 env steps"), text
    assert "step_200: model.zip is damaged" in text and "passed over" in text, text
    assert "at 200 env steps" not in text


# -- item 13: eval of a run that is still training -----------------------------------------------


def test_eval_of_a_run_without_model_zip_names_what_it_can_evaluate(
    invoke, tmp_path: Path, bit_flip_run: Path
) -> None:
    import shutil

    run = tmp_path / "run"
    shutil.copytree(bit_flip_run, run)
    (run / "model.zip").unlink()  # as while it trains: model.zip is written when it ends
    result = invoke("eval", str(run), "-n", "1")
    assert_one_line_error(
        result, 2, "no model.zip yet",
        "valid: a model it has saved in that folder: checkpoints/step_200, checkpoints/step_100, best_model.zip",
    )  # fmt: skip
    assert "expected a run folder" not in result.stderr
    assert invoke("eval", str(run / "checkpoints" / "step_200"), "-n", "1").exit_code == 0
    shutil.rmtree(run / "checkpoints")
    (run / "best_model.zip").unlink()
    result = invoke("eval", str(run), "-n", "1")
    assert_one_line_error(result, 2, "no model yet", "valid: eval it after its first checkpoint")


# -- item 14: repeated, malformed and empty list entries ----------------------------------------


def test_a_task_description_given_twice_is_refused(invoke, bit_flip_run: Path) -> None:
    result = invoke(
        "eval", str(bit_flip_run), "-n", "1", "--task-description", "east=go right",
        "--task-description", "east=go left",
    )  # fmt: skip
    assert_one_line_error(result, 2, "--task-description gives task 'east' twice", "valid:")


@pytest.mark.parametrize("spec", ["east:5;north", "east 5", "east=5;north=3"])
def test_collect_tasks_in_bad_syntax_says_the_syntax(invoke, tmp_path: Path, spec: str) -> None:
    result = invoke("collect", "--preset", "point-tasks", "--tasks", spec, "--data-dir", "data")
    assert_one_line_error(result, 2, "is not NAME or NAME=N; valid: name=count,... e.g. east=100")
    assert "unknown task" not in result.stderr
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize("strategies", ["none,,future", "none,future,", ",none"])
def test_compare_strategies_with_an_empty_entry_is_refused(invoke, tmp_path: Path, strategies: str) -> None:
    result = invoke("compare", *BIT_FLIP[1:5], "--seeds", "1", "--strategies", strategies)
    assert_one_line_error(result, 2, "has an empty entry; valid: a comma-separated list")
    assert list(tmp_path.iterdir()) == []


# -- item 15: every line says what is valid, in mtgc's words, naming the option given ------------


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["compare", *BIT_FLIP[1:5], "--seeds", "0"], ["--seeds is 0; valid: a positive number of seeds"]),
        (
            ["compare", *BIT_FLIP[1:5], "--strategies", "none,future,none"],
            ["--strategies lists none twice", "valid: each strategy once"],
        ),
        (
            [*BIT_FLIP, "--set", "train.eval_every=0"],
            ["error: --set train.eval_every=0: train.eval_every is 0; valid: int > 0"],
        ),
        (
            [*BIT_FLIP, "--set", "algo.policy_kwargs.foo.bar=1"],
            ["--set algo.policy_kwargs.foo.bar=1: unknown key 'algo.policy_kwargs.foo' for dqn", "valid:"],
        ),
        ([*BIT_FLIP, "--seed", "-3"], ["error: --seed -3: train.seed is -3; valid: int >= 0"]),
    ],
    ids=["seeds-0", "strategy-twice", "pydantic-bound", "policy-kwarg", "seed-option"],
)
def test_lines_say_what_is_valid_and_name_the_option(invoke, tmp_path: Path, args, fragments) -> None:
    result = invoke(*args)
    assert_one_line_error(result, 2, *fragments)
    for raw in ("Input should be", "__init__()", "unexpected keyword", ".yaml:"):
        assert raw not in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_truncated_dataset_is_one_line_in_mtgc_words(invoke, tmp_path: Path) -> None:
    collected = invoke("collect", "--preset", "point-tasks-bc", "-n", "2", "--data-dir", "data")
    assert collected.exit_code == 0, collected.output
    (hdf5,) = (tmp_path / "data").glob("**/main_data.hdf5")
    os.truncate(hdf5, hdf5.stat().st_size // 2)
    result = invoke(
        "train", "--preset", "point-tasks-bc", "--timesteps", "20", "--set", "algo.data_dir=data",
        "--set", "train.eval_every=20", "--set", "train.eval_episodes=1",
    )  # fmt: skip
    assert_one_line_error(
        result, 2, "dataset mtgc/point-tasks-v0 in ", "cannot be read: its files are damaged or truncated",
        "valid: collect it again (mtgc collect --overwrite)",
    )  # fmt: skip
    assert "eof" not in result.stderr and "synchronously" not in result.stderr


# -- item 16: more envs than the budget or DQN's target interval ---------------------------------


@pytest.mark.parametrize(
    ("sets", "fragment"),
    [
        (["env.n_envs=60"], "env.n_envs 60 takes 60 env steps at a time, more than train.timesteps 50"),
        (
            ["env.n_envs=60", "algo.target_update_interval=50", "train.eval_every=500"],
            "more than algo.target_update_interval 50; valid: n_envs <= 50",
        ),
    ],
    ids=["budget", "dqn-target-interval"],
)
def test_n_envs_beyond_the_budget_is_refused(invoke, tmp_path: Path, sets: list[str], fragment: str) -> None:
    timesteps = "50" if sets == ["env.n_envs=60"] else "500"
    args = [*BIT_FLIP, "--timesteps", timesteps, "--set", "train.eval_every=50"]
    result = invoke(*args, *[a for s in sets for a in ("--set", s)])
    assert_one_line_error(result, 2, fragment, "valid: n_envs <= ")
    assert "UserWarning" not in result.output
    assert list(tmp_path.iterdir()) == []


# -- item 11: eval --video onto a full disk ------------------------------------------------------


def test_eval_video_whose_writes_fail_is_one_line_and_leaves_no_videos_folder(invoke, tmp_path: Path) -> None:
    from tests.conftest import run_dirs
    from tests.test_bad_input import POINT_TASKS

    assert invoke(*POINT_TASKS, "--runs-dir", "runs").exit_code == 0
    (run,) = run_dirs(tmp_path / "runs")
    # Each MP4 of these episodes is ~8 KB: ffmpeg's writes fail past 1,000 bytes.
    done = mtgc_with_file_size_limit(["eval", str(run), "-n", "2", "--video"], tmp_path, 1000)
    assert done.returncode == 0, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"mtgc: warning: writing videos in {run}/videos/eval-model-s0 failed ")
    assert "File too large (errno 27)" in lines[0] and "Broken pipe" not in lines[0]
    assert "success" in done.stdout  # the evaluation's table
    assert not (run / "videos").exists()


def test_collect_with_a_negative_seed_says_what_is_valid(invoke, tmp_path: Path) -> None:
    result = invoke("collect", "--preset", "point-tasks", "--seed", "-1", "--data-dir", "data")
    assert_one_line_error(result, 2, "--seed is -1; valid: a non-negative integer")
    assert list(tmp_path.iterdir()) == []
