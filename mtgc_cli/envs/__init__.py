"""Envs: the builder (``factory``), wrappers, registration, and mtgc's own multi-task envs."""
