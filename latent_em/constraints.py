"""Parameter constraints: bijections between a constrained parameter and free reals.

The generic numerical M-step, SQUAREM acceleration and numerical standard errors all work
on one flat unconstrained vector. A model declares, for each free parameter field, which
constraint it satisfies; the field's trailing ``event_ndim`` axes form one constrained
object and any leading axes are a batch (for example ``Simplex()`` on a ``(K, C)`` array
is ``K`` probability vectors).

Every constraint satisfies ``unconstrain(constrain(u, shape)) == u`` (to round-off) and
``free_size(shape) == unconstrain(value).size``.

Examples
--------
>>> import numpy as np
>>> from latent_em.constraints import Simplex
>>> p = np.array([0.2, 0.3, 0.5])
>>> u = Simplex().unconstrain(p)
>>> u.shape
(2,)
>>> np.allclose(Simplex().constrain(u, p.shape), p)
True
"""

from __future__ import annotations

import dataclasses
import math
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any

import numpy as np
from scipy.special import expit, logit

__all__ = [
    "Constraint",
    "Real",
    "Positive",
    "Interval",
    "Simplex",
    "PositiveDefinite",
    "CholeskyCov",
    "Ordered",
    "flatten_params",
    "unflatten_params",
    "unflatten_params_vjp",
    "count_free_parameters",
    "constraint_violation",
    "get_field",
    "replace_fields",
]

_TINY = np.finfo(float).tiny


class Constraint(ABC):
    """A bijection from ``R^free_size`` onto a constrained set of arrays."""

    #: number of trailing axes that form one constrained object
    event_ndim: int = 0

    @abstractmethod
    def _free_event_size(self, event_shape: tuple[int, ...]) -> int: ...

    @abstractmethod
    def _unconstrain_events(self, value: np.ndarray) -> np.ndarray:
        """``value`` of shape (B, *event) -> (B, free_event_size)."""

    @abstractmethod
    def _constrain_events(self, u: np.ndarray, event_shape: tuple[int, ...]) -> np.ndarray:
        """``u`` of shape (B, free_event_size) -> (B, *event)."""

    def _constrain_vjp_events(
        self, u: np.ndarray, event_shape: tuple[int, ...], cotangent: np.ndarray
    ) -> np.ndarray:
        """Gradient w.r.t. ``u`` (B, free) of ``Σ cotangent * constrain(u)``."""
        raise NotImplementedError(
            f"{type(self).__name__} has no vector-Jacobian product; model-provided "
            "gradients cannot be used with it (finite differences still work)"
        )

    def _split(self, shape: tuple[int, ...]) -> tuple[int, tuple[int, ...]]:
        if len(shape) < self.event_ndim:
            raise ValueError(
                f"{type(self).__name__} needs arrays with at least {self.event_ndim} "
                f"dimension(s); got shape {shape}"
            )
        cut = len(shape) - self.event_ndim
        return math.prod(shape[:cut]), tuple(shape[cut:])

    def free_size(self, shape: tuple[int, ...]) -> int:
        """Number of free reals that parameterize an array of ``shape``."""
        batch, event = self._split(tuple(shape))
        return batch * self._free_event_size(event)

    def unconstrain(self, value: Any) -> np.ndarray:
        """Map a constrained array to a flat vector of free reals."""
        value = np.asarray(value, dtype=float)
        batch, event = self._split(value.shape)
        return self._unconstrain_events(value.reshape((batch, *event))).ravel()

    def constrain(self, u: Any, shape: tuple[int, ...]) -> np.ndarray:
        """Map a flat vector of free reals to a constrained array of ``shape``."""
        u = np.asarray(u, dtype=float)
        batch, event = self._split(tuple(shape))
        size = self._free_event_size(event)
        if u.size != batch * size:
            raise ValueError(f"expected {batch * size} free values for shape {shape}, got {u.size}")
        out = self._constrain_events(u.reshape(batch, size), event)
        return out.reshape(tuple(shape))

    def constrain_vjp(self, u: Any, shape: tuple[int, ...], cotangent: Any) -> np.ndarray:
        """Chain rule through :meth:`constrain`: ``∂/∂u Σ cotangent · constrain(u, shape)``.

        ``cotangent`` is the gradient of a scalar with respect to the constrained array
        (shape ``shape``, entries treated as independent); the result has ``u``'s shape.
        """
        u = np.asarray(u, dtype=float)
        batch, event = self._split(tuple(shape))
        size = self._free_event_size(event)
        g = np.asarray(cotangent, dtype=float)
        if g.shape != tuple(shape):
            raise ValueError(f"cotangent must have shape {tuple(shape)}; got {g.shape}")
        out = self._constrain_vjp_events(u.reshape(batch, size), event, g.reshape((batch, *event)))
        return out.ravel()

    def violation(self, value: Any) -> str | None:
        """Why ``value`` lies outside the constrained set, or ``None`` when it does not.

        A cheap check (no transform), tolerant of round-off and of the set's boundary
        (a probability of exactly 0, a zero rate): it catches parameters that are wrong,
        such as weights that do not sum to one or a negative variance. The base class
        (and :class:`Real`) accept every value; the other built-in constraints override
        it, and so may a user's own constraint.
        """
        return None

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def _round_off(value: np.ndarray) -> float:
    """Tolerance for round-off in a parameter computed in ``value``'s precision."""
    dtype: Any = value.dtype if np.issubdtype(value.dtype, np.floating) else np.float64
    return max(1e-9, 1e3 * float(np.finfo(dtype).eps))


