"""YAML for presets and ``--set`` values: ``yaml.safe_load`` with bounded alias expansion.

A YAML alias bomb (``a: &a [x, x, ...]``, ``b: &b [*a, *a, ...]``, nine levels deep) is a few
hundred bytes that PyYAML composes into shared nodes; everything that walks the value afterwards
(validation, an error message quoting it) expands it to billions of items. A preset under a
valid key (``description:``) took two minutes and 12.6 GB before it was refused. Here each
document's composed node graph is sized with aliases expanded, before anything is constructed,
and refused beyond :data:`MAX_NODES`; a recursive alias is refused outright.
"""

from __future__ import annotations

from typing import Any

import yaml

# Far above any preset (the largest shipped one is ~100 nodes) and far below a bomb.
MAX_NODES = 100_000


class ExpansionError(yaml.YAMLError):
    """The document's aliases expand beyond :data:`MAX_NODES` values, or refer to themselves."""

    def __init__(self, problem: str, mark: yaml.Mark | None = None):
        super().__init__(problem)
        self.problem = problem
        self.problem_mark = mark


def _expanded_size(root: yaml.Node, limit: int) -> int:
    """The node count of ``root`` with every alias expanded, stopping past ``limit``."""
    sizes: dict[int, int] = {}
    on_path: set[int] = set()

    def size(node: yaml.Node) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in on_path:
            raise ExpansionError("a recursive alias (a value that contains itself)", node.start_mark)
        on_path.add(key)
        total = 1
        if isinstance(node, yaml.SequenceNode):
            children = node.value
        elif isinstance(node, yaml.MappingNode):
            children = [part for pair in node.value for part in pair]
        else:
            children = []
        for child in children:
            total += size(child)
            if total > limit:
                raise ExpansionError(
                    f"aliases expand to more than {limit:,} values (a YAML alias bomb?)", node.start_mark
                )
        on_path.discard(key)
        sizes[key] = total
        return total

    return size(root)


class BoundedSafeLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses documents whose aliases expand beyond :data:`MAX_NODES`."""

    def compose_document(self) -> yaml.Node | None:  # type: ignore[override]
        node = super().compose_document()
        if node is not None:
            _expanded_size(node, MAX_NODES)
        return node


def safe_load(text: str) -> Any:
    """``yaml.safe_load(text)``, raising :class:`ExpansionError` (a ``yaml.YAMLError``) on a bomb."""
    return yaml.load(text, Loader=BoundedSafeLoader)
