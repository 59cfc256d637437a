"""The keys ``algo.policy_kwargs`` may hold: the parameters of the algorithm's policy classes.

SB3 hands ``policy_kwargs`` to the policy class when the model is built, and an unknown key was a
raw ``MultiInputPolicy.__init__() got an unexpected keyword argument 'foo'``; checked against the
classes' signatures when the preset loads, it is an unknown key with the valid ones.
"""

from __future__ import annotations

import inspect
from typing import Any

# Given by SB3 itself, never by a preset.
_SUPPLIED = {"self", "observation_space", "action_space", "lr_schedule"}


def policy_parameters(algo_cls: type) -> list[str]:
    """Every keyword any of ``algo_cls``'s policies (MlpPolicy, MultiInputPolicy, ...) takes."""
    names: set[str] = set()
    for policy in getattr(algo_cls, "policy_aliases", {}).values():
        for name, param in inspect.signature(policy.__init__).parameters.items():
            if param.kind not in (param.VAR_KEYWORD, param.VAR_POSITIONAL) and name not in _SUPPLIED:
                names.add(name)
    return sorted(names)


def unknown_policy_key(algo_cls: type, policy_kwargs: Any) -> tuple[str, list[str]] | None:
    """The first key of ``policy_kwargs`` no policy of ``algo_cls`` takes, and the valid keys."""
    if not isinstance(policy_kwargs, dict):
        return None
    valid = policy_parameters(algo_cls)
    if not valid:
        return None
    for key in policy_kwargs:
        if key not in valid:
            return str(key), valid
    return None