def _where(value: np.ndarray, mask: np.ndarray) -> str:
    index = tuple(int(i) for i in np.argwhere(mask)[0])
    return f"{float(value[index])!r} at index {index if len(index) != 1 else index[0]}"


def _as_float_array(value: Any) -> np.ndarray | None:
    try:
        arr = np.asarray(value)
    except Exception:  # a ragged or otherwise unconvertible value
        return None
    if not (np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.bool_)):
        return None
    return arr


class Real(Constraint):
    """Unconstrained real numbers (the identity map)."""

    def _free_event_size(self, event_shape: tuple[int, ...]) -> int:
        return 1

    def _unconstrain_events(self, value: np.ndarray) -> np.ndarray:
        return value.copy()

    def _constrain_events(self, u: np.ndarray, event_shape: tuple[int, ...]) -> np.ndarray:
        return u.copy()

    def _constrain_vjp_events(
        self, u: np.ndarray, event_shape: tuple[int, ...], cotangent: np.ndarray
    ) -> np.ndarray:
        return cotangent.reshape(u.shape).copy()


class Positive(Constraint):
    """Strictly positive numbers, ``x = exp(u)``."""

    def _free_event_size(self, event_shape: tuple[int, ...]) -> int:
        return 1

    def _unconstrain_events(self, value: np.ndarray) -> np.ndarray:
        return np.log(np.maximum(value, _TINY))

    def _constrain_events(self, u: np.ndarray, event_shape: tuple[int, ...]) -> np.ndarray:
        return np.exp(u)

    def violation(self, value: Any) -> str | None:
        """Negative entries (zero is accepted as the boundary)."""
        arr = _as_float_array(value)
        if arr is None:
            return f"expected numbers; got {type(value).__name__}"
        bad = arr < 0
        return f"entries must be positive; found {_where(arr, bad)}" if np.any(bad) else None

    def _constrain_vjp_events(
        self, u: np.ndarray, event_shape: tuple[int, ...], cotangent: np.ndarray
    ) -> np.ndarray:
        return cotangent.reshape(u.shape) * np.exp(u)


@dataclasses.dataclass(frozen=True)
class Interval(Constraint):
    """Numbers in the open interval ``(low, high)``, ``x = low + (high - low) expit(u)``."""

    low: float = 0.0
    high: float = 1.0

    def __post_init__(self) -> None:
        if not (np.isfinite(self.low) and np.isfinite(self.high) and self.low < self.high):
            raise ValueError(f"Interval needs finite low < high; got ({self.low}, {self.high})")

    def _free_event_size(self, event_shape: tuple[int, ...]) -> int:
        return 1

    def _unconstrain_events(self, value: np.ndarray) -> np.ndarray:
        scaled = (value - self.low) / (self.high - self.low)
        eps = np.finfo(float).eps
        return logit(np.clip(scaled, eps, 1.0 - eps))

    def _constrain_events(self, u: np.ndarray, event_shape: tuple[int, ...]) -> np.ndarray:
        return self.low + (self.high - self.low) * expit(u)

    def _constrain_vjp_events(
        self, u: np.ndarray, event_shape: tuple[int, ...], cotangent: np.ndarray
    ) -> np.ndarray:
        s = expit(u)
        return cotangent.reshape(u.shape) * (self.high - self.low) * s * (1.0 - s)

    def violation(self, value: Any) -> str | None:
        """Entries outside ``[low, high]`` (the end points are accepted)."""
        arr = _as_float_array(value)
        if arr is None:
            return f"expected numbers; got {type(value).__name__}"
        slack = _round_off(arr) * (self.high - self.low)
        bad = (arr < self.low - slack) | (arr > self.high + slack)
        if np.any(bad):
            return f"entries must lie in [{self.low}, {self.high}]; found {_where(arr, bad)}"
        return None

    def __repr__(self) -> str:
        return f"Interval({self.low}, {self.high})"


