"""Input validation shared by models and estimators: errors name the argument."""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = [
    "as_float_matrix",
    "check_int",
    "check_choice",
    "check_positive_float",
    "check_param_shapes",
]


def as_float_matrix(
    x: Any,
    name: str = "X",
    *,
    allow_1d: bool = False,
    min_rows: int = 1,
    dtype: Any = np.float64,
) -> np.ndarray:
    """Validate a 2-D numeric data matrix without NaN or infinity.

    A 1-D array is accepted only when ``allow_1d`` (it becomes one column).
    """
    if isinstance(x, (str, bytes)):
        raise TypeError(f"{name} must be a numeric array; got a string")
    try:
        arr = np.asarray(x)
    except Exception as exc:  # ragged lists and the like
        raise TypeError(f"{name} must be a numeric array-like; got {type(x).__name__}") from exc
    if arr.dtype == object or not (
        np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.bool_)
    ):
        raise TypeError(f"{name} must contain numbers; got dtype {arr.dtype}")
    if np.issubdtype(arr.dtype, np.complexfloating):
        raise TypeError(f"{name} must be real-valued; got dtype {arr.dtype}")
    if arr.ndim == 1 and allow_1d:
        arr = arr[:, None]
    if arr.ndim != 2:
        hint = " (reshape a single feature with X.reshape(-1, 1))" if arr.ndim == 1 else ""
        raise ValueError(f"{name} must be 2-D (n_samples, n_features); got shape {arr.shape}{hint}")
    if arr.shape[0] == 0:
        raise ValueError(f"{name} is empty: it has 0 rows")
    if arr.shape[1] == 0:
        raise ValueError(f"{name} has 0 columns")
    arr = np.ascontiguousarray(arr, dtype=dtype)
    if not np.all(np.isfinite(arr)):
        bad = np.argwhere(~np.isfinite(arr))[0]
        kind = "NaN" if np.isnan(arr[tuple(bad)]) else "infinite"
        raise ValueError(
            f"{name} contains NaN or infinite values (first: {kind} at row {bad[0]}, column "
            f"{bad[1]})"
        )
    if arr.shape[0] < min_rows:
        raise ValueError(
            f"{name} has {arr.shape[0]} row(s) but at least {min_rows} are needed "
            "(one per component)"
        )
    return arr


def check_int(value: Any, name: str, *, minimum: int) -> int:
    """An integer (not a bool) at least ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer; got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}; got {value}")
    return int(value)


def check_choice(value: Any, name: str, choices: tuple[str, ...]) -> str:
    """One of a fixed set of strings."""
    if value not in choices:
        raise ValueError(
            f"unknown {name} {value!r}; expected one of {', '.join(map(repr, choices))}"
        )
    return str(value)


def check_positive_float(value: Any, name: str, *, allow_zero: bool = False) -> float:
    """A finite float, positive (or non-negative with ``allow_zero``)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number; got {value!r}")
    value = float(value)
    ok = np.isfinite(value) and (value >= 0 if allow_zero else value > 0)
    if not ok:
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be a finite number {bound}; got {value!r}")
    return value


def check_param_shapes(
    owner: str,
    params: Any,
    kind: type,
    shapes: Mapping[str, tuple[int, ...] | list[tuple[int, ...]]],
) -> None:
    """Parameters passed to ``fit`` for the model ``owner``: a ``kind`` whose fields have
    ``shapes`` (a list of shapes for a field holding a tuple of arrays, one per element).

    Raises ``TypeError`` for another container and ``ValueError`` for a wrong shape, both
    naming ``params`` and the field.
    """
    if not isinstance(params, kind):
        fields = getattr(kind, "_fields", None)
        listed = f" (fields {', '.join(fields)})" if fields else ""
        raise TypeError(
            f"params: {owner} takes its parameters as a {kind.__name__}{listed}; got a "
            f"{type(params).__name__}. Build them as {kind.__name__}(...) or start from a "
            "fit's result.params"
        )
    for field, shape in shapes.items():
        value = getattr(params, field)
        if isinstance(shape, list):
            if not isinstance(value, (tuple, list)) or len(value) != len(shape):
                got = len(value) if isinstance(value, (tuple, list)) else type(value).__name__
                raise ValueError(
                    f"params: field '{field}' must hold {len(shape)} arrays, one per item; "
                    f"got {got}"
                )
            elements = enumerate(zip(value, shape, strict=True))
            pairs = [(f"{field}[{i}]", v, s) for i, (v, s) in elements]
        else:
            pairs = [(field, value, shape)]
        for name, v, s in pairs:
            if np.shape(v) != tuple(s):
                raise ValueError(
                    f"params: field '{name}' has shape {np.shape(v)}, but {owner} with these "
                    f"data needs shape {tuple(s)}"
                )
