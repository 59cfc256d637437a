"""mtgc: an experiment runner for multi-task and goal-conditioned reinforcement learning."""

__version__ = "0.1.0"
