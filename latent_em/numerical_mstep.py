"""Generic numerical M-step for models that state only ``log_joint`` over an enumerable z.

The M-step maximizes the expected complete-data log-likelihood

    Q(θ) = Σ_n w_n Σ_j q_n(z_j) log p(x_n, z_j | θ)  (+ log p(θ) for MAP-EM)

over the model's unconstrained parameterization (its ``constraints``), warm-started at
the current θ. Parameter fields absent from ``constraints`` are held fixed.

Optimizer
---------
The default (``method="quasi-newton"``) is a BFGS method of this module with an Armijo
backtracking line search (:func:`_quasi_newton`), run through ``scipy.optimize.minimize``
as a custom method. The driver gives every fit one ``state`` dictionary, and each M-step
starts from the inverse-Hessian approximation the previous one ended with (``Q``
changes little from one EM iteration to the next): late in a fit an M-step then takes
2-3 quasi-Newton steps where L-BFGS restarted from scratch took 8-10. The curvature is
dropped for a steepest-descent step whenever it does not give a descent direction or its
line search fails. The M-step stays exact: it stops on L-BFGS-B's two tests with the
same tolerances (:func:`optimizer_tolerances`): the largest entry of a central (or model)
gradient ``<= gtol``, or a relative decrease of ``Q`` ``<= ftol`` (a step whose predicted
decrease is below ``ftol`` is the last one; when ``Q`` cannot resolve it, it is taken
only if the directional derivative shrank along it). ``method="L-BFGS-B"`` is scipy's
L-BFGS-B, restarted at every M-step, or preconditioned by ``state`` (below).

Q before and after the M-step are computed by the optimizer's own objective; the step
is accepted if ``Q`` did not fall by more than its round-off (``TIE_ULPS`` units of
``eps |Q|``).

Gradient
--------
A model may provide

    ``log_joint_grad(params, x, z, weights) -> gradients``

returning, for every constrained field, ``Σ_n weights_n ∂ log p(x_n, z_n | θ) / ∂field``
as an array of the field's shape (a mapping or a NamedTuple keyed by field name; array
entries are treated as independent, so a covariance gets the plain elementwise
derivative). The M-step calls it once per support point with ``weights = w ⊙ q[:, j]`` and
applies the chain rule through the constraints. A model with ``log_prior`` must then also
provide ``log_prior_grad(params)`` (same layout), or the finite-difference path is used.

Without a model gradient, finite differences are used: forward differences (``p``
evaluations of ``Q`` for ``p`` free parameters) while the gradient's largest entry is at
least ``1000 · FORWARD_ERROR_FACTOR · sqrt(eps) (1 + |Q / Σw|)`` (10⁴ times their error),
central ones (``2 p``) after that; the gradient test and the last step always use
central differences, so where the M-step ends depends on a forward difference's error
only through the steps after it. Each evaluation costs ``m`` calls of
``log_joint`` over the ``n`` rows (``m`` support points), except that, once per fit, the
M-step finds which support points each free parameter moves at all
(:func:`_dependency_pattern`: the component parameters of a mixture move one support
point each) and evaluates only those for its perturbations; the terms of the others
cancel exactly. The pattern is found at the first M-step's θ with a relative move of
``DEPENDENCY_STEP`` (1e-3) of each parameter in both directions: a ``log_joint`` whose
dependence on a parameter switches on only at other parameter values is not supported
(give ``log_joint_grad`` then). The weighted responsibilities are formed once per
M-step. That is fine for tens of parameters; beyond a few hundred provide
``log_joint_grad``.

Batched finite differences
--------------------------
A model may also provide

    ``log_joint_batch(params_list, x, z) -> (B, n) array``

returning ``log_joint(params_list[b], x, z)`` as row ``b`` for a list of ``B``
parameter values (see :class:`latent_em.protocols.BatchedLogJoint`). The M-step then
evaluates ``Q`` at θ and at all ``p`` (forward) or ``2 p`` (central) perturbations in one
call per support point and chunk, with the same values (to round-off) as the loop. It
evaluates every support point at every perturbation, so the loop, which skips the
support points a parameter does not move, can be faster (benchmarks/bench_numerical_mstep.py).

Preconditioned L-BFGS (``method="L-BFGS-B"``)
---------------------------------------------
Given a ``state`` dictionary, the inverse-Hessian approximation L-BFGS ended with is kept
there, and the next M-step runs L-BFGS in the variables ``v`` of ``u = u₀ + C v``, with
``C Cᵀ`` that approximation. If a preconditioned run stops without converging, L-BFGS
finishes from its end point without the preconditioner. EM tolerances below
``PRECONDITION_MIN_TOL`` (1e-10) switch the preconditioner off: it moved EM's stopping
iteration at ``tol=1e-14``, and whole data and chunks agreed only to 2e-10.

Inexact M-steps
---------------
``numerical_m_step(..., forcing=η)`` stops each M-step once the gradient has fallen to
``η`` times its size at the current θ (a generalized EM step, still accepted only when
``Q`` rose). The default ``η = 0`` keeps the M-step exact; the driver uses the default
(inexact M-steps end where a forward difference's error puts them, and whole data and
chunks then agreed only to 1e-8).

Generalized EM
--------------
If the optimizer ends below ``Q`` at the current θ (it can, with inexact gradients or a
stalled line search), the current θ is kept so the log-likelihood stays monotone, and the
returned :class:`NumericalMStepInfo` says so; the driver records it as an
:class:`~latent_em.Event` of the fit.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np

from ._lazy import lazy_functions
from ._tree import tree_add
from .constraints import (
    flatten_params,
    get_field,
    replace_fields,
    unflatten_params,
    unflatten_params_vjp,
)
from .exceptions import ModelContractError
from .posteriors import chunks, enumerate_log_joint, log_prior

minimize, OptimizeResult = lazy_functions("scipy.optimize", "minimize", "OptimizeResult")

__all__ = [
    "NumericalMStepInfo",
    "expected_complete_log_likelihood",
    "numerical_m_step",
    "objective_and_gradient",
    "optimizer_tolerances",
    "uses_batched_log_joint",
    "uses_model_gradient",
    "PRECONDITION_MAX_PARAMETERS",
]


@dataclasses.dataclass(frozen=True)
class NumericalMStepInfo:
    """What one numerical M-step did.

    Attributes
    ----------
    accepted : bool
        Whether the optimizer's parameters were taken (False: the current θ was kept).
    q_before : float
        ``Q`` (plus log-prior) at the current θ.
    q_after : float
        ``Q`` at the optimizer's end point (``-inf`` when it was not finite).
    n_iter : int
        Optimizer iterations (quasi-Newton or L-BFGS steps).
    n_evaluations : int
        Evaluations of ``Q`` by the optimizer (finite-difference calls excluded).
    success : bool
        Whether the optimizer reported convergence.
    optimizer_message : str
        The optimizer's termination message.
    gradient : str
        ``"model"`` (``log_joint_grad``), ``"finite differences"`` or
        ``"batched finite differences"`` (``log_joint_batch``).
    """

    accepted: bool
    q_before: float
    q_after: float
    n_iter: int
    n_evaluations: int
    success: bool
    optimizer_message: str
    gradient: str

    def messages(self) -> tuple[str, ...]:
        """Messages for the fit's event log: a kept θ, or an optimizer that did not converge."""
        if self.accepted:
            if self.success:
                return ()
            return (
                "numerical M-step: the optimizer stopped without converging "
                f"({self.gradient} gradient, {self.n_iter} iterations, "
                f"'{self.optimizer_message}'); its point was taken since Q did not fall from "
                f"{self.q_before:.10g} to {self.q_after:.10g} (beyond round-off)",
            )
        return (
            "numerical M-step kept the previous parameters: the optimizer "
            f"({self.gradient} gradient, {self.n_iter} iterations, '{self.optimizer_message}') "
            f"ended at Q = {self.q_after:.10g}, not above Q = {self.q_before:.10g} at the "
            "current parameters",
        )


