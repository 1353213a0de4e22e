"""Generic numerical M-step for models that state only ``log_joint`` over an enumerable z.

The M-step maximizes the expected complete-data log-likelihood

    Q(θ) = Σ_n w_n Σ_j q_n(z_j) log p(x_n, z_j | θ)  (+ log p(θ) for MAP-EM)

over the model's unconstrained parameterization (its ``constraints``) with scipy's
L-BFGS, warm-started at the current θ. Parameter fields absent from ``constraints`` are
held fixed.

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

Without a model gradient, central finite differences are used: ``2 p`` evaluations of
``Q`` per gradient for ``p`` free parameters, each evaluation costing ``m`` calls of
``log_joint`` over the ``n`` rows (``m`` support points). That is fine for tens of
parameters; beyond a few hundred provide ``log_joint_grad``.

Batched finite differences
--------------------------
A model may also provide

    ``log_joint_batch(params_list, x, z) -> (B, n) array``

returning ``log_joint(params_list[b], x, z)`` as row ``b`` for a list of ``B``
parameter values (see :class:`latent_em.protocols.BatchedLogJoint`). The M-step then
evaluates ``Q`` at θ and at all ``2 p`` perturbations in one call per support point
and chunk, instead of ``2 p + 1`` calls, with the same values (to round-off) as the
loop.

Preconditioning across M-steps
------------------------------
L-BFGS starts every M-step without curvature information, but ``Q`` changes little
from one EM iteration to the next. When the M-step is given a ``state`` dictionary
(opt-in: the driver does not pass one, see below), the inverse-Hessian approximation
L-BFGS ended with is kept there, and the next M-step runs L-BFGS in the variables ``v`` of
``u = u₀ + C v``, with ``C Cᵀ`` that approximation: the problem is then close to
isotropic and L-BFGS needs a few iterations instead of ten or more. Only the path of the
optimizer changes; it still maximizes the same ``Q`` to the same ``ftol``, and the
gradient test is applied to the gradient in ``u`` (see :func:`numerical_m_step`). If a
preconditioned run stops without converging, L-BFGS finishes from its end point without
the preconditioner (and the next M-step starts afresh). EM tolerances below
``PRECONDITION_MIN_TOL`` (1e-10) switch the preconditioner off: there EM's iterates must
follow the exact M-step's to the optimizer's accuracy, and the preconditioned run meets
the same gradient test at a slightly different point (enough, at ``tol=1e-14``, to move
EM's stopping iteration). The driver does not precondition: the M-step then ends at a
point that depends on round-off (whole data and chunks agreed to 2e-10 relative in
the log-likelihood after three iterations, where the chunk-invariance test demands
1e-10), and at ``tol=1e-14`` EM stopped one iteration earlier on DLR's linkage example.

Inexact M-steps
---------------
``numerical_m_step(..., forcing=η)`` stops each M-step once the gradient has fallen to
``η`` times its size at the current θ (a generalized EM step, still accepted only when
``Q`` rose). The default ``η = 0`` keeps the M-step exact; the driver uses the default.

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
from .constraints import flatten_params, unflatten_params, unflatten_params_vjp
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
        L-BFGS iterations.
    n_evaluations : int
        Evaluations of ``Q`` by the optimizer (finite-difference calls excluded).
    success : bool
        Whether L-BFGS reported convergence.
    optimizer_message : str
        scipy's termination message.
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
                "numerical M-step: L-BFGS stopped without converging "
                f"({self.gradient} gradient, {self.n_iter} iterations, "
                f"'{self.optimizer_message}'); its point was taken since Q rose from "
                f"{self.q_before:.10g} to {self.q_after:.10g}",
            )
        return (
            "numerical M-step kept the previous parameters: L-BFGS "
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
    constraints = model.constraints
    scale = float(weights.sum())
    if gradient is None:
        if uses_model_gradient(model):
            gradient = "model"
        elif uses_batched_log_joint(model):
            gradient = "batched finite differences"
        else:
            gradient = "finite differences"

    def objective(u: np.ndarray) -> float:
        # a long trial step may overflow a transform (exp): Q is then -inf or NaN there
        with np.errstate(all="ignore"):
            candidate = unflatten_params(u, params, constraints)
            value = expected_complete_log_likelihood(
                model, candidate, x, posteriors, weights, chunk_size
            )
        return -value / scale if np.isfinite(value) else np.inf

    def fd_gradient(u: np.ndarray) -> np.ndarray:
        grad = np.empty_like(u)
        steps = _fd_steps(u)
        for i, h in enumerate(steps):
            up, down = u.copy(), u.copy()
            up[i] += h
            down[i] -= h
            grad[i] = (objective(up) - objective(down)) / (2.0 * h)
        return grad

    def batched_value_and_gradient(u: np.ndarray) -> tuple[float, np.ndarray]:
        steps = _fd_steps(u)
        p = u.size
        points = np.repeat(u[None, :], 2 * p + 1, axis=0)
        idx = np.arange(p)
        points[1 + idx, idx] += steps
        points[1 + p + idx, idx] -= steps
        with np.errstate(all="ignore"):
            candidates = [unflatten_params(v, params, constraints) for v in points]
            q0, deltas = _batched_q(model, candidates, x, posteriors, weights, chunk_size)
            finite = np.isfinite(q0 + deltas)
        if not np.isfinite(q0):
            return np.inf, np.zeros(p)
        d = np.where(finite, -deltas / scale, np.inf)
        return float(-q0 / scale), (d[1 : p + 1] - d[p + 1 :]) / (2.0 * steps)

    def model_gradient(u: np.ndarray) -> np.ndarray:
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
        return -grad / scale

    if gradient == "model":

        def fun(u: np.ndarray) -> tuple[float, np.ndarray]:
            return objective(u), model_gradient(u)

        return fun, gradient
    if gradient == "batched finite differences":
        return batched_value_and_gradient, gradient
    if gradient == "finite differences":

        def fun_fd(u: np.ndarray) -> tuple[float, np.ndarray]:
            return objective(u), fd_gradient(u)

        return fun_fd, gradient
    raise ValueError(
        "gradient must be None, 'model', 'batched finite differences' or "
        f"'finite differences'; got {gradient!r}"
    )


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
) -> tuple[Any, NumericalMStepInfo]:
    """Maximize ``Q`` numerically from the current parameters (see module docstring).

    ``state`` is a dictionary kept by the caller from one M-step to the next of the same
    fit (empty at first); the M-step stores the optimizer's inverse-Hessian approximation
    there and preconditions the next M-step with it. Without it every M-step starts
    L-BFGS from scratch.

    ``forcing`` (``η``, default 0: an exact M-step) ends the optimizer once the largest
    gradient entry has fallen to ``η`` times its value at the current θ (or below the
    gradient tolerance): an inexact, generalized EM step. Early in a fit this saves
    L-BFGS iterations; near the fixed point the gradient at θ is small and the step is
    exact again, so the fit reaches the same maximum, by a slightly different path.

    Returns
    -------
    params : Any
        The maximizer found, or the current parameters when it is not better.
    info : NumericalMStepInfo
        Whether the step was accepted, ``Q`` before and after, optimizer diagnostics.
    """
    if not (np.isfinite(forcing) and 0.0 <= forcing < 1.0):
        raise ValueError(f"forcing must be in [0, 1); got {forcing!r}")
    constraints = model.constraints
    u0 = flatten_params(params, constraints)
    fun, gradient_name = objective_and_gradient(model, params, x, posteriors, weights, chunk_size)

    q_current = expected_complete_log_likelihood(model, params, x, posteriors, weights, chunk_size)
    tolerances = optimizer_tolerances(tol)
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
    candidate = unflatten_params(u_end, params, constraints)
    with np.errstate(all="ignore"):
        q_new = expected_complete_log_likelihood(
            model, candidate, x, posteriors, weights, chunk_size
        )
    # ties accept the optimizer's point (it is then θ itself up to round-off)
    accepted = bool(np.isfinite(q_new) and q_new >= q_current)
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


def _fd_steps(u: np.ndarray) -> np.ndarray:
    # the cube root of machine epsilon balances truncation and round-off error
    return np.cbrt(np.finfo(float).eps) * np.maximum(1.0, np.abs(u))


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
    h_inv = 0.5 * (h_inv + h_inv.T)
    if not np.all(np.isfinite(h_inv)):
        state.pop("factor", None)
        return
    # a nearly flat direction (a parameter running off to a boundary at infinity) has a
    # huge inverse curvature; bounded, it cannot turn one L-BFGS step into an overflow
    values, vectors = np.linalg.eigh(h_inv)
    values = np.clip(values, PRECONDITION_EIGENVALUE_RANGE[0], PRECONDITION_EIGENVALUE_RANGE[1])
    state["factor"] = vectors * np.sqrt(values)
