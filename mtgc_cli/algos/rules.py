"""Range rules: what SB3 accepts for each algo argument, checked when the preset loads."""

from __future__ import annotations

import difflib
import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from stable_baselines3.common.base_class import BaseAlgorithm

from mtgc_cli.algos.registry import ACTIVATIONS, MANAGED, activation_class, algo_class
from mtgc_cli.config import AlgoConfig
from mtgc_cli.errors import UsageError, excerpt
from mtgc_cli.imitation.policy import HEADS
from mtgc_cli.policy_keys import unknown_policy_key


def _parameters(cls: type[BaseAlgorithm]) -> dict[str, inspect.Parameter]:
    return {
        name: param
        for name, param in inspect.signature(cls.__init__).parameters.items()
        if name != "self" and param.kind not in (param.VAR_KEYWORD, param.VAR_POSITIONAL)
    }


# ---------------------------------------------------------------------------------------------
# Range rules: what SB3 accepts for each argument, checked when the preset loads. SB3 takes most
# out-of-range values without complaint and fails (or quietly learns nothing) thousands of steps
# later: a negative buffer_size raises at the first gradient step, gamma 1.5 trains a diverging
# critic, net_arch [0] a zero-width network. Every rule is in the tables below: RULES for SB3's
# arguments, POLICY_RULES (and POLICY_RULES_FOR one algorithm) for algo.policy_kwargs.


@dataclass(frozen=True)
class Rule:
    """The values one argument accepts (type and range): ``ok(value)``, described as ``valid``."""

    ok: Callable[[Any], bool]
    valid: str


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _int_rule(low: int, *also: int) -> Rule:
    """An int >= ``low``, or one of the special values ``also`` (SB3's -1 for "as many as")."""
    extra = "".join(f" or {v}" for v in also)
    return Rule(lambda v: _is_int(v) and (v >= low or v in also), f"int >= {low}{extra}")


def _number_rule(low: float, high: float | None = None, *, low_open: bool, high_open: bool = False) -> Rule:
    """A number in the interval from ``low`` to ``high`` (None: unbounded), ends open or closed."""

    def ok(v: Any) -> bool:
        if not _is_number(v):
            return False
        above = v > low if low_open else v >= low
        below = high is None or (v < high if high_open else v <= high)
        return above and below

    if high is None:
        return Rule(ok, f"number {'>' if low_open else '>='} {low:g}")
    brackets = ("(" if low_open else "[", ")" if high_open else "]")
    return Rule(ok, f"number in {brackets[0]}{low:g}, {high:g}{brackets[1]}")


def _train_freq_ok(value: Any) -> bool:
    # SB3 takes n (every n steps) or (n, "step" | "episode"); YAML writes the pair as a list.
    if isinstance(value, (list, tuple)):
        return len(value) == 2 and _is_int(value[0]) and value[0] >= 1 and value[1] in ("step", "episode")
    return _is_int(value) and value >= 1


def _ent_coef_ok(value: Any) -> bool:
    # A fixed coefficient, or "auto" / "auto_<initial value>" to learn it (SAC, TQC).
    if isinstance(value, str):
        if value == "auto":
            return True
        head, _, initial = value.partition("_")
        try:
            return head == "auto" and float(initial) > 0
        except ValueError:
            return False
    return _is_number(value) and value >= 0


def _widths_ok(value: Any) -> bool:
    return isinstance(value, list) and all(_is_int(w) and w >= 1 for w in value)


def _net_arch_ok(value: Any) -> bool:
    # Off-policy SB3 takes one list for actor and critic, or {pi: [...], qf: [...]}.
    if isinstance(value, dict):
        return bool(value) and set(value) <= {"pi", "qf"} and all(_widths_ok(v) for v in value.values())
    return _widths_ok(value)


# Top-level SB3 arguments (any of the five algorithms; a key only applies where the class takes it).
RULES: dict[str, Rule] = {
    "learning_rate": _number_rule(0, low_open=True),
    "buffer_size": _int_rule(1),
    "batch_size": _int_rule(1),
    "learning_starts": _int_rule(0),
    "gamma": _number_rule(0, 1, low_open=True),
    "tau": _number_rule(0, 1, low_open=True),
    "train_freq": Rule(_train_freq_ok, "int >= 1, or [n, step] or [n, episode] with int n >= 1"),
    # -1: as many gradient steps as env steps were collected since the last update.
    "gradient_steps": _int_rule(1, -1),
    "n_steps": _int_rule(1),
    "target_update_interval": _int_rule(1),
    "stats_window_size": _int_rule(1),
    "ent_coef": Rule(_ent_coef_ok, "number >= 0, 'auto' or 'auto_<initial value > 0>'"),
    "sde_sample_freq": _int_rule(-1),
    "policy_delay": _int_rule(1),
    "target_policy_noise": _number_rule(0, low_open=False),
    "target_noise_clip": _number_rule(0, low_open=False),
    "top_quantiles_to_drop_per_net": _int_rule(0),
    "exploration_fraction": _number_rule(0, 1, low_open=False),
    "exploration_initial_eps": _number_rule(0, 1, low_open=False),
    "exploration_final_eps": _number_rule(0, 1, low_open=False),
    # SB3's default is the int 10, but any positive norm is meant.
    "max_grad_norm": _number_rule(0, low_open=True),
}