def uses_model_gradient(model: Any) -> bool:
    """Whether the numerical M-step uses the model's analytic gradient (see module doc)."""
    if not callable(getattr(model, "log_joint_grad", None)):
        return False
    has_prior = callable(getattr(model, "log_prior", None))
    return not has_prior or callable(getattr(model, "log_prior_grad", None))


def uses_batched_log_joint(model: Any) -> bool:
    """Whether finite differences evaluate all perturbations in one ``log_joint_batch`` call."""
    return callable(getattr(model, "log_joint_batch", None))


def expected_complete_log_likelihood(
    model: Any,
    params: Any,
    x: Any,
    posteriors: list[np.ndarray],
    weights: np.ndarray,
    chunk_size: int | None,
) -> float:
    """``Q(θ)``: the posterior-weighted complete-data log-likelihood (plus log-prior).

    ``posteriors`` holds one ``(n_chunk, m)`` responsibility array per chunk of
    ``chunk_size`` rows.
    """

    total = 0.0
    for sl, post in zip(chunks(len(weights), chunk_size), posteriors, strict=True):
        wc = weights[sl]
        table = enumerate_log_joint(model, params, x[sl], wc.shape[0])
        # 0 · log 0 = 0: a support point with zero responsibility does not count
        with np.errstate(invalid="ignore"):
            terms = np.where(post > 0, post * table, 0.0)
        total += float(np.dot(wc, terms.sum(axis=1)))
    return total + log_prior(model, params)


def _expected_gradient_tree(
    model: Any,
    params: Any,
    x: Any,
    posteriors: list[np.ndarray],
    weights: np.ndarray,
    chunk_size: int | None,
) -> Any:
    """``∂Q/∂θ`` as a tree of field gradients, from ``log_joint_grad`` (and ``log_prior_grad``)."""
    support = np.asarray(model.latent_support())
    total: Any = None
    for sl, post in zip(chunks(len(weights), chunk_size), posteriors, strict=True):
        wc = weights[sl]
        n = wc.shape[0]
        for j, s in enumerate(support):
            z = np.broadcast_to(s, (n, *np.shape(s)))
            total = tree_add(total, model.log_joint_grad(params, x[sl], z, wc * post[:, j]))
    if callable(getattr(model, "log_prior", None)):
        total = tree_add(total, model.log_prior_grad(params))
    return total


def _batched_q(
    model: Any,
    candidates: list[Any],
    x: Any,
    posteriors: list[np.ndarray],
    weights: np.ndarray,
    chunk_size: int | None,
) -> tuple[float, np.ndarray]:
    """``Q`` at the first candidate and ``Q(c_b) - Q(c_0)`` at every candidate ``c_b``.

    One ``log_joint_batch`` call per support point and chunk. The differences are summed
    from the elementwise differences ``log p(x_n, z | c_b) - log p(x_n, z | c_0)``, so
    their round-off scales with the differences, not with ``|Q|``: the finite-difference
    gradient is more accurate than one from differences of two sums (the loop's).
    """
    support = np.asarray(model.latent_support())
    b = len(candidates)
    q0 = 0.0
    deltas = np.zeros(b)
    for sl, post in zip(chunks(len(weights), chunk_size), posteriors, strict=True):
        wc = weights[sl]
        n = wc.shape[0]
        columns = []
        for s in support:
            z = np.broadcast_to(s, (n, *np.shape(s)))
            table = np.asarray(model.log_joint_batch(candidates, x[sl], z), dtype=float)
            if table.shape != (b, n):
                raise ModelContractError(
                    f"{type(model).__name__}.log_joint_batch returned shape {table.shape}; "
                    f"expected ({b}, {n}): one row per parameter value, one column per row of x"
                )
            columns.append(table)
        tables = np.stack(columns, axis=2)  # (B, n, m)
        # as in expected_complete_log_likelihood (the same sums in the same order):
        # 0 · log 0 = 0, a support point with zero responsibility does not count
        positive = post > 0
        q0 += float(np.dot(wc, np.where(positive, post * tables[0], 0.0).sum(axis=1)))
        if np.all(np.isfinite(tables[:, positive])):
            diff = np.where(positive, post * (tables - tables[:1]), 0.0)
            deltas += diff.sum(axis=2) @ wc
        else:  # a -inf (or NaN) entry: differences of the sums
            totals = np.where(positive, post * tables, 0.0).sum(axis=2) @ wc
            deltas += totals - totals[0]
    if callable(getattr(model, "log_prior", None)):
        priors = np.array([log_prior(model, c) for c in candidates])
        q0 += float(priors[0])
        deltas += priors - priors[0]
    return q0, deltas


