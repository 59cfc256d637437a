"""The preset schema: loading, validation errors with the closest valid name, overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

from mtgc_cli import presets
from mtgc_cli.errors import UsageError

SHIPPED = [
    "bit-flip",
    "fetch-reach",
    "fetch-push",
    "fetch-slide",
    "fetch-pick-and-place",
    "point-tasks",
    "fetch-multi",
    "fetch-tasks",
    "metaworld-mt10",
]


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "my.yaml"
    path.write_text(text)
    return str(path)


BASE = """
env: {id: FetchReach-v4, reward_type: sparse}
algo: {name: sac, batch_size: 64}
relabel: {strategy: future}
train: {timesteps: 1000, eval_every: 500, eval_episodes: 5}
"""


def test_every_shipped_preset_loads_and_is_listed() -> None:
    assert set(SHIPPED) <= set(presets.shipped_presets())
    for name in SHIPPED:
        config = presets.load(name)
        assert config.name == name
        assert config.train.timesteps > 0


def test_fetch_presets_use_v4_ids_and_bit_flip_uses_dqn() -> None:
    assert presets.load("fetch-push").env.id == "FetchPush-v4"
    assert presets.load("fetch-pick-and-place").env.id == "FetchPickAndPlace-v4"
    bit_flip = presets.load("bit-flip")
    assert bit_flip.algo.name == "dqn"
    assert bit_flip.env.kwargs["n_bits"] == 15


def test_load_by_path_and_overrides(tmp_path: Path) -> None:
    config = presets.load(
        write(tmp_path, BASE),
        timesteps=2000,
        seed=7,
        strategy="final",
        sets=["algo.batch_size=512", "algo.policy_kwargs.net_arch=[32, 32]", "env.n_envs=2"],
    )
    assert config.name == "my"
    assert config.train.timesteps == 2000
    assert config.train.seed == 7
    assert config.relabel.strategy == "final"
    assert config.algo.kwargs["batch_size"] == 512
    assert config.algo.kwargs["policy_kwargs"] == {"net_arch": [32, 32]}
    assert config.env.n_envs == 2


@pytest.mark.parametrize(
    ("text", "sets", "message"),
    [
        (BASE.replace("reward_type", "rewrd_type"), [], "did you mean 'reward_type'"),
        (BASE.replace("relabel:", "relable:"), [], "did you mean 'relabel'"),
        (BASE, ["algo.batch_sise=5"], "did you mean 'batch_size'"),
        (BASE, ["algo.batch_size=abc"], "algo.batch_size is 'abc'; valid: int >= 1"),
        (BASE, ["train.timesteps=-5"], "train.timesteps"),
        (BASE, ["relabel.strategy=sometimes"], "'future'"),
        (BASE, ["algo.name=ppo"], "'sac'"),
        (BASE, ["algo.env=x"], "not settable"),
        (BASE, ["algo.batch_size"], "expected KEY=VALUE"),
        ("env: [unclosed", [], "malformed YAML at line 1"),
        ("- just\n- a list\n", [], "must be a YAML mapping"),
        (BASE.replace("train: {timesteps: 1000,", "train: {"), [], "missing key 'train.timesteps'"),
    ],
)
def test_bad_presets_give_one_clear_line(tmp_path: Path, text: str, sets: list[str], message: str) -> None:
    with pytest.raises(UsageError) as info:
        presets.load(write(tmp_path, text), sets=sets)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_unknown_preset_lists_valid_names() -> None:
    with pytest.raises(
        UsageError, match=r"unknown preset 'fetch-psh' \(did you mean 'fetch-push'\?\); valid: "
    ):
        presets.load("fetch-psh")


@pytest.mark.parametrize(
    ("spec", "goal", "task"),
    [
        ("none", "none", "none"),
        ("future", "future", "none"),
        ("random-task", "none", "random"),
        ("future+best-task", "future", "best"),
    ],
)
def test_strategy_specs(spec: str, goal: str, task: str) -> None:
    assert presets.strategy_overrides(spec) == {"strategy": goal, "task": task}


def test_unknown_strategy_and_task_relabel_without_tasks(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="unknown strategy 'futur'"):
        presets.strategy_overrides("futur")
    with pytest.raises(UsageError, match=r"relabel\.task needs a multi-task env"):
        presets.load(write(tmp_path, BASE), strategy="best-task")


def test_non_positive_timesteps_rejected(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="--timesteps must be a positive"):
        presets.load(write(tmp_path, BASE), timesteps=0)


def test_resolved_yaml_round_trips() -> None:
    config = presets.load("fetch-tasks")
    again = presets.validate(__import__("yaml").safe_load(config.to_yaml()))
    assert again == config
    assert again.relabel.label == "future+best-task"
    assert again.env.task_labels == ["reach", "push", "lift"]


def test_yaml_exponent_without_dot_is_read_as_a_number(tmp_path: Path) -> None:
    # YAML 1.1 reads 1e-3 as a string; for a float argument mtgc takes the number that was meant.
    config = presets.load(
        write(tmp_path, BASE.replace("batch_size: 64", "batch_size: 64, learning_rate: 1e-3"))
    )
    assert config.algo.kwargs["learning_rate"] == pytest.approx(0.001)
    with pytest.raises(UsageError, match=r"algo\.learning_rate is 'fast'; valid: number > 0"):
        presets.load(write(tmp_path, BASE), sets=["algo.learning_rate=fast"])


# ---- range rules (algos.RULES / POLICY_RULES) ------------------------------------------------


@pytest.mark.parametrize(
    "assignment",
    [
        "algo.gamma=1",
        "algo.tau=1",
        "algo.learning_starts=0",
        "algo.gradient_steps=-1",
        "algo.train_freq=[2, episode]",
        "algo.ent_coef=auto_0.1",
        "algo.ent_coef=0.05",
        "algo.policy_kwargs.net_arch={pi: [64], qf: [64, 64]}",
        "algo.policy_kwargs.net_arch=[]",
        "algo.policy_kwargs.activation_fn=LeakyReLU",
        "algo.policy_kwargs.activation_fn=torch.nn.GELU",
    ],
)
def test_range_rules_accept_the_edges(tmp_path: Path, assignment: str) -> None:
    presets.load(write(tmp_path, BASE), sets=[assignment])


@pytest.mark.parametrize(
    ("preset", "assignment", "message"),
    [
        (None, "algo.gamma=0", "algo.gamma is 0; valid: number in (0, 1]"),
        (None, "algo.ent_coef=auto_x", "algo.ent_coef is 'auto_x'; valid: number >= 0, 'auto'"),
        (None, "algo.ent_coef=-1", "algo.ent_coef is -1"),
        (None, "algo.n_steps=0", "algo.n_steps is 0; valid: int >= 1"),
        (None, "algo.buffer_size=1.5", "algo.buffer_size is 1.5; valid: int >= 1"),
        (None, "algo.policy_kwargs.n_critics=0", "algo.policy_kwargs.n_critics is 0"),
        (None, "algo.policy_kwargs=[64]", "algo.policy_kwargs is [64]; valid: a mapping"),
        ("bit-flip", "algo.exploration_final_eps=1.5", "valid: number in [0, 1]"),
        ("bit-flip", "algo.target_update_interval=0", "algo.target_update_interval is 0"),
        # DQN has no actor: pi/qf widths would reach SB3 as a KeyError.
        ("bit-flip", "algo.policy_kwargs.net_arch={pi: [64], qf: [64]}", "valid: a list of layer widths"),
    ],
)
def test_range_rules_reject_out_of_range_values(
    tmp_path: Path, preset: str | None, assignment: str, message: str
) -> None:
    with pytest.raises(UsageError) as info:
        presets.load(preset or write(tmp_path, BASE), sets=[assignment])
    assert message in str(info.value)


def test_activation_names_map_to_torch_classes() -> None:
    from torch import nn

    from mtgc_cli.algos import activation_class

    assert activation_class("relu") is nn.ReLU
    assert activation_class("leaky_relu") is activation_class("LeakyReLU") is nn.LeakyReLU
    assert activation_class("torch.nn.SiLU") is nn.SiLU
    assert activation_class("softmax") is None  # needs a dim: not an elementwise activation
