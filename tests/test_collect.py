"""`mtgc collect`: Minari datasets that minari reads back, per-task counts, bad input."""

from __future__ import annotations

import os

import minari
import numpy as np
import pytest

from tests.conftest import assert_one_line_error, run_dirs


def load(data_dir, dataset_id: str) -> minari.MinariDataset:
    """The dataset through Minari's own loader, pointed at ``data_dir`` as the output says."""
    before = os.environ.get("MINARI_DATASETS_PATH")
    os.environ["MINARI_DATASETS_PATH"] = str(data_dir)
    try:
        return minari.load_dataset(dataset_id)
    finally:
        if before is None:
            del os.environ["MINARI_DATASETS_PATH"]
        else:
            os.environ["MINARI_DATASETS_PATH"] = before


def test_collect_round_trip_with_task_ids_and_per_task_counts(invoke, tmp_path) -> None:
    result = invoke("collect", "--preset", "point-tasks", "--tasks", "north=3,south=1", "--seed", "3")
    assert result.exit_code == 0, result.output
    folder = tmp_path / "data" / "mtgc" / "point-tasks-scripted-v0"
    assert f"written: {folder}" in result.stdout  # says where, under ./data by default
    for task in ("north", "south"):
        assert task in result.stdout
    data = load(tmp_path / "data", "mtgc/point-tasks-scripted-v0")
    assert data.total_episodes == 4
    tasks = []
    for episode in data.iterate_episodes():
        task = int(episode.infos["task"][0])
        assert np.all(episode.infos["task"] == task)
        assert int(np.argmax(episode.observations["task"][0])) == task  # the one-hot agrees
        assert episode.infos["is_success"][-1] == 1.0  # the expert reached the target
        assert len(episode.observations["observation"]) == len(episode.actions) + 1
        tasks.append(task)
    assert sorted(tasks) == [1, 1, 1, 3]
    meta = data.storage.metadata["mtgc"]
    assert meta["task_names"] == ["east", "north", "west", "south"]
    assert meta["tasks"]["north"]["episodes"] == 3 and meta["tasks"]["east"]["episodes"] == 0


def test_only_successful_keeps_successes_and_reports_the_demonstrator(invoke, tmp_path) -> None:
    # Five steps reach an east target only from some starts: the expert fails part of the time.
    short = ["--preset", "point-tasks", "--tasks", "east=6", "--set", "env.kwargs.max_episode_steps=5"]
    every = invoke("collect", *short, "--dataset", "mtgc/every-v0")
    kept = invoke("collect", *short, "--dataset", "mtgc/kept-v0", "--only-successful")
    assert every.exit_code == 0 and kept.exit_code == 0, every.output + kept.output
    all_episodes = list(load(tmp_path / "data", "mtgc/every-v0").iterate_episodes())
    assert len(all_episodes) == 6 and 0 < sum(e.infos["is_success"][-1] for e in all_episodes) < 6
    successes = list(load(tmp_path / "data", "mtgc/kept-v0").iterate_episodes())
    assert len(successes) == 6 and all(e.infos["is_success"][-1] == 1.0 for e in successes)
    meta = load(tmp_path / "data", "mtgc/kept-v0").storage.metadata["mtgc"]["tasks"]["east"]
    assert meta["attempts"] > meta["episodes"] == meta["successes"] == 6


def test_fetch_dataset_keeps_goals(invoke, tmp_path) -> None:
    result = invoke(
        "collect", "--preset", "fetch-pick-and-place-bc", "--episodes", "2", "--data-dir", "elsewhere"
    )
    assert result.exit_code == 0, result.output
    data = load(tmp_path / "elsewhere", "mtgc/fetch-pick-and-place-v0")  # the bc preset's dataset id
    episode = next(iter(data.iterate_episodes()))
    assert set(episode.observations) == {"observation", "achieved_goal", "desired_goal"}
    assert episode.actions.shape == (50, 4)
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (
            ["collect", "--preset", "point-tasks", "--tasks", "nort=3"],
            ["unknown task 'nort'", "did you mean 'north'", "valid: east, north, west, south"],
        ),
        (["collect", "--preset", "point-tasks", "--tasks", "north=0"], ["positive episode count", "valid:"]),
        (["collect", "--preset", "fetch-reach", "--tasks", "reach=3"], ["multi-task envs", "valid:"]),
        (
            ["collect", "--preset", "fetch-slide"],
            ["no scripted expert for FetchSlide-v4", "valid: FetchReach-v4"],
        ),
        (["collect"], ["give --preset", "valid:"]),
        (
            ["collect", "--preset", "point-tasks", "--dataset", "no-version"],
            ["not a Minari dataset id", "valid:"],
        ),
        (["collect", "--policy", "runs/nowhere"], ["no such run folder"]),
        (["train", "--preset", "point-tasks-bc"], ["no dataset mtgc/point-tasks-v0", "valid: none yet"]),
        (
            ["train", "--preset", "point-tasks-bc", "--set", "algo.head=laplace"],
            ["algo.head is 'laplace'", "valid: deterministic, gaussian"],
        ),
        (
            ["train", "--preset", "point-tasks-bc", "--set", "algo.dataset_id=x"],
            ["unknown key 'algo.dataset_id'", "did you mean 'dataset'"],
        ),
        (
            ["train", "--preset", "point-tasks-bc", "--set", "env.normalize=true"],
            ["env.normalize is True with algo.name bc", "valid: False"],
        ),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(invoke, tmp_path, args, fragments) -> None:
    result = invoke(*args)
    assert_one_line_error(result, 2, *fragments)
    assert not (tmp_path / "data").exists()
    assert run_dirs(tmp_path) == []


def test_existing_dataset_is_kept_unless_overwrite(invoke, tmp_path) -> None:
    args = ["collect", "--preset", "point-tasks", "--tasks", "east=1"]
    assert invoke(*args).exit_code == 0
    assert_one_line_error(invoke(*args, "--episodes", "2"), 2, "already exists", "--overwrite")
    assert load(tmp_path / "data", "mtgc/point-tasks-scripted-v0").total_episodes == 1
    assert invoke(*args, "--overwrite").exit_code == 0


def test_bc_refuses_a_dataset_of_other_tasks(invoke, tmp_path) -> None:
    assert invoke("collect", "--preset", "point-tasks-bc", "--tasks", "east=1,north=1").exit_code == 0
    result = invoke("train", "--preset", "point-tasks-bc", "--set", "env.tasks=[north, east, west, south]")
    assert_one_line_error(result, 2, "has tasks ['east', 'north', 'west', 'south']", "valid: the same tasks")
    assert run_dirs(tmp_path) == []
