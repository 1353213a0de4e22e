"""Minimal pytree helpers: parameters and statistics are nested containers of arrays.

Supported containers are NamedTuples, tuples, lists, dicts and frozen dataclasses;
anything else is a leaf. These helpers let the driver add statistics field by field
(a NamedTuple's own ``+`` concatenates, which is never what we want) and flatten
parameters for acceleration and standard errors.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["tree_map", "tree_leaves", "tree_add", "tree_allclose"]


def _is_namedtuple(obj: Any) -> bool:
    return isinstance(obj, tuple) and hasattr(obj, "_fields")


def tree_map(fn: Callable[..., Any], tree: Any, *rest: Any) -> Any:
    """Apply ``fn`` leafwise to one or more trees of identical structure."""
    if _is_namedtuple(tree):
        return type(tree)(*(tree_map(fn, *parts) for parts in zip(tree, *rest, strict=True)))
    if isinstance(tree, (tuple, list)):
        return type(tree)(tree_map(fn, *parts) for parts in zip(tree, *rest, strict=True))
    if isinstance(tree, dict):
        return {key: tree_map(fn, tree[key], *(r[key] for r in rest)) for key in tree}
    if dataclasses.is_dataclass(tree) and not isinstance(tree, type):
        fields = {
            f.name: tree_map(fn, getattr(tree, f.name), *(getattr(r, f.name) for r in rest))
            for f in dataclasses.fields(tree)
        }
        return type(tree)(**fields)
    return fn(tree, *rest)


def tree_leaves(tree: Any) -> list[Any]:
    """Leaves of a tree in a deterministic order."""
    leaves: list[Any] = []

    def collect(leaf: Any) -> Any:
        leaves.append(leaf)
        return leaf

    tree_map(collect, tree)
    return leaves


def tree_add(a: Any, b: Any) -> Any:
    """Leafwise sum of two statistics trees (``None`` is the additive identity)."""
    if a is None:
        return b
    if b is None:
        return a
    return tree_map(np.add, a, b)


def tree_allclose(a: Any, b: Any, *, rtol: float = 1e-9, atol: float = 0.0) -> bool:
    """True when every pair of leaves agrees to the given tolerance."""
    try:
        pairs = list(zip(tree_leaves(a), tree_leaves(b), strict=True))
    except ValueError:
        return False
    return all(
        np.shape(x) == np.shape(y) and np.allclose(x, y, rtol=rtol, atol=atol, equal_nan=False)
        for x, y in pairs
    )
