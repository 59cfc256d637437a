"""The CLI end to end through CliRunner: files written, tables, JSON, and every bad input's one line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from tests.conftest import assert_one_line_error, run_dirs

# A tiny bit-flipping run: 4-bit episodes end every 4 steps, learning starts at 100 steps.
TINY = [
    "--preset", "bit-flip", "--timesteps", "400",
    "--set", "env.kwargs.n_bits=4", "--set", "algo.learning_starts=100", "--set", "algo.buffer_size=1000",
    "--set", "algo.policy_kwargs.net_arch=[32]", "--set", "train.eval_every=200",
    "--set", "train.eval_episodes=10", "--set", "train.checkpoint_every=200",
]  # fmt: skip


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from typer.testing import CliRunner

    from mtgc_cli.cli.app import app

    root = tmp_path_factory.mktemp("trained")
    result = CliRunner().invoke(app, ["train", *TINY, "--runs-dir", str(root / "runs")])
    assert result.exit_code == 0, result.output
    (run,) = run_dirs(root)
    return run


def test_train_writes_a_complete_run_folder(trained_run: Path) -> None:
    run = trained_run
    assert run.parent.name == "bit-flip" and run.name.endswith("-s0")
    for name in (
        "config.yaml",
        "command.txt",
        "versions.json",
        "model.zip",
        "best_model.zip",
        "summary.json",
    ):
        assert (run / name).is_file(), name
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["env"]["kwargs"]["n_bits"] == 4 and config["train"]["timesteps"] == 400
    assert "--timesteps 400" in (run / "command.txt").read_text()
    assert {"python", "mtgc", "stable-baselines3", "gymnasium", "mujoco", "torch"} <= set(
        json.loads((run / "versions.json").read_text())
    )
    rows = (run / "progress.csv").read_text().splitlines()
    assert (
        rows[0]
        == "env_steps,wall_seconds,eval_success,eval_return,train_success,fps,gradient_steps,eval_seconds"
    )
    assert [int(r.split(",")[0]) for r in rows[1:]] == [200, 400]
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step_200", "step_400"]
    assert list((run / "tb").glob("events.out.tfevents.*"))
    summary = json.loads((run / "summary.json").read_text())
    assert summary["steps"] == 400 and summary["status"] == "done"
    assert 0.0 <= summary["final_eval_success"] <= 1.0


def test_eval_prints_table_and_json(invoke, trained_run: Path) -> None:
    result = invoke("eval", str(trained_run), "--episodes", "20", "--seed", "3")
    assert result.exit_code == 0, result.output
    assert "success [95% CI]" in result.stdout and "final goal dist" in result.stdout
    assert "20" in result.stdout and "seed 3" in result.stdout
    result = invoke("eval", str(trained_run / "checkpoints" / "step_200"), "-n", "8", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["overall"]["episodes"] == 8
    assert (
        0
        <= data["overall"]["success_low"]
        <= data["overall"]["success"]
        <= data["overall"]["success_high"]
        <= 1
    )
    assert data["overall"]["mean_length"] <= 4


def test_eval_is_deterministic_for_a_seed(invoke, trained_run: Path) -> None:
    first = json.loads(invoke("eval", str(trained_run), "-n", "10", "--json").stdout)
    second = json.loads(invoke("eval", str(trained_run), "-n", "10", "--json").stdout)
    assert first["overall"] == second["overall"]


def test_presets_table_and_show(invoke) -> None:
    result = invoke("presets")
    assert result.exit_code == 0
    for name in ("fetch-reach", "fetch-push", "bit-flip", "point-tasks", "metaworld-mt10"):
        assert name in result.stdout
    shown = invoke("presets", "show", "fetch-reach")
    assert shown.exit_code == 0
    data = yaml.safe_load(shown.stdout)
    assert data["env"]["id"] == "FetchReach-v4" and data["relabel"]["strategy"] == "future"


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["train", "--preset", "fetch-rech"], ["unknown preset", "did you mean 'fetch-reach'", "valid:"]),
        (
            ["train", "--preset", "bit-flip", "--set", "algo.batch_size=lots"],
            ["algo.batch_size is 'lots'; valid: int >= 1"],
        ),
        (["train", "--preset", "bit-flip", "--set", "algo.batch_sz=5"], ["did you mean 'batch_size'"]),
        (
            ["train", "--preset", "bit-flip", "--set", "env.id=FetchRech-v4"],
            ["unknown env id", "FetchReach-v4"],
        ),
        (["train", "--preset", "bit-flip", "--set", "algo.name=ppo"], ["algo.name", "'sac'"]),
        (["train", "--preset", "bit-flip", "--timesteps", "0"], ["--timesteps must be a positive"]),
        (["train", "--preset", "bit-flip", "--timesteps", "-10"], ["--timesteps must be a positive"]),
        (["train", "--preset", "bit-flip", "--strategy", "sometimes"], ["unknown strategy", "valid:"]),
        (
            ["train", "--preset", "point-tasks", "--strategy", "future"],
            ["needs a goal env", "valid here: none"],
        ),
        (
            ["train", "--preset", "bit-flip", "--set", "env.id=CartPole-v1", "--set", "env.kwargs={}"],
            ["needs a goal env"],
        ),
        (
            ["train", "--preset", "fetch-multi", "--strategy", "future+best-task"],
            ["share dynamics", "valid here"],
        ),
        (["compare", "--preset", "bit-flip", "--workers", "0"], ["--workers must be at least 1"]),
        (
            ["compare", "--preset", "bit-flip", "--seeds", "0"],
            ["--seeds is 0; valid: a positive number of seeds"],
        ),
        (["eval", "nowhere/run"], ["no such run folder"]),
        (["eval", "runs", "--episodes", "0"], ["--episodes must be a positive"]),
        (["train", "--preset", "bit-flip", "--timesteps", "many"], ["--timesteps"]),
    ],
)
def test_bad_input_gives_one_line_exit_2_and_no_run_folder(invoke, tmp_path: Path, args, fragments) -> None:
    result = invoke(*args)
    assert_one_line_error(result, 2, *fragments)
    assert not (tmp_path / "runs").exists()


def test_malformed_and_unknown_key_preset_files(invoke, tmp_path: Path) -> None:
    (tmp_path / "broken.yaml").write_text("env: {id: FetchReach-v4\nalgo: [")
    assert_one_line_error(invoke("train", "--preset", "broken.yaml"), 2, "malformed YAML at line")
    good = (Path(__file__).parent.parent / "presets" / "bit-flip.yaml").read_text()
    (tmp_path / "typo.yaml").write_text(good.replace("train:", "trian:"))
    assert_one_line_error(
        invoke("train", "--preset", "typo.yaml"), 2, "unknown key 'trian'", "did you mean 'train'"
    )
    assert_one_line_error(invoke("train", "--preset", "missing.yaml"), 2, "does not exist")
    assert not (tmp_path / "runs").exists()


def test_debug_shows_the_traceback(invoke) -> None:
    result = invoke("--debug", "train", "--preset", "fetch-rech")
    assert result.exit_code != 0
    assert result.exception is not None and "unknown preset" in str(result.exception)


def test_corrupt_and_missing_checkpoints_fail_cleanly_and_keep_files(
    invoke, tmp_path: Path, trained_run: Path
) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(trained_run, copy)
    (copy / "model.zip").write_bytes(b"not a zip at all")
    before = sorted(str(p.relative_to(copy)) for p in copy.rglob("*"))
    assert_one_line_error(invoke("eval", str(copy)), 2, "not a loadable dqn model")
    assert_one_line_error(invoke("eval", str(copy / "checkpoints" / "step_999" / "model.zip")), 2, "no such")
    (copy / "model.zip").unlink()
    assert_one_line_error(invoke("eval", str(copy)), 2, "no model.zip")
    (copy / "config.yaml").write_text("env: [")
    assert_one_line_error(invoke("eval", str(copy / "best_model.zip")), 2, "corrupt run config")
    assert sorted(str(p.relative_to(copy)) for p in copy.rglob("*")) == [
        n for n in before if n != "model.zip"
    ]


def test_compare_writes_table_files_and_skips_finished_runs(invoke, tmp_path: Path) -> None:
    args = ["compare", *TINY, "--strategies", "none,future", "--seeds", "2", "--workers", "2"]
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    folder = tmp_path / "runs" / "compare" / "bit-flip"
    assert sorted(p.name for p in folder.iterdir() if p.is_dir()) == [
        "future-s0",
        "future-s1",
        "none-s0",
        "none-s1",
    ]
    data = json.loads((folder / "compare.json").read_text())
    assert [row["strategy"] for row in data["strategies"]] == ["none", "future"]
    assert all(row["seeds"] == 2 for row in data["strategies"])
    assert len(data["runs"]) == 4
    assert (folder / "compare.csv").read_text().startswith("strategy,seeds,final_success_mean")
    assert (folder / "curves.png").stat().st_size > 1000
    assert "future" in result.stdout and "success" in result.stdout and "wall" in result.stdout
    stamp = (folder / "future-s0" / "summary.json").stat().st_mtime_ns
    again = invoke(*args)
    assert again.exit_code == 0, again.output
    assert (folder / "future-s0" / "summary.json").stat().st_mtime_ns == stamp
    # The same folder with another config is refused rather than overwritten.
    other = invoke(*args, "--set", "algo.gamma=0.5")
    assert_one_line_error(other, 2, "different config", "--name")
    assert (folder / "future-s0" / "summary.json").stat().st_mtime_ns == stamp


def test_unwritable_runs_dir_is_one_line_exit_2(invoke, tmp_path: Path) -> None:
    # Checked as the command line is read, before any env is built: bad input, not a failed run.
    (tmp_path / "blocked").write_text("a file where the runs folder should go")
    result = invoke("train", *TINY, "--runs-dir", "blocked")
    assert_one_line_error(result, 2, "--runs-dir blocked: blocked is not a folder", "valid:")
    assert (tmp_path / "blocked").read_text().startswith("a file")