def _batched_q_sparse(
    model: Any,
    candidates: list[Any],
    moves: np.ndarray,
    columns: list[tuple[Any, list[tuple[np.ndarray, np.ndarray, np.ndarray]]]],
    has_prior: bool,
) -> tuple[float, np.ndarray]:
    """:func:`_batched_q` evaluating, per support point ``j``, only the first candidate and
    the candidates ``b`` with ``moves[b - 1, j]`` (the others' differences are 0 there).

    ``columns`` is :func:`_weighted_columns`; the same sums as :func:`_batched_q`.
    """
    b = len(candidates)
    q0 = 0.0
    deltas = np.zeros(b)
    for xc, cols in columns:
        for j, (z, coef, positive) in enumerate(cols):
            rows = 1 + np.flatnonzero(moves[:, j])
            subset = [candidates[0]] + [candidates[r] for r in rows]
            n = coef.shape[0]
            table = np.asarray(model.log_joint_batch(subset, xc, z), dtype=float)
            if table.shape != (len(subset), n):
                raise ModelContractError(
                    f"{type(model).__name__}.log_joint_batch returned shape {table.shape}; "
                    f"expected ({len(subset)}, {n}): one row per parameter value, one column "
                    "per row of x"
                )
            # 0 · log 0 = 0: a support point with zero responsibility does not count
            q0 += float(np.sum(np.where(positive, coef * table[0], 0.0)))
            if np.all(np.isfinite(table[:, positive])):
                deltas[rows] += np.where(positive, table[1:] - table[:1], 0.0) @ coef
            else:  # a -inf (or NaN) entry: differences of the sums
                totals = np.where(positive, coef * table, 0.0).sum(axis=1)
                deltas[rows] += totals[1:] - totals[0]
    if has_prior:
        priors = np.array([log_prior(model, c) for c in candidates])
        q0 += float(priors[0])
        deltas += priors - priors[0]
    return q0, deltas


def optimizer_tolerances(tol: float | None) -> dict[str, float]:
    """L-BFGS's ``ftol`` and ``gtol`` for an EM run with convergence tolerance ``tol``.

    Well below scipy's defaults (``ftol`` 2e-9 leaves ~1e-5 relative error in θ): the
    M-step should land on the maximizer, not near it. They follow ``tol`` (the change of
    the objective per unit weight at which EM stops) downwards: the optimizer works on
    ``Q`` per unit weight, and a gradient tolerance above ``tol`` ends the M-step at its
    starting point once EM is within about ``gtol / curvature`` of the fixed point, so
    EM would stall there however small ``tol`` is (θ of the DLR linkage example stalled
    2e-9 from the maximum). ``gtol`` stops at ``1e-13``, about the accuracy of a
    finite-difference gradient; ``ftol`` (a relative decrease of ``Q``, which leaves an
    error of about its square root in θ) follows ``tol²`` down to machine epsilon.
    """
    ftol, gtol = 1e-13, 1e-9
    if tol is not None:
        ftol = min(ftol, max(float(tol) ** 2, float(np.finfo(float).eps)))
        gtol = min(gtol, max(float(tol), 1e-13))
    return {"ftol": ftol, "gtol": gtol}


def _weighted_columns(
    model: Any, x: Any, posteriors: list[np.ndarray], weights: np.ndarray, chunk_size: int | None
) -> list[tuple[Any, list[tuple[np.ndarray, np.ndarray, np.ndarray]]]]:
    """Per chunk: its rows of ``x`` and, per support point, ``(z, w ⊙ q[:, j], q[:, j] > 0)``.

    Computed once per M-step, so that each evaluation of ``Q`` is ``m`` calls of
    ``log_joint`` and ``m`` dot products.
    """
    support = np.asarray(model.latent_support())
    out = []
    for sl, post in zip(chunks(len(weights), chunk_size), posteriors, strict=True):
        wc = weights[sl]
        n = wc.shape[0]
        columns = []
        for j, s in enumerate(support):
            z = np.broadcast_to(s, (n, *np.shape(s)))
            columns.append((z, wc * post[:, j], post[:, j] > 0))
        out.append((x[sl], columns))
    return out


