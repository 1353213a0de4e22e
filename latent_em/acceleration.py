"""SQUAREM acceleration of the EM map (Varadhan & Roland 2008).

EM is a fixed-point iteration ``θ ← F(θ)`` with ``F(θ) = M(E(θ))``; it converges
linearly, slowly when the fraction of missing information is large (overlapping
components, close rates). SQUAREM ("squared iterative methods") extrapolates along two
successive EM steps. On a flat parameter vector ``u`` (see *Where to extrapolate*), one
cycle from ``u₀`` is

* ``u₁ = F(u₀)``, ``u₂ = F(u₁)``; ``r = u₁ - u₀``, ``v = (u₂ - u₁) - r``;
* a step length ``α`` from one of three rules (``α`` is positive here; the paper writes
  the same scheme with ``-α``)::

      method 1:  α = -rᵀv / vᵀv        (SqS1)
      method 2:  α = -rᵀr / rᵀv        (SqS2)
      method 3:  α = √(rᵀr / vᵀv)      (SqS3, the default of the R package SQUAREM)

  clipped to ``[step_min, step_max]``;
* ``u' = u₀ + 2α r + α² v`` followed by a stabilizing EM step ``u' ← F(u')``
  (skipped when ``α ≈ 1``, where ``u'`` is the EM point ``u₂``);
* if ``u'`` cannot be evaluated, breaks a constraint, or its objective is below that of
  ``u₀`` (EM itself never goes down), the step length is moved halfway to the EM point,
  ``α ← (α + 1)/2`` (a backtracking in the spirit of Varadhan & Roland's globally
  convergent scheme), at most ``max_backtracks`` times; then the cycle falls back to
  the EM point ``u₂``.

The step bounds adapt as in the R package's ``squarem1``: ``step_max`` starts at
``step_max0 = 1`` and is multiplied by ``mstep = 4`` whenever ``α`` hits it, divided by
``mstep`` (not below ``step_max0``) when a step at the bound is rejected. Unlike the R
default (``objfn.inc = 1``), no decrease is tolerated, so the objective at the accepted
points is non-decreasing.

Where to extrapolate
--------------------
``space="natural"`` (default) extrapolates the constrained values themselves (every
entry of every field in the model's ``constraints``), as the paper and the R package do
with the model's own parameters; a point that leaves the constraint set (a negative
weight, an indefinite covariance) is treated like one that lowers the objective.
``space="unconstrained"`` uses :func:`latent_em.constraints.flatten_params`, where every
point is valid but the EM map is more curved: on the two-component Poisson benchmark it
needed 4x more E-steps.

Cost accounting: ``EMResult.n_iter`` counts cycles, ``EMResult.n_evaluations`` E-step
passes over the data (each is followed by at most one M-step).

References
----------
R. Varadhan and C. Roland (2008), "Simple and globally convergent methods for
accelerating the convergence of any EM algorithm", *Scandinavian Journal of Statistics*
35(2), 335-353. R package SQUAREM, function ``squarem1``.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from scipy import linalg

from .constraints import flatten_params, get_field, replace_fields, unflatten_params
from .em_map import (
    CHECKED_ITERATIONS,
    EPass,
    MStep,
    RestartRun,
    check_step,
    e_pass,
    validate_m_step_output,
)
from .exceptions import ModelContractError
from .posteriors import log_prior
from .protocols import Constrained, Repairable, round_off_of
from .result import Event

__all__ = ["Squarem", "resolve_accelerate"]

logger = logging.getLogger("latent_em")

#: failures that mean "this extrapolated point is not a usable parameter value"
_EVALUATION_ERRORS = (
    ModelContractError,
    ValueError,
    FloatingPointError,
    ZeroDivisionError,
    linalg.LinAlgError,
    np.linalg.LinAlgError,
)


@dataclasses.dataclass(frozen=True)
class Squarem:
    """Options of SQUAREM; pass an instance (or the string ``"squarem"``) as ``accelerate``.

    Parameters
    ----------
    method : {1, 2, 3}, default 3
        Step-length rule (see the module docstring); 3 is the R package's default.
    step_min0 : float, default 1.0
        Lower bound of the step length.
    step_max0 : float, default 1.0
        Initial upper bound of the step length (it grows by ``mstep`` when reached).
    mstep : float, default 4.0
        Factor by which ``step_max`` grows or shrinks.
    backtrack : bool, default True
        When an extrapolated point lowers the objective, halve the distance of the step
        length to the EM point (``α ← (α + 1)/2``) and retry, up to ``max_backtracks``
        times, before falling back to plain EM. ``False`` falls back at once, as the R
        package does.
    max_backtracks : int, default 6
        Retries per cycle (each costs two E-steps).
    space : {"natural", "unconstrained"}, default "natural"
        Where to extrapolate: the constrained values themselves (every entry of every
        field in ``constraints``; a point outside a constraint is rejected like one
        that lowers the objective), or the unconstrained vector of
        :func:`~latent_em.constraints.flatten_params` (always valid, but the EM map is
        more curved there: slower on the Poisson benchmark).
    """

    method: int = 3
    step_min0: float = 1.0
    step_max0: float = 1.0
    mstep: float = 4.0
    backtrack: bool = True
    max_backtracks: int = 6
    space: str = "natural"

    def __post_init__(self) -> None:
        if self.method not in (1, 2, 3):
            raise ValueError(f"Squarem method must be 1, 2 or 3; got {self.method!r}")
        for name in ("step_min0", "step_max0", "mstep"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"Squarem {name} must be a finite number; got {value!r}")
        if self.step_max0 < 1.0:
            raise ValueError(f"Squarem step_max0 must be >= 1; got {self.step_max0!r}")
        if self.step_min0 > self.step_max0:
            raise ValueError(
                f"Squarem step_min0 ({self.step_min0}) must not exceed step_max0 ({self.step_max0})"
            )
        if self.mstep <= 1.0:
            raise ValueError(f"Squarem mstep must be > 1; got {self.mstep!r}")
        if self.space not in ("natural", "unconstrained"):
            raise ValueError(
                f"Squarem space must be 'natural' or 'unconstrained'; got {self.space!r}"
            )
        if not isinstance(self.max_backtracks, int) or self.max_backtracks < 0:
            raise ValueError(
                f"Squarem max_backtracks must be an integer >= 0; got {self.max_backtracks!r}"
            )

    def step_length(self, r: np.ndarray, v: np.ndarray) -> float:
        """The unclipped step length ``α`` of the chosen rule."""
        rr, vv, rv = float(r @ r), float(v @ v), float(r @ v)
        with np.errstate(divide="ignore", invalid="ignore"):
            if self.method == 1:
                alpha = -rv / vv
            elif self.method == 2:
                alpha = -rr / rv
            else:
                alpha = math.sqrt(rr / vv) if vv > 0 else math.inf
        return float(alpha)


def resolve_accelerate(accelerate: Any, model: Any) -> Squarem | None:
    """Validate the ``accelerate`` option of :func:`latent_em.fit`."""
    if accelerate is None:
        return None
    if isinstance(accelerate, str) and accelerate.lower() == "squarem":
        options = Squarem()
    elif isinstance(accelerate, Squarem):
        options = accelerate
    else:
        raise ValueError(
            f"unknown accelerate option {accelerate!r}; expected None, 'squarem' or a "
            "latent_em.acceleration.Squarem instance"
        )
    if not isinstance(model, Constrained):
        raise ModelContractError(
            f"accelerate='squarem' needs a flat parameter vector, but {type(model).__name__} "
            "declares no `constraints` mapping (field name -> latent_em.constraints.Constraint)"
        )
    return options


@dataclasses.dataclass
class _Point:
    """Parameters together with their E-step (objective and statistics)."""

    params: Any
    e: EPass
    log_prior: float

    @property
    def objective(self) -> float:
        return float(self.e.log_likelihood + self.log_prior)


def run_squarem(
    model: Any,
    x: Any,
    weights: np.ndarray,
    params: Any,
    *,
    options: Squarem,
    restart: int,
    rng: np.random.Generator,
    tol: float,
    max_iter: int,
    chunk_size: int | None,
    m_step: MStep,
    closed_form: bool,
    monotone_rtol: float,
    callback: Callable[[int, Any, float], Any] | None,
) -> RestartRun:
    """One restart of SQUAREM-accelerated EM, as a :class:`~latent_em.em_map.RestartRun`.

    ``n_iter`` counts SQUAREM cycles (two EM steps, then an extrapolation with its
    stabilizing step and any backtracking) and ``n_evaluations`` counts E-step passes
    over the data, the cost that matters. The
    history holds the objective at the accepted points (non-decreasing). Convergence uses
    the driver's criterion on the first EM step of a cycle: ``|L(F(u₀)) - L(u₀)| < tol Σw``.
    """
    constraints = model.constraints
    to_vector: Callable[..., np.ndarray] = flatten_params
    from_vector: Callable[..., Any] = unflatten_params
    if options.space == "natural":
        to_vector, from_vector = _natural_vector, _from_natural_vector
    total_weight = float(weights.sum())
    events: list[Event] = []
    reported: set[str] = set()
    n_evals = 0
    step_min, step_max = float(options.step_min0), float(options.step_max0)

    def evaluate(p: Any, validate: bool = False) -> _Point:
        nonlocal n_evals
        n_evals += 1
        e = e_pass(model, p, x, weights, chunk_size, closed_form, validate=validate)
        return _Point(p, e, log_prior(model, p))

    def try_evaluate(p: Any) -> _Point | None:
        # an extrapolated point may leave the region where the model is defined
        # numerically (overflowing exponentials, singular covariances): treat as rejected
        try:
            with np.errstate(over="ignore", under="ignore", invalid="ignore", divide="ignore"):
                point = evaluate(p)
        except _EVALUATION_ERRORS:
            return None
        return point if math.isfinite(point.objective) else None

    n_iter = 0

    def em_step(point: _Point) -> tuple[Any, bool]:
        """``F`` at an evaluated point, with repairs; True when a repair moved it."""
        new, step_messages = m_step(point.params, point.e)
        for message in step_messages:
            events.append(Event(restart, n_iter + 1, message))
            logger.info("restart %d, iteration %d: %s", restart, n_iter + 1, message)
        if isinstance(model, Repairable):
            repaired, messages = model.repair(new, point.e.stats, rng)
            for message in messages:
                if message not in reported:
                    reported.add(message)
                    events.append(Event(restart, n_iter + 1, message))
                    logger.info("restart %d, iteration %d: %s", restart, n_iter + 1, message)
            if repaired is not new:
                return repaired, True
        return new, False

    def check_monotone(before: _Point, after: _Point, iteration: int) -> None:
        decrease = check_step(
            model,
            before.objective,
            after.objective,
            rtol=monotone_rtol,
            total_weight=total_weight,
            iteration=iteration,
            restart=restart,
            where="an EM step inside SQUAREM",
            round_off=round_off_of(model, before.params, after.params),
        )
        if decrease is not None:
            events.append(decrease)

    def extrapolate(start: _Point, point1: _Point, p2: Any, iteration: int) -> _Point:
        """One SQUAREM step from ``start``; falls back to the EM point ``p2``."""
        nonlocal step_min, step_max
        u0 = to_vector(start.params, constraints)
        u1 = to_vector(point1.params, constraints)
        u2 = to_vector(p2, constraints)
        r = u1 - u0
        v = (u2 - u1) - r
        alpha = options.step_length(r, v)
        accepted: _Point | None = None
        if math.isnan(alpha):
            # r = v = 0 (or a 0/0 rule): nothing to extrapolate along
            alpha = 1.0
        alpha = max(step_min, min(step_max, alpha))
        backtracks = 0
        while abs(alpha - 1.0) > 0.01:
            with np.errstate(over="ignore", under="ignore", invalid="ignore", divide="ignore"):
                u_new = u0 + 2.0 * alpha * r + alpha**2 * v
            candidate = None
            if np.all(np.isfinite(u_new)):
                with np.errstate(over="ignore", under="ignore", invalid="ignore"):
                    trial = from_vector(u_new, p2, constraints)
                if trial is not None:
                    candidate = try_evaluate(trial)
            if candidate is not None:
                # the stabilizing EM step (it often repairs an overshoot)
                try:
                    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
                        stabilized, _ = em_step(candidate)
                except _EVALUATION_ERRORS:
                    stabilized = None
                if stabilized is not None:
                    accepted = try_evaluate(stabilized)
                if accepted is not None and accepted.objective >= start.objective:
                    break
                accepted = None
            # the extrapolated point failed or lowered the objective
            if alpha == step_max:
                step_max = max(options.step_max0, step_max / options.mstep)
            if not options.backtrack or backtracks >= options.max_backtracks:
                break
            # backtrack in the spirit of Varadhan & Roland's globally convergent scheme:
            # move the step length halfway to the EM point (alpha = 1 here, -1 in their
            # sign convention) and try again
            alpha = 0.5 * (alpha + 1.0)
            backtracks += 1
        if accepted is None:
            # alpha = 1 gives u0 + 2r + v = u2 exactly: the plain EM point after two steps
            alpha = 1.0
            accepted = evaluate(p2)
            check_monotone(point1, accepted, iteration)
        if alpha == step_max:
            step_max *= options.mstep
        if step_min < 0 and alpha == step_min:
            step_min *= options.mstep
        return accepted

    current = evaluate(params, validate=True)
    history = [current.objective]
    jumps: list[int] = []
    if callback is not None:
        callback(0, current.params, current.objective)
    converged = False
    while n_iter < max_iter:
        p1, jumped = em_step(current)
        if n_iter < CHECKED_ITERATIONS:
            # the same checks of the first M-steps' output as plain EM makes
            validate_m_step_output(model, current.params, p1, n_iter + 1)
        point1 = evaluate(p1)
        if not jumped:
            check_monotone(current, point1, n_iter + 1)
            if abs(point1.objective - current.objective) < tol * total_weight:
                # same criterion as plain EM, on a plain EM step; its E-step is the final one
                n_iter += 1
                current = point1
                history.append(current.objective)
                converged = True
                if callback is not None:
                    callback(n_iter, current.params, current.objective)
                break
        p2, jumped2 = em_step(point1)
        if jumped or jumped2:
            # a repair moved the parameters: the two steps are not an EM trajectory, so do
            # not extrapolate; the next cycle starts from the repaired point, and the
            # history a new segment
            accepted = evaluate(p2)
            jumps.append(len(history))
        else:
            accepted = extrapolate(current, point1, p2, n_iter + 1)
        n_iter += 1
        current = accepted
        history.append(current.objective)
        if callback is not None:
            callback(n_iter, current.params, current.objective)
    # `current` was evaluated at its own parameters, so the reported log-likelihood
    # belongs to the returned parameters (the final E-step).
    return RestartRun(
        current.params,
        current.e.log_likelihood,
        current.log_prior,
        history,
        n_iter,
        n_evals,
        converged,
        events,
        jumps,
    )


def _natural_vector(params: Any, constraints: Mapping[str, Any]) -> np.ndarray:
    """Every entry of every constrained field, in ``constraints`` order."""
    parts: list[np.ndarray] = []
    for name in constraints:
        value = get_field(params, name)
        elements = value if isinstance(value, (tuple, list)) else [value]
        parts.extend(np.asarray(v, dtype=float).ravel() for v in elements)
    return np.concatenate(parts) if parts else np.zeros(0)


def _from_natural_vector(
    vector: np.ndarray, template: Any, constraints: Mapping[str, Any]
) -> Any | None:
    """Inverse of :func:`_natural_vector`; ``None`` when a value breaks its constraint.

    A value satisfies its constraint when the round trip through the unconstrained
    space returns it (``Positive`` clips at the smallest float, ``Simplex`` at zero,
    ``PositiveDefinite`` fails its Cholesky factorization, ...).
    """
    updates: dict[str, Any] = {}
    start = 0
    for name, c in constraints.items():
        value = get_field(template, name)
        elements = list(value) if isinstance(value, (tuple, list)) else [value]
        rebuilt = []
        for element in elements:
            shape = np.shape(element)
            size = int(np.prod(shape))
            part = vector[start : start + size].reshape(shape)
            start += size
            try:
                back = c.constrain(c.unconstrain(part), shape)
            except _EVALUATION_ERRORS:
                return None
            scale = float(np.max(np.abs(part))) if size else 0.0
            if not np.allclose(back, part, rtol=1e-7, atol=1e-12 * max(scale, 1e-300)):
                return None
            rebuilt.append(part)
        updates[name] = type(value)(rebuilt) if isinstance(value, (tuple, list)) else rebuilt[0]
    return replace_fields(template, updates)