class Simplex(Constraint):
    """Probability vectors along the last axis (additive log-ratio transform).

    ``u_i = log(p_i / p_last)`` for all but the last entry, so a ``C``-vector has ``C - 1``
    free values; zero probabilities are clipped to the smallest positive float.
    """

    event_ndim = 1

    def _free_event_size(self, event_shape: tuple[int, ...]) -> int:
        return event_shape[0] - 1

    def _unconstrain_events(self, value: np.ndarray) -> np.ndarray:
        logp = np.log(np.maximum(value, _TINY))
        return logp[:, :-1] - logp[:, -1:]

    def _constrain_events(self, u: np.ndarray, event_shape: tuple[int, ...]) -> np.ndarray:
        full = np.concatenate([u, np.zeros((u.shape[0], 1))], axis=1)
        # a plain numpy softmax: this runs in the numerical M-step's inner loop, where
        # scipy's logsumexp costs more than the model's log_joint
        e = np.exp(full - full.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    def violation(self, value: Any) -> str | None:
        """Negative entries, or a vector along the last axis that does not sum to one."""
        arr = _as_float_array(value)
        if arr is None:
            return f"expected numbers; got {type(value).__name__}"
        if arr.ndim < 1 or arr.shape[-1] == 0:
            return f"expected probability vectors along the last axis; got shape {arr.shape}"
        tol = _round_off(arr) * arr.shape[-1]
        negative = arr < -tol
        if np.any(negative):
            return f"probabilities must be >= 0; found {_where(arr, negative)}"
        sums = arr.sum(axis=-1)
        off = np.abs(sums - 1.0) > tol
        if np.any(off):
            index = tuple(int(i) for i in np.argwhere(off)[0])
            where = f" (vector {index if len(index) != 1 else index[0]})" if index else ""
            return (
                "probabilities must sum to one along the last axis; they sum to "
                f"{float(sums[index])!r}{where}"
            )
        return None

    def _constrain_vjp_events(
        self, u: np.ndarray, event_shape: tuple[int, ...], cotangent: np.ndarray
    ) -> np.ndarray:
        # softmax Jacobian: ∂p_j/∂u_i = p_j (δ_ij - p_i), i < C - 1
        p = self._constrain_events(u, event_shape)
        mean_g = np.sum(cotangent * p, axis=1, keepdims=True)
        return (p * (cotangent - mean_g))[:, :-1]


class PositiveDefinite(Constraint):
    """Symmetric positive-definite matrices over the last two axes.

    Parameterized by the Cholesky factor ``L`` of ``Σ = L Lᵀ``: the log of its diagonal
    and its strictly lower triangle, ``D (D + 1) / 2`` free values per matrix.
    """

    event_ndim = 2

    def _free_event_size(self, event_shape: tuple[int, ...]) -> int:
        d = event_shape[0]
        if event_shape != (d, d):
            raise ValueError(f"positive-definite matrices must be square; got {event_shape}")
        return d * (d + 1) // 2

    def violation(self, value: Any) -> str | None:
        """Matrices that are not square, not symmetric, or not positive definite."""
        arr = _as_float_array(value)
        if arr is None:
            return f"expected numbers; got {type(value).__name__}"
        if arr.ndim < 2 or arr.shape[-1] != arr.shape[-2]:
            return f"expected square matrices over the last two axes; got shape {arr.shape}"
        mats = arr.reshape((-1, *arr.shape[-2:])).astype(float)
        scale = np.maximum(np.abs(mats).max(axis=(1, 2)), np.finfo(float).tiny)
        asym = np.abs(mats - np.swapaxes(mats, 1, 2)).max(axis=(1, 2)) / scale
        tol = _round_off(arr)
        for i, m in enumerate(mats):
            if asym[i] > tol * 1e3:
                return f"matrix {i} is not symmetric (relative asymmetry {asym[i]:.3g})"
            try:
                np.linalg.cholesky(m)
            except np.linalg.LinAlgError:
                # positive semi-definite to round-off is accepted; a clearly negative
                # eigenvalue is not
                smallest = float(np.linalg.eigvalsh(0.5 * (m + m.T))[0])
                if smallest < -tol * scale[i] or not np.isfinite(smallest):
                    return (
                        f"matrix {i} is not positive definite (smallest eigenvalue {smallest:.6g})"
                    )
        return None

    def _unconstrain_events(self, value: np.ndarray) -> np.ndarray:
        d = value.shape[-1]
        chol = np.linalg.cholesky(value)
        rows, cols = np.tril_indices(d, -1)
        diag = np.log(np.diagonal(chol, axis1=1, axis2=2))
        return np.concatenate([diag, chol[:, rows, cols]], axis=1)

    def _constrain_events(self, u: np.ndarray, event_shape: tuple[int, ...]) -> np.ndarray:
        d = event_shape[0]
        chol = np.zeros((u.shape[0], d, d))
        idx = np.arange(d)
        chol[:, idx, idx] = np.exp(u[:, :d])
        rows, cols = np.tril_indices(d, -1)
        chol[:, rows, cols] = u[:, d:]
        return chol @ np.swapaxes(chol, 1, 2)

    def _constrain_vjp_events(
        self, u: np.ndarray, event_shape: tuple[int, ...], cotangent: np.ndarray
    ) -> np.ndarray:
        # Σ = L Lᵀ with independent entries: ∂f/∂L = (G + Gᵀ) L, then the chain rule
        # through L_ii = exp(u_i) (diagonal) and the identity (strict lower triangle)
        d = event_shape[0]
        chol = np.zeros((u.shape[0], d, d))
        idx = np.arange(d)
        chol[:, idx, idx] = np.exp(u[:, :d])
        rows, cols = np.tril_indices(d, -1)
        chol[:, rows, cols] = u[:, d:]
        g_chol = (cotangent + np.swapaxes(cotangent, 1, 2)) @ chol
        diag = g_chol[:, idx, idx] * chol[:, idx, idx]
        return np.concatenate([diag, g_chol[:, rows, cols]], axis=1)


#: Alias: a covariance matrix parameterized through its Cholesky factor.
CholeskyCov = PositiveDefinite


class Ordered(Constraint):
    """Strictly increasing vectors along the last axis.

    ``u_0 = x_0`` and ``u_i = log(x_i - x_{i-1})``; useful to break label symmetry.
    """

    event_ndim = 1

    def _free_event_size(self, event_shape: tuple[int, ...]) -> int:
        return event_shape[0]

    def _unconstrain_events(self, value: np.ndarray) -> np.ndarray:
        gaps = np.diff(value, axis=1)
        return np.concatenate([value[:, :1], np.log(np.maximum(gaps, _TINY))], axis=1)

    def _constrain_events(self, u: np.ndarray, event_shape: tuple[int, ...]) -> np.ndarray:
        return np.concatenate([u[:, :1], u[:, :1] + np.cumsum(np.exp(u[:, 1:]), axis=1)], axis=1)

    def violation(self, value: Any) -> str | None:
        """Vectors that decrease somewhere along the last axis."""
        arr = _as_float_array(value)
        if arr is None:
            return f"expected numbers; got {type(value).__name__}"
        if arr.ndim < 1:
            return f"expected vectors along the last axis; got shape {arr.shape}"
        gaps = np.diff(arr, axis=-1)
        bad = gaps < 0
        if np.any(bad):
            return f"entries must increase along the last axis; a step is {_where(gaps, bad)}"
        return None

    def _constrain_vjp_events(
        self, u: np.ndarray, event_shape: tuple[int, ...], cotangent: np.ndarray
    ) -> np.ndarray:
        # x_i = u_0 + Σ_{k=1..i} exp(u_k): u_0 moves every x_i, u_k moves x_k, x_{k+1}, ...
        tail = np.cumsum(cotangent[:, ::-1], axis=1)[:, ::-1]
        return np.concatenate([tail[:, :1], tail[:, 1:] * np.exp(u[:, 1:])], axis=1)


def get_field(params: Any, name: str) -> Any:
    """Read one field of a parameter container (NamedTuple, dataclass or dict)."""
    if isinstance(params, Mapping):
        return params[name]
    return getattr(params, name)


def replace_fields(params: Any, updates: Mapping[str, Any]) -> Any:
    """A copy of ``params`` with some fields replaced (the original is not changed)."""
    if isinstance(params, Mapping):
        return {**params, **updates}
    if hasattr(params, "_replace"):
        return params._replace(**updates)
    if dataclasses.is_dataclass(params):
        return dataclasses.replace(params, **updates)  # type: ignore[type-var]
    raise TypeError(f"cannot replace fields of a {type(params).__name__}; use a NamedTuple")


def _is_sequence_field(value: Any) -> bool:
    # a field may hold a tuple of arrays of different shapes (e.g. one probability
    # table per categorical item); the constraint then applies to each element
    return isinstance(value, (tuple, list))


def flatten_params(params: Any, constraints: Mapping[str, Constraint]) -> np.ndarray:
    """Concatenate the unconstrained values of the constrained fields, in ``constraints`` order.

    A field holding a tuple of arrays is flattened element by element.
    """
    parts: list[np.ndarray] = []
    for name, c in constraints.items():
        value = get_field(params, name)
        if _is_sequence_field(value):
            parts.extend(c.unconstrain(v) for v in value)
        else:
            parts.append(c.unconstrain(value))
    return np.concatenate(parts) if parts else np.zeros(0)


def unflatten_params(u: np.ndarray, template: Any, constraints: Mapping[str, Constraint]) -> Any:
    """Inverse of :func:`flatten_params`; unconstrained fields are copied from ``template``."""
    u = np.asarray(u, dtype=float)
    updates: dict[str, Any] = {}
    start = 0
    for name, c in constraints.items():
        value = get_field(template, name)
        elements = list(value) if _is_sequence_field(value) else [value]
        rebuilt = []
        for element in elements:
            shape = np.shape(element)
            size = c.free_size(shape)
            rebuilt.append(c.constrain(u[start : start + size], shape))
            start += size
        updates[name] = type(value)(rebuilt) if _is_sequence_field(value) else rebuilt[0]
    if start != u.size:
        raise ValueError(f"expected {start} free values, got {u.size}")
    return replace_fields(template, updates)


def unflatten_params_vjp(
    u: np.ndarray, template: Any, constraints: Mapping[str, Constraint], cotangents: Any
) -> np.ndarray:
    """Gradient w.r.t. ``u`` of a scalar whose gradient w.r.t. the parameters is known.

    ``cotangents`` holds, for every constrained field (read like parameters: a mapping or a
    NamedTuple), the gradient with respect to that field's array; the result is the chain
    rule through :func:`unflatten_params`, in the same order as :func:`flatten_params`.
    """
    u = np.asarray(u, dtype=float)
    parts: list[np.ndarray] = []
    start = 0
    for name, c in constraints.items():
        value = get_field(template, name)
        grad = get_field(cotangents, name)
        elements = list(value) if _is_sequence_field(value) else [value]
        grads = list(grad) if _is_sequence_field(value) else [grad]
        for element, g in zip(elements, grads, strict=True):
            shape = np.shape(element)
            size = c.free_size(shape)
            parts.append(c.constrain_vjp(u[start : start + size], shape, g))
            start += size
    if start != u.size:
        raise ValueError(f"expected {start} free values, got {u.size}")
    return np.concatenate(parts) if parts else np.zeros(0)


def constraint_violation(params: Any, constraints: Mapping[str, Constraint]) -> str | None:
    """The first constrained field of ``params`` that violates its constraint, in words.

    ``None`` when every field satisfies :meth:`Constraint.violation`. A missing field is
    a violation too. A field holding a tuple of arrays is checked element by element.
    """
    for name, c in constraints.items():
        try:
            value = get_field(params, name)
        except (KeyError, AttributeError, TypeError):
            return (
                f"field '{name}' is missing: the parameters ({type(params).__name__}) have no "
                f"field of that name, which the constraints declare"
            )
        elements = list(value) if _is_sequence_field(value) else [value]
        for i, element in enumerate(elements):
            problem = c.violation(element)
            if problem is not None:
                where = f"'{name}[{i}]'" if _is_sequence_field(value) else f"'{name}'"
                return f"field {where} violates {c!r}: {problem}"
    return None


def count_free_parameters(params: Any, constraints: Mapping[str, Constraint]) -> int:
    """Number of free parameters implied by the constraints."""
    total = 0
    for name, c in constraints.items():
        value = get_field(params, name)
        elements = value if _is_sequence_field(value) else [value]
        total += sum(c.free_size(np.shape(v)) for v in elements)
    return int(total)