def _unflattener(template: Any, constraints: Any) -> Callable[[np.ndarray], Any]:
    """:func:`unflatten_params` for one template, its field layout worked out once."""
    plan = []
    start = 0
    for name, c in constraints.items():
        value = get_field(template, name)
        if isinstance(value, (tuple, list)):  # a tuple of arrays: the general path

            def general(u: np.ndarray) -> Any:
                return unflatten_params(u, template, constraints)

            return general
        shape = np.shape(value)
        size = c.free_size(shape)
        plan.append((name, c, slice(start, start + size), shape))
        start += size

    # the last constrained value of each field, keyed by its free values: a finite
    # difference moves one of them, so the other fields need not be transformed again
    cache: dict[str, tuple[bytes, np.ndarray]] = {}

    def field(name: str, c: Any, free: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
        key = free.tobytes()
        hit = cache.get(name)
        if hit is not None and hit[0] == key:
            return hit[1]
        value = c.constrain(free, shape)
        cache[name] = (key, value)
        return value

    def fast(u: np.ndarray) -> Any:
        u = np.asarray(u, dtype=float)
        if u.size != start:
            raise ValueError(f"expected {start} free values, got {u.size}")
        return replace_fields(
            template, {name: field(name, c, u[sl], sh) for name, c, sl, sh in plan}
        )

    return fast


def _column_values(
    model: Any,
    params: Any,
    columns: list[tuple[Any, list[tuple[np.ndarray, np.ndarray, np.ndarray]]]],
    which: np.ndarray,
) -> np.ndarray:
    """``Q_j(θ) = Σ_n w_n q_nj log p(x_n, s_j | θ)`` for the support points ``which``
    selects (0 for the others)."""
    out = np.zeros(which.shape[0])
    for xc, cols in columns:
        for j, (z, coef, positive) in enumerate(cols):
            if not which[j]:
                continue
            lj = np.asarray(model.log_joint(params, xc, z), dtype=float)
            value = float(np.dot(coef, lj))
            if not np.isfinite(value):
                # 0 · log 0 = 0: a support point with zero responsibility does not count
                value = float(np.sum(np.where(positive, coef * lj, 0.0)))
            out[j] += value
    return out


def _dependency_pattern(
    model: Any,
    params: Any,
    constraints: Any,
    columns: list[tuple[Any, list[tuple[np.ndarray, np.ndarray, np.ndarray]]]],
) -> np.ndarray:
    """``(p, m)``: whether ``log_joint`` at support point ``j`` changes at all (on any row)
    when free parameter ``i`` moves by ``±DEPENDENCY_STEP`` (relative) from ``params``."""
    unflatten = _unflattener(params, constraints)
    u = flatten_params(params, constraints)

    def tables(v: np.ndarray) -> list[list[np.ndarray]]:
        with np.errstate(all="ignore"):
            candidate = unflatten(v)
            return [
                [np.asarray(model.log_joint(candidate, xc, z), dtype=float) for z, _, _ in cols]
                for xc, cols in columns
            ]

    base = tables(u)
    m = len(columns[0][1]) if columns else 0
    pattern = np.zeros((u.size, m), dtype=bool)
    for i in range(u.size):
        for sign in (1.0, -1.0):
            v = u.copy()
            v[i] += sign * DEPENDENCY_STEP * max(1.0, abs(u[i]))
            for chunk_base, chunk in zip(base, tables(v), strict=True):
                for j, (a, b) in enumerate(zip(chunk_base, chunk, strict=True)):
                    if not np.array_equal(a, b, equal_nan=True):
                        pattern[i, j] = True
    return pattern


def _objective_parts(
    model: Any,
    params: Any,
    x: Any,
    posteriors: list[np.ndarray],
    weights: np.ndarray,
    chunk_size: int | None,
    gradient: str | None = None,
    dependency: np.ndarray | None = None,
) -> tuple[
    Callable[[np.ndarray], float],
    Callable[..., tuple[float, np.ndarray]],
    str,
]:
    """``value(u)`` (``-Q(θ(u)) / Σw``), ``value_and_gradient(u, value_at_u, forward)`` and
    the gradient's name (see :func:`objective_and_gradient`).

    ``value_and_gradient`` takes the value at ``u`` when the caller has it (forward
    differences reuse it) and returns the value with the gradient; ``forward=True`` asks
    the loop of finite differences for forward instead of central differences (``p``
    evaluations of ``Q`` instead of ``2 p``; the other gradients ignore it).

    ``dependency`` (``(p, m)`` booleans, see :func:`_dependency_pattern`) lets the finite
    differences (loop or batched) evaluate, for a perturbation of parameter ``i``, only the
    support points whose ``log_joint`` depends on it (the others' terms of ``Q`` cancel
    exactly).
    """
    constraints = model.constraints
    scale = float(weights.sum())
    if gradient is None:
        if uses_model_gradient(model):
            gradient = "model"
        elif uses_batched_log_joint(model):
            gradient = "batched finite differences"
        else:
            gradient = "finite differences"
    if gradient not in ("model", "batched finite differences", "finite differences"):
        raise ValueError(
            "gradient must be None, 'model', 'batched finite differences' or "
            f"'finite differences'; got {gradient!r}"
        )
    columns = _weighted_columns(model, x, posteriors, weights, chunk_size)
    unflatten = _unflattener(params, constraints)
    has_prior = callable(getattr(model, "log_prior", None))

    m = len(columns[0][1]) if columns else 0
    everything = np.ones(m, dtype=bool)
    last: dict[str, Any] = {}

    def evaluate(u: np.ndarray, which: np.ndarray) -> tuple[np.ndarray, float]:
        # a long trial step may overflow a transform (exp): Q is then -inf or NaN there
        with np.errstate(all="ignore"):
            candidate = unflatten(u)
            values = _column_values(model, candidate, columns, which)
            prior = log_prior(model, candidate) if has_prior else 0.0
        return values, prior

    def objective(u: np.ndarray) -> float:
        values, prior = evaluate(u, everything)
        last["u"], last["values"], last["prior"] = u.copy(), values, prior
        with np.errstate(invalid="ignore"):
            value = float(values.sum()) + prior
        return -value / scale if np.isfinite(value) else np.inf

    def change(
        up: tuple[np.ndarray, float], down: tuple[np.ndarray, float], which: np.ndarray
    ) -> float:
        # -(Q(up) - Q(down)) / Σw over the support points that moved; +inf when Q is not
        # finite at up (as objective's inf), -inf at down, NaN at both
        with np.errstate(invalid="ignore"):
            q_up = float(up[0][which].sum()) + up[1]
            q_down = float(down[0][which].sum()) + down[1]
            if np.isfinite(q_up) and np.isfinite(q_down):
                return -float((up[0][which] - down[0][which]).sum() + (up[1] - down[1])) / scale
        return (np.inf if not np.isfinite(q_up) else 0.0) - (
            np.inf if not np.isfinite(q_down) else 0.0
        )

    def plain_fd_gradient(
        u: np.ndarray, f: float | None, forward: bool
    ) -> tuple[float, np.ndarray]:
        grad = np.empty_like(u)
        if forward:
            steps = _fd_forward_steps(u)
            if f is None:
                f = objective(u)
            for i, h in enumerate(steps):
                up = u.copy()
                up[i] += h
                grad[i] = (objective(up) - f) / h
            return f, grad
        steps = _fd_steps(u)
        for i, h in enumerate(steps):
            up, down = u.copy(), u.copy()
            up[i] += h
            down[i] -= h
            grad[i] = (objective(up) - objective(down)) / (2.0 * h)
        return (objective(u) if f is None else f), grad

    def fd_gradient(
        u: np.ndarray, f: float | None, forward: bool = False
    ) -> tuple[float, np.ndarray]:
        grad = np.empty_like(u)
        if dependency is None:  # every support point moves with every parameter
            return plain_fd_gradient(u, f, forward)
        pattern = dependency
        if forward:
            steps = _fd_forward_steps(u)
            if f is None or "u" not in last or not np.array_equal(last["u"], u):
                f = objective(u)
            base = (last["values"], last["prior"])
            for i, h in enumerate(steps):
                up = u.copy()
                up[i] += h
                grad[i] = change(evaluate(up, pattern[i]), base, pattern[i]) / h
            return f, grad
        steps = _fd_steps(u)
        for i, h in enumerate(steps):
            up, down = u.copy(), u.copy()
            up[i] += h
            down[i] -= h
            grad[i] = change(evaluate(up, pattern[i]), evaluate(down, pattern[i]), pattern[i]) / (
                2.0 * h
            )
        return (objective(u) if f is None else f), grad

    def batched_q(candidates: list[Any], repeats: int) -> tuple[float, np.ndarray]:
        # candidates[0] is u; then `repeats` blocks of one perturbation per parameter
        if dependency is None:
            return _batched_q(model, candidates, x, posteriors, weights, chunk_size)
        moves = np.vstack([dependency] * repeats)
        return _batched_q_sparse(model, candidates, moves, columns, has_prior)

    def batched_value_and_gradient(
        u: np.ndarray, f: float | None, forward: bool = False
    ) -> tuple[float, np.ndarray]:
        p = u.size
        idx = np.arange(p)
        if forward:  # p + 1 parameter values: u and its forward perturbations
            steps = _fd_forward_steps(u)
            points = np.repeat(u[None, :], p + 1, axis=0)
            points[1 + idx, idx] += steps
            with np.errstate(all="ignore"):
                candidates = [unflatten(v) for v in points]
                q0, deltas = batched_q(candidates, 1)
                finite = np.isfinite(q0 + deltas)
            if not np.isfinite(q0):
                return np.inf, np.zeros(p)
            d = np.where(finite, -deltas / scale, np.inf)
            return (float(-q0 / scale) if f is None else f), d[1:] / steps
        steps = _fd_steps(u)
        points = np.repeat(u[None, :], 2 * p + 1, axis=0)
        points[1 + idx, idx] += steps
        points[1 + p + idx, idx] -= steps
        with np.errstate(all="ignore"):
            candidates = [unflatten(v) for v in points]
            q0, deltas = batched_q(candidates, 2)
            finite = np.isfinite(q0 + deltas)
        if not np.isfinite(q0):
            return np.inf, np.zeros(p)
        d = np.where(finite, -deltas / scale, np.inf)
        return float(-q0 / scale), (d[1 : p + 1] - d[p + 1 :]) / (2.0 * steps)

    def model_gradient(
        u: np.ndarray, f: float | None, forward: bool = False
    ) -> tuple[float, np.ndarray]:
        with np.errstate(all="ignore"):
            candidate = unflatten_params(u, params, constraints)
            tree = _expected_gradient_tree(model, candidate, x, posteriors, weights, chunk_size)
        try:
            grad = unflatten_params_vjp(u, candidate, constraints, tree)
        except (KeyError, AttributeError, ValueError) as exc:
            raise ModelContractError(
                f"{type(model).__name__}.log_joint_grad must return one gradient per "
                f"constrained field ({', '.join(constraints)}), each shaped like the "
                f"field: {exc}"
            ) from exc
        return (objective(u) if f is None else f), -grad / scale

    if gradient == "model":
        return objective, model_gradient, gradient
    if gradient == "batched finite differences":
        return objective, batched_value_and_gradient, gradient
    return objective, fd_gradient, gradient


def objective_and_gradient(
    model: Any,
    params: Any,
    x: Any,
    posteriors: list[np.ndarray],
    weights: np.ndarray,
    chunk_size: int | None,
    gradient: str | None = None,
) -> tuple[Callable[[np.ndarray], tuple[float, np.ndarray]], str]:
    """The function L-BFGS minimizes: ``u ↦ (-Q(θ(u)) / Σw, its gradient in u)``.

    ``θ(u)`` replaces the constrained fields of ``params`` by ``unflatten_params(u)``.
    ``gradient`` chooses how the gradient is computed: ``"model"`` (``log_joint_grad``),
    ``"batched finite differences"`` (``log_joint_batch``, one call per support point
    and chunk for the value and all ``2 p`` perturbations), ``"finite differences"``
    (a loop of ``2 p`` evaluations of ``Q``), or ``None`` for the first of these the
    model allows. Both finite-difference variants use the same central steps, so they
    agree to round-off. Returns the function and the name of the gradient used.
    """
    _, value_and_gradient, name = _objective_parts(
        model, params, x, posteriors, weights, chunk_size, gradient
    )

    def fun(u: np.ndarray) -> tuple[float, np.ndarray]:
        return value_and_gradient(u, None)

    return fun, name


def numerical_m_step(
    model: Any,
    params: Any,
    x: Any,
    posteriors: list[np.ndarray],
    weights: np.ndarray,
    chunk_size: int | None,
    tol: float | None = None,
    state: dict[str, Any] | None = None,
    forcing: float = 0.0,
    method: str = "quasi-newton",
) -> tuple[Any, NumericalMStepInfo]:
    """Maximize ``Q`` numerically from the current parameters (see module docstring).

    ``state`` is a dictionary kept by the caller from one M-step to the next of the same
    fit (empty at first); the M-step stores the optimizer's inverse-Hessian approximation
    there and starts the next M-step from it. Without it every M-step starts
    afresh.

    ``forcing`` (``η``, default 0: an exact M-step) ends the optimizer once the largest
    gradient entry has fallen to ``η`` times its value at the current θ (or below the
    gradient tolerance): an inexact, generalized EM step. Early in a fit this saves
    iterations; near the fixed point the gradient at θ is small and the step is
    exact again, so the fit reaches the same maximum, by a slightly different path.

    ``method`` is ``"quasi-newton"`` (the default: BFGS with a backtracking line search,
    its inverse Hessian carried in ``state``) or ``"L-BFGS-B"`` (scipy's, preconditioned
    by ``state``; the path before the default changed).

    Returns
    -------
    params : Any
        The maximizer found, or the current parameters when it is not better.
    info : NumericalMStepInfo
        Whether the step was accepted, ``Q`` before and after, optimizer diagnostics.
    """
    if not (np.isfinite(forcing) and 0.0 <= forcing < 1.0):
        raise ValueError(f"forcing must be in [0, 1); got {forcing!r}")
    if method not in ("quasi-newton", "L-BFGS-B"):
        raise ValueError(f"method must be 'quasi-newton' or 'L-BFGS-B'; got {method!r}")
    constraints = model.constraints
    u0 = flatten_params(params, constraints)
    tolerances = optimizer_tolerances(tol)
    scale = float(weights.sum())
    if method == "quasi-newton":
        # Q before and after from the optimizer's own objective (the same sums in the
        # same order as the values its line search compared)
        result, gradient_name, f0, value = _quasi_newton_m_step(
            model, params, x, posteriors, weights, chunk_size, u0, tolerances, state, forcing
        )
        u_end = np.asarray(result.x, dtype=float)
        q_current = float(-f0 * scale)
        f_end = getattr(result, "fun", None)
        x_end = getattr(result, "x_end", None)
        if f_end is None or x_end is None or not np.array_equal(u_end, x_end):
            f_end = value(u_end)
        q_new = -float(f_end) * scale
        candidate = unflatten_params(u_end, params, constraints)
        # a difference within the round-off of Q (a step f cannot resolve, which the
        # quasi-Newton method judges by the gradient) is a tie
        slack = float(TIE_ULPS * np.finfo(float).eps * abs(q_current))
    else:
        q_current = float(
            expected_complete_log_likelihood(model, params, x, posteriors, weights, chunk_size)
        )
        result, u_end, gradient_name = _lbfgs_m_step(
            model, params, x, posteriors, weights, chunk_size, u0, tol, tolerances, state, forcing
        )
        candidate = unflatten_params(u_end, params, constraints)
        with np.errstate(all="ignore"):
            q_new = expected_complete_log_likelihood(
                model, candidate, x, posteriors, weights, chunk_size
            )
        slack = 0.0
    q_new = float(q_new)
    # ties accept the optimizer's point (it is then θ itself up to round-off)
    accepted = bool(np.isfinite(q_new) and q_new >= q_current - slack)
    info = NumericalMStepInfo(
        accepted=accepted,
        q_before=float(q_current),
        q_after=float(q_new) if np.isfinite(q_new) else -np.inf,
        n_iter=int(result.nit),
        n_evaluations=int(result.nfev),
        success=bool(result.success),
        optimizer_message=str(result.message),
        gradient=gradient_name,
    )
    return (candidate if accepted else params), info


#: ``Q`` after the M-step within this many units of round-off (eps |Q|) below ``Q`` before
#: is a tie, and the step is accepted
TIE_ULPS = 64

#: Armijo's sufficient-decrease constant of the quasi-Newton line search
ARMIJO = 1e-4

#: forward differences are used while the gradient's largest entry is at least 1000 times
#: their estimated error, this factor times sqrt(eps) (1 + |Q / Σw|); 0 disables them.
#: 10: with 1 (more forward differences, 8 % faster on the benchmark) whole data and chunks
#: differed by up to 1.8e-9 relative over 10 iterations of six von Mises problems (the
#: forward error propagates to where the M-step ends), with 10 by at most 5e-11
#: (scipy's L-BFGS-B with central differences: up to 3.8e-10)
FORWARD_ERROR_FACTOR = 10.0

#: the relative move of each free parameter with which :func:`_dependency_pattern` finds
#: the support points it does not affect (once per fit)
DEPENDENCY_STEP = 1e-3

#: largest number of step halvings (with interpolation) in one line search
MAX_BACKTRACKS = 40


def _quasi_newton_m_step(
    model: Any,
    params: Any,
    x: Any,
    posteriors: list[np.ndarray],
    weights: np.ndarray,
    chunk_size: int | None,
    u0: np.ndarray,
    tolerances: dict[str, float],
    state: dict[str, Any] | None,
    forcing: float,
) -> tuple[Any, str, float, Callable[[np.ndarray], float]]:
    """The quasi-Newton M-step: ``(optimizer result, gradient name, -Q(θ) / Σw, value)``."""
    dependency = None
    if state is not None and not uses_model_gradient(model):
        # which support points each free parameter moves, once per fit
        dependency = state.get("dependency")
        if dependency is None or dependency.shape[0] != u0.size:
            columns = _weighted_columns(model, x, posteriors, weights, chunk_size)
            dependency = _dependency_pattern(model, params, model.constraints, columns)
            state["dependency"] = dependency
        if dependency.all():  # nothing to skip: the plain differences of Q
            dependency = None
    value, value_and_gradient, name = _objective_parts(
        model, params, x, posteriors, weights, chunk_size, dependency=dependency
    )
    f0 = value(u0)
    q_per_weight = -f0
    # forward differences (p evaluations of Q, not 2 p) while the gradient is large:
    # their error, about sqrt(eps) (1 + |Q / Σw|), is then negligible for the step
    forward_error = 0.0
    if name in ("finite differences", "batched finite differences") and np.isfinite(q_per_weight):
        forward_error = (
            FORWARD_ERROR_FACTOR * float(np.sqrt(np.finfo(float).eps)) * (1.0 + abs(q_per_weight))
        )
    h_inv = None
    previous = _preconditioner(state, u0.size)
    if previous is not None:
        h_inv = previous @ previous.T
    result = minimize(
        value,
        u0,
        method=_quasi_newton,
        options={
            **tolerances,
            "maxiter": 1000,
            "value_and_gradient": value_and_gradient,
            "inverse_hessian": h_inv,
            "forcing": forcing,
            "forward_error": forward_error,
            "f0": f0,
        },
    )
    if state is not None and u0.size <= PRECONDITION_MAX_PARAMETERS:
        h_end = getattr(result, "hess_inv", None)
        if isinstance(h_end, np.ndarray) and h_end.shape == (u0.size, u0.size):
            _store_factor(state, h_end)
    return result, name, f0, value


def _quasi_newton(
    fun: Callable[[np.ndarray], float],
    x0: np.ndarray,
    args: tuple[Any, ...] = (),
    *,
    value_and_gradient: Callable[..., tuple[float, np.ndarray]],
    inverse_hessian: np.ndarray | None = None,
    forcing: float = 0.0,
    forward_error: float = 0.0,
    f0: float | None = None,
    gtol: float = 1e-9,
    ftol: float = 1e-13,
    maxiter: int = 1000,
    **unused: Any,
) -> Any:
    """BFGS with an Armijo backtracking line search, as a ``scipy.optimize.minimize`` method.

    ``value_and_gradient(x, f, forward)`` returns ``f(x)`` (given ``f`` when known) and the
    gradient, by forward differences when ``forward`` is true (error about
    ``forward_error``; ``forward_error = 0`` never asks for them). Starts from
    ``inverse_hessian`` when given (the previous M-step's), else from a scaled identity
    after the first step. The curvature is dropped (a steepest-descent step taken
    instead) whenever it does not give a descent direction or its line search fails. A
    trial point is accepted only if it lowers ``fun`` strictly and by Armijo's fraction
    of the predicted decrease, so the end point is never worse than ``x0``. Stops when
    the largest entry of a central (or model) gradient is ``<= max(gtol, η |g(x0)|)``,
    when a step lowered ``fun`` by ``<= ftol`` relative (L-BFGS-B's two tests; the
    gradient at that last point is not computed), or when the predicted decrease of a
    step is below ``ftol`` relative (the step is then taken if it does not raise ``fun``).
    """
    x = np.array(x0, dtype=float)
    eps = float(np.finfo(float).eps)
    scale_f = 1.0
    nfev, njev, nit, resets = 1, 1, 0, 0
    # forward differences while the gradient is 1000 times their error
    forward_min = 1e3 * forward_error
    forward = forward_min > 0.0
    f, g = value_and_gradient(x, f0, forward)
    if forward and not np.max(np.abs(g), initial=0.0) >= forward_min:
        f, g = value_and_gradient(x, f, False)
        forward = False
    g_is_forward = forward
    target = max(gtol, forcing * float(np.max(np.abs(g), initial=0.0)))
    h_inv = None if inverse_hessian is None else np.array(inverse_hessian, dtype=float)
    success, message = False, "the maximum number of iterations was reached"

    def result() -> Any:
        return OptimizeResult(
            x=x,
            x_end=x,
            fun=f,
            jac=g,
            nit=nit,
            nfev=nfev,
            njev=njev,
            success=success,
            message=message,
            hess_inv=h_inv,
            resets=resets,
        )

    if not np.isfinite(f):
        message = "the objective is not finite at the start"
        return result()
    if not forward and np.max(np.abs(g), initial=0.0) <= target:
        success, message = True, "the projected gradient is below gtol"
        return result()
    while nit < maxiter:
        scale_f = max(abs(f), 1.0)
        step = None
        f_new = f
        for use_curvature in (True, False):
            if use_curvature and h_inv is not None:
                d = -(h_inv @ g)
            elif use_curvature:
                continue
            else:
                d = -g / max(1.0, float(np.linalg.norm(g)))
            slope = float(g @ d)
            if not (np.isfinite(slope) and slope < 0.0):
                if use_curvature:
                    h_inv, resets = None, resets + 1  # no descent: drop the curvature
                    continue
                break
            if use_curvature and -0.5 * slope <= ftol * scale_f and g_is_forward:
                break  # too close to judge with a forward gradient: see below
            if use_curvature and -0.5 * slope <= ftol * scale_f:
                # a quasi-Newton step whose predicted decrease is below ftol: take it and
                # stop (L-BFGS-B's ftol test, one step early). It is taken if it does not
                # raise f, or, when f cannot resolve it (a rise within round-off), if the
                # directional derivative shrank along it, |g(x + d)·d| <= 0.9 |g(x)·d|:
                # f then decreased (the derivative stays negative over most of the step)
                trial = fun(x + d)
                nfev += 1
                take = bool(np.isfinite(trial) and trial <= f)
                if not take and np.isfinite(trial) and trial - f <= 64 * eps * scale_f:
                    trial, g_trial = value_and_gradient(x + d, float(trial), False)
                    njev += 1
                    take = bool(abs(float(g_trial @ d)) <= 0.9 * abs(slope))
                if take:
                    x, f = x + d, float(trial)
                    nit += 1
                success, message = True, "the predicted reduction of f is below ftol"
                return result()
            step, f_new, evals = _backtrack(fun, x, f, d, slope)
            nfev += evals
            if step is not None or not use_curvature:
                break
            h_inv, resets = None, resets + 1  # the line search failed: drop the curvature
        if step is None and g_is_forward:
            # a forward gradient too inexact to go on from: central differences here
            f, g = value_and_gradient(x, f, False)
            njev += 1
            g_is_forward = forward = False
            continue
        if step is None:
            message = "the line search cannot lower the objective"
            break
        nit += 1
        x_new = x + step
        decrease = f - f_new
        if decrease <= ftol * max(scale_f, abs(f_new)):
            if not g_is_forward:
                x, f = x_new, f_new
                success, message = True, "the relative reduction of f is below ftol"
                break
            # the end point must come from a central gradient's step (a forward one's
            # error would set where the M-step ends): go on with central differences
            forward = False
        g_max = float(np.max(np.abs(g), initial=0.0))
        f_new, g_new = value_and_gradient(x_new, f_new, forward)
        njev += 1
        g_new_max = float(np.max(np.abs(g_new), initial=0.0))
        y = g_new - g
        sy = float(step @ y)
        if sy > 1e-12 * float(np.linalg.norm(step) * np.linalg.norm(y)):
            if h_inv is None:
                h_inv = (sy / float(y @ y)) * np.eye(x.size)
            rho = 1.0 / sy
            hy = h_inv @ y
            h_inv = (
                h_inv
                - rho * (np.outer(step, hy) + np.outer(hy, step))
                + (rho * rho * float(y @ hy) + rho) * np.outer(step, step)
            )
        x, f, g = x_new, f_new, g_new
        was_forward = g_is_forward = forward
        if forward:
            # the next gradient, predicted from this step's reduction, still large?
            forward = g_new_max * min(1.0, g_new_max / max(g_max, 1e-300)) >= forward_min
        if not was_forward and g_new_max <= target:
            success, message = True, "the projected gradient is below gtol"
            break
    return result()


def _backtrack(
    fun: Callable[[np.ndarray], float], x: np.ndarray, f: float, d: np.ndarray, slope: float
) -> tuple[np.ndarray | None, float, int]:
    """Armijo backtracking from the full step ``d``: ``(step, f(x + step), evaluations)``,
    or ``(None, f, evaluations)`` when no step lowers ``f`` strictly and sufficiently."""
    t = 1.0
    eps = np.finfo(float).eps
    smallest = eps * (1.0 + float(np.max(np.abs(x), initial=0.0)))
    for evals in range(1, MAX_BACKTRACKS + 1):
        trial = t * d
        f_new = fun(x + trial)
        if np.isfinite(f_new) and f_new < f and f_new <= f + ARMIJO * t * slope:
            return trial, float(f_new), evals
        if np.isfinite(f_new):
            # the minimizer of the quadratic through f, slope and f_new, kept in [t/10, t/2]
            t_quad = -slope * t * t / (2.0 * (f_new - f - slope * t))
            t = min(max(t_quad, 0.1 * t), 0.5 * t)
        else:
            t *= 0.1
        # below round-off: neither the step nor the decrease it predicts can be resolved
        if t * float(np.max(np.abs(d), initial=0.0)) < smallest or -t * slope < eps * abs(f):
            return None, f, evals
    return None, f, MAX_BACKTRACKS


def _lbfgs_m_step(
    model: Any,
    params: Any,
    x: Any,
    posteriors: list[np.ndarray],
    weights: np.ndarray,
    chunk_size: int | None,
    u0: np.ndarray,
    tol: float | None,
    tolerances: dict[str, float],
    state: dict[str, Any] | None,
    forcing: float,
) -> tuple[Any, np.ndarray, str]:
    fun, gradient_name = objective_and_gradient(model, params, x, posteriors, weights, chunk_size)
    # below PRECONDITION_MIN_TOL EM's iterates must match the exact M-step's to about the
    # optimizer's accuracy (the tol rule then stops EM where closed-form EM stops); the
    # preconditioned run meets the same gradient test at a slightly different point
    if tol is not None and tol < PRECONDITION_MIN_TOL:
        state = None
    previous = _preconditioner(state, u0.size)
    preconditioned = previous is not None
    c = previous if previous is not None else np.eye(u0.size)
    # L-BFGS in v, u = u0 + C v (C = I without a preconditioner); scipy's own gradient
    # test is switched off (a small gradient in v is not a small gradient in u) and
    # applied to u's gradient in the callback: max |∂/∂u| <= max(gtol, η max |g(u0)|)
    gtol = tolerances["gtol"]
    last: dict[str, Any] = {}

    def fun_v(v: np.ndarray) -> tuple[float, np.ndarray]:
        if not np.any(v) and "f0" in last:  # the start, evaluated below
            f, g = last["f0"], last["g0_vector"]
        else:
            f, g = fun(u0 + c @ v)
        last["v"], last["g"] = v.copy(), g
        return f, c.T @ g

    def callback(intermediate_result: Any) -> None:
        v = intermediate_result.x
        if "v" in last and np.array_equal(last["v"], v):
            g = last["g"]
        else:
            _, g = fun(u0 + c @ v)
        if np.max(np.abs(g), initial=0.0) <= max(gtol, forcing * last.get("g0", 0.0)):
            last["converged"] = True
            raise StopIteration

    def plain_lbfgs(start: np.ndarray) -> Any:
        # in u itself, with scipy's own gradient test
        return minimize(
            fun, start, jac=True, method="L-BFGS-B", options={**tolerances, "maxiter": 1000}
        )

    if not preconditioned and forcing == 0.0:
        result = plain_lbfgs(u0)  # as before preconditioning existed
        u_end = result.x
    else:
        last["f0"], last["g0_vector"] = fun(u0)
        last["g0"] = float(np.max(np.abs(last["g0_vector"]), initial=0.0))
        if last["g0"] <= gtol:
            # converged at the start, as scipy's own gradient test would find before a step
            result = OptimizeResult(
                x=np.zeros_like(u0), nit=0, nfev=1, success=True, message="", hess_inv=None
            )
            last["converged"] = True
        else:
            result = minimize(
                fun_v,
                np.zeros_like(u0),
                jac=True,
                method="L-BFGS-B",
                callback=callback,
                options={"ftol": tolerances["ftol"], "gtol": 0.0, "maxiter": 1000},
            )
        if last.get("converged"):
            result.success = True
            result.message = "the projected gradient is below gtol"
        u_end = u0 + c @ result.x
    if preconditioned and not result.success:
        # a stale preconditioner can stall the line search: finish from where it
        # stopped without one (and start the next M-step afresh)
        assert state is not None
        state.pop("factor", None)
        nit = int(result.nit)
        result = plain_lbfgs(u_end)
        result.nit = int(result.nit) + nit
        u_end = result.x
        preconditioned = False
    factor = c if preconditioned else None
    _store_inverse_hessian(state, result, factor, u0.size)
    return result, u_end, gradient_name


def _fd_steps(u: np.ndarray) -> np.ndarray:
    # the cube root of machine epsilon balances truncation and round-off error
    return np.cbrt(np.finfo(float).eps) * np.maximum(1.0, np.abs(u))


def _fd_forward_steps(u: np.ndarray) -> np.ndarray:
    # forward differences: the square root of machine epsilon
    return np.sqrt(np.finfo(float).eps) * np.maximum(1.0, np.abs(u))


#: largest number of free parameters for which the inverse Hessian is kept as a dense
#: matrix between M-steps (p² memory, p³ to factor)
PRECONDITION_MAX_PARAMETERS = 500

#: the eigenvalues of the stored inverse Hessian (of Q per unit weight, in the
#: unconstrained coordinates) are clipped to this range
PRECONDITION_EIGENVALUE_RANGE = (1e-6, 1e2)

#: EM tolerances below this run every M-step without the preconditioner
PRECONDITION_MIN_TOL = 1e-10


def _preconditioner(state: dict[str, Any] | None, p: int) -> np.ndarray | None:
    """A factor ``C`` with ``C Cᵀ`` the previous M-step's inverse Hessian, or None."""
    if state is None:
        return None
    factor = state.get("factor")
    if factor is None or factor.shape != (p, p):
        return None
    return factor


def _store_inverse_hessian(
    state: dict[str, Any] | None, result: Any, factor: np.ndarray | None, p: int
) -> None:
    if state is None or p > PRECONDITION_MAX_PARAMETERS or int(result.nit) < 1:
        return
    try:
        h_inv = np.asarray(result.hess_inv.todense(), dtype=float)
    except (AttributeError, ValueError):
        return
    if factor is not None:
        h_inv = factor @ h_inv @ factor.T
    _store_factor(state, h_inv)


def _store_factor(state: dict[str, Any], h_inv: np.ndarray) -> None:
    """Keep ``C`` with ``C Cᵀ`` the inverse Hessian ``h_inv`` (eigenvalues clipped)."""
    h_inv = 0.5 * (h_inv + h_inv.T)
    if not np.all(np.isfinite(h_inv)):
        state.pop("factor", None)
        return
    # a nearly flat direction (a parameter running off to a boundary at infinity) has a
    # huge inverse curvature; bounded, it cannot turn one L-BFGS step into an overflow
    values, vectors = np.linalg.eigh(h_inv)
    values = np.clip(values, PRECONDITION_EIGENVALUE_RANGE[0], PRECONDITION_EIGENVALUE_RANGE[1])
    state["factor"] = vectors * np.sqrt(values)
