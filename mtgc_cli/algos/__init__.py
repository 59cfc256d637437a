"""Algorithms: the registry (names -> classes, precision, ``make_model``) and the range rules that
check a preset's algo section. Behaviour cloning's model is ``mtgc_cli.imitation.bc``."""

from mtgc_cli.algos.registry import (
    ACTIVATIONS,
    ALGORITHMS,
    MANAGED,
    activation_class,
    algo_class,
    make_model,
    model_class,
)
from mtgc_cli.algos.rules import POLICY_RULES, RULES, Rule, check_algo_kwargs

__all__ = [
    "ACTIVATIONS",
    "ALGORITHMS",
    "MANAGED",
    "POLICY_RULES",
    "RULES",
    "Rule",
    "activation_class",
    "algo_class",
    "check_algo_kwargs",
    "make_model",
    "model_class",
]