# Keys of algo.policy_kwargs; the others go to the policy class unchecked (it rejects unknown ones).
POLICY_RULES: dict[str, Rule] = {
    "net_arch": Rule(
        _net_arch_ok,
        "a list of layer widths >= 1 such as [256, 256], or {pi: [...], qf: [...]} (sac, td3, ddpg, tqc)",
    ),
    "activation_fn": Rule(
        lambda v: isinstance(v, str) and activation_class(v) is not None, ", ".join(ACTIVATIONS)
    ),
    "n_critics": _int_rule(1),
    "n_quantiles": _int_rule(1),
}

# Where an algorithm takes less than the rule above (DQN has one Q-network, no actor).
POLICY_RULES_FOR: dict[str, dict[str, Rule]] = {
    "dqn": {"net_arch": Rule(_widths_ok, "a list of layer widths >= 1 such as [256, 256] (dqn)")},
    "bc": {"net_arch": Rule(_widths_ok, "a list of layer widths >= 1 such as [256, 256] (bc)")},
}

# Arguments of one algorithm only (behaviour cloning's dataset and loss).
RULES_FOR: dict[str, dict[str, Rule]] = {
    "bc": {
        "dataset": Rule(lambda v: isinstance(v, str) and bool(v), "a Minari dataset id: mtgc/point-tasks-v0"),
        "data_dir": Rule(lambda v: v is None or isinstance(v, str), "a folder (default: ./data)"),
        "head": Rule(lambda v: v in HEADS, ", ".join(HEADS)),
        "validation_fraction": _number_rule(0, 0.5, low_open=False),
        "validation_every": _int_rule(1),
    },
}


def check_algo_kwargs(algo: AlgoConfig, source: str = "preset") -> None:
    """Reject kwargs the SB3 class does not take, of the wrong type, or out of range (the rules above)."""
    cls = algo_class(algo.name)
    params = _parameters(cls)
    for key, value in algo.kwargs.items():
        if key in MANAGED:
            raise UsageError(f"{source}: algo.{key} is not settable ({MANAGED[key]})")
        if key not in params:
            valid = sorted(k for k in params if k not in MANAGED)
            close = difflib.get_close_matches(key, valid, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise UsageError(
                f"{source}: unknown key 'algo.{key}' for {algo.name}{hint}; valid: {', '.join(valid)}"
            )
        default = params[key].default
        if isinstance(default, float) and isinstance(value, str):
            # YAML 1.1 reads `1e-3` (no dot) as a string; a number is what was meant.
            try:
                number = float(value)
            except ValueError:
                number = math.nan
            if math.isfinite(number):  # `1e999` reads as inf: left a string, and refused below
                value = number
                setattr(algo, key, value)
        rule = RULES_FOR.get(algo.name, {}).get(key) or RULES.get(key)
        if rule is not None:
            if not rule.ok(value):
                raise UsageError(f"{source}: algo.{key} is {excerpt(value)}; valid: {rule.valid}")
        elif not _compatible(value, default):
            raise UsageError(
                f"{source}: algo.{key} is {excerpt(value)}; valid: {type(default).__name__} like its default "
                f"{default!r}"
            )
    _check_policy_kwargs(
        algo.kwargs.get("policy_kwargs"), {**POLICY_RULES, **POLICY_RULES_FOR.get(algo.name, {})}, source
    )
    unknown = unknown_policy_key(cls, algo.kwargs.get("policy_kwargs"))
    if unknown is not None:
        key, valid = unknown
        close = difflib.get_close_matches(key, valid, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise UsageError(
            f"{source}: unknown key 'algo.policy_kwargs.{key}' for {algo.name}{hint}; "
            f"valid: {', '.join(valid)}"
        )
    if algo.precision != "float32" and algo.name == "bc":
        # Behaviour cloning steps in its own loop, not in ``train``: the setting would do nothing.
        raise UsageError(
            f"{source}: algo.precision applies to sac, td3, ddpg, tqc and dqn; bc trains in float32"
        )
    if algo.target_bound != "none" and algo.name == "bc":
        raise UsageError(
            f"{source}: algo.target_bound applies to sac, td3, ddpg, tqc and dqn; bc has no target"
        )
    if algo.noise_std is not None and algo.name not in ("td3", "ddpg", "sac", "tqc"):
        raise UsageError(f"{source}: algo.noise_std applies to continuous actions (sac, td3, ddpg, tqc)")


def _check_policy_kwargs(policy_kwargs: Any, rules: dict[str, Rule], source: str) -> None:
    if policy_kwargs is None:
        return
    if not isinstance(policy_kwargs, dict):
        raise UsageError(
            f"{source}: algo.policy_kwargs is {excerpt(policy_kwargs)}; valid: a mapping such as "
            "{net_arch: [64, 64], activation_fn: relu}"
        )
    for key, value in policy_kwargs.items():
        rule = rules.get(key)
        if rule is not None and not rule.ok(value):
            raise UsageError(f"{source}: algo.policy_kwargs.{key} is {excerpt(value)}; valid: {rule.valid}")


def _compatible(value: Any, default: Any) -> bool:
    """A light type check against the default's type, for arguments without a rule."""
    if default is inspect.Parameter.empty or default is None or value is None:
        return True
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, int):
        return _is_int(value)
    if isinstance(default, float):
        return _is_number(value)
    if isinstance(default, str):
        return isinstance(value, str) or _is_number(value)
    if isinstance(default, tuple):
        return isinstance(value, (list, tuple, int))
    return True
