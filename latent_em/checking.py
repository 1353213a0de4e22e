"""``check_model``: the contract suite a user runs on their own model and data.

Like scikit-learn's ``check_estimator``, :func:`check_model` exercises a model against
the laws EM relies on and reports each with the numbers it measured:

==========================  ==============================================================
law                         what is checked
==========================  ==============================================================
``methods``                 required methods exist, the driver can pick an E- and M-step
``posterior``               shapes; discrete posterior rows are non-negative, sum to one
``log_marginal``            ``log p(x_n)`` equals log-sum-exp of ``log_joint`` over z
``elbo``                    ``ELBO = log p(x)`` after the E-step (the KL gap is zero)
``additive_stats``          ``stats(x[:k]) + stats(x[k:]) == stats(x)``
``m_step_maximizer``        no small perturbation of ``m_step``'s θ raises ``Q`` (+ prior)
``m_step_constraints``      ``m_step``'s θ lies in the declared ``constraints`` (weights
                            sum to one, variances positive, ...)
``monotone``                a few EM iterations never lower the objective
``n_parameters``            the declared count equals the free values of ``constraints``
``constraints``             the parameters satisfy their declared constraints
``log_joint_batch``         (only for a model that has it) every row equals ``log_joint``
                            at that parameter value, at θ and at perturbations of θ
==========================  ==============================================================

For z with ``latent_support`` every law is exact. A model that computes its own discrete
posterior (an ``(n, m)`` table) without declaring ``latent_support`` still has its
``log_joint`` checked against it, at ``z = 0 .. m-1`` (the posterior's column index): the
``log_marginal`` and ``elbo`` laws then compare the two, so a ``log_joint`` that the
driver never calls cannot be wrong unnoticed. For a model that computes its own
posterior over continuous or structured z (PPCA, an HMM), the ``elbo`` and
``m_step_maximizer`` laws need ``expected_log_joint`` and ``posterior_entropy``
(:class:`latent_em.protocols.ExpectedLogJoint`); without them they are skipped, and the
report says which method to add.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import numpy as np

from ._lazy import lazy_functions
from ._tree import tree_add, tree_leaves
from ._validation import check_int, check_positive_float
from .constraints import (
    constraint_violation,
    count_free_parameters,
    flatten_params,
    get_field,
    unflatten_params,
)
from .em import fit
from .em_map import check_model_contract
from .exceptions import ModelContractError, MonotonicityError
from .posteriors import check_sample_weight, enumerate_log_joint, log_prior, posterior_unchecked
from .protocols import (
    ChecksData,
    ClosedFormMStep,
    Constrained,
    CountsParameters,
    EnumerableLatent,
    ExpectedLogJoint,
    Repairable,
)

(logsumexp,) = lazy_functions("scipy.special", "logsumexp")

__all__ = ["check_model", "CheckReport", "LawResult"]


@dataclasses.dataclass(frozen=True)
class LawResult:
    """The outcome of one law.

    Attributes
    ----------
    law : str
        Short name of the law (see the module table).
    status : {"passed", "failed", "skipped"}
        Outcome.
    message : str
        What was measured; for a failure, what is wrong and what to fix.
    value : float or None
        The measured discrepancy (absolute), when there is one.
    tolerance : float or None
        The threshold ``value`` was compared against.
    """

    law: str
    status: str
    message: str
    value: float | None = None
    tolerance: float | None = None


@dataclasses.dataclass(frozen=True)
class CheckReport:
    """All law results of :func:`check_model` for one model.

    Attributes
    ----------
    model_name : str
        Class name of the model checked.
    results : tuple of LawResult
        One result per law, in the order they were checked.
    """

    model_name: str
    results: tuple[LawResult, ...]

    @property
    def passed(self) -> bool:
        """True when no law failed (skipped laws do not count as failures)."""
        return not self.failures

    @property
    def failures(self) -> tuple[LawResult, ...]:
        """The failed laws."""
        return tuple(r for r in self.results if r.status == "failed")

    def __getitem__(self, law: str) -> LawResult:
        for r in self.results:
            if r.law == law:
                return r
        raise KeyError(f"no law named {law!r}; laws: {', '.join(r.law for r in self.results)}")

    def __str__(self) -> str:
        lines = [f"check_model({self.model_name}):"]
        lines += [f"  [{r.status:7s}] {r.law}: {r.message}" for r in self.results]
        return "\n".join(lines)


class _Checker:
    def __init__(self, model: Any, x: Any, params: Any, weights: np.ndarray, rng: Any) -> None:
        self.model = model
        self.name = type(model).__name__
        self.x = x
        self.n = len(weights)
        self.params = params
        self.weights = weights
        self.rng = rng
        self.results: list[LawResult] = []
        self.post: Any = None
        self.lm: np.ndarray | None = None
        self.enumerable = isinstance(model, EnumerableLatent)
        self.closed_form = isinstance(model, ClosedFormMStep)
        self.has_q = isinstance(model, ExpectedLogJoint)
        # for a model-defined discrete posterior without latent_support: log_joint at
        # z = 0 .. m-1, or why it could not be evaluated there
        self.implied_table: np.ndarray | None = None
        self.implied_reason = ""

    def add(self, law: str, status: str, message: str, value: Any = None, tol: Any = None) -> None:
        self.results.append(
            LawResult(
                law,
                status,
                message,
                None if value is None else float(value),
                None if tol is None else float(tol),
            )
        )

    def scale(self, lm: np.ndarray) -> float:
        # tolerances are relative to the size of the log-likelihood being compared
        return 1.0 + float(np.max(np.abs(lm))) if lm.size else 1.0

    # ------------------------------------------------------------------ laws

    def law_posterior(self, rtol: float) -> bool:
        try:
            post, lm = posterior_unchecked(self.model, self.params, self.x, self.n)
        except ModelContractError as exc:
            self.add("posterior", "failed", str(exc))
            return False
        lm = np.asarray(lm, dtype=float)
        if lm.shape != (self.n,):
            self.add(
                "posterior",
                "failed",
                f"{self._post_source()} returned log p(x_n) of shape {lm.shape}; expected "
                f"({self.n},), one value per row",
            )
            return False
        if not np.all(np.isfinite(lm)):
            row = int(np.flatnonzero(~np.isfinite(lm))[0])
            self.add(
                "posterior",
                "failed",
                f"log p(x_n) is {float(lm[row])!r} at row {row}; {self._post_source()} must give "
                "finite log-densities for the data at these parameters",
            )
            return False
        if self.enumerable:
            m = len(np.asarray(self.model.latent_support()))
            resp = np.asarray(post, dtype=float)
            if resp.shape != (self.n, m):
                self.add(
                    "posterior",
                    "failed",
                    f"the discrete posterior must have shape (n, m) = ({self.n}, {m}), one "
                    f"row of responsibilities per observation; got {resp.shape}",
                )
                return False
            sums = resp.sum(axis=1)
            worst = int(np.argmax(np.abs(sums - 1.0)))
            err = float(abs(sums[worst] - 1.0))
            if np.any(np.isnan(resp)) or np.any(resp < 0) or err > rtol:
                self.add(
                    "posterior",
                    "failed",
                    f"posterior rows must be non-negative and sum to one; row {worst} sums to "
                    f"{float(sums[worst])!r} (min entry {np.nanmin(resp):.3g}). Normalize: "
                    "q_n(z) = exp(log_joint - logsumexp over z)",
                    err,
                    rtol,
                )
                return False
            self.add("posterior", "passed", f"rows sum to one (max error {err:.2g})", err, rtol)
        else:
            self.add("posterior", "passed", f"log p(x_n) has shape ({self.n},) and is finite")
            self.implied_table, self.implied_reason = self._implied_table(post)
        self.post, self.lm = post, lm
        return True

    def _implied_table(self, post: Any) -> tuple[np.ndarray | None, str]:
        """``log_joint`` at ``z = 0 .. m-1`` when the model's posterior is an ``(n, m)`` table."""
        try:
            resp = np.asarray(post, dtype=float)
        except (TypeError, ValueError):
            return None, "the posterior is not an array"
        if resp.ndim != 2 or resp.shape[0] != self.n or resp.shape[1] < 1:
            return None, f"the posterior has shape {resp.shape}, not an (n, m) table over z"
        if not np.allclose(resp.sum(axis=1), 1.0, atol=1e-6) or np.any(resp < 0):
            return None, "the posterior's rows are not probability vectors over z"
        columns = []
        for j in range(resp.shape[1]):
            try:
                with np.errstate(all="ignore"):
                    lj = np.asarray(
                        self.model.log_joint(self.params, self.x, np.full(self.n, j)), dtype=float
                    )
            except Exception as exc:  # the model's own code: z may be coded otherwise
                return None, (
                    f"log_joint raised {type(exc).__name__} at z = {j} (the posterior's column "
                    "index); declare latent_support() to have it checked"
                )
            if lj.shape != (self.n,):
                return None, f"log_joint returned shape {lj.shape} at z = {j}, not ({self.n},)"
            columns.append(lj)
        return np.stack(columns, axis=1), ""

    def _post_source(self) -> str:
        if callable(getattr(self.model, "posterior", None)):
            return f"{self.name}.posterior"
        return f"{self.name}.log_joint (enumerated over latent_support)"

    def law_log_marginal(self, rtol: float) -> None:
        assert self.lm is not None
        if self.enumerable:
            table = enumerate_log_joint(self.model, self.params, self.x, self.n)
            over = "latent_support()"
        elif self.implied_table is not None:
            table = self.implied_table
            over = f"z = 0 .. {table.shape[1] - 1} (the posterior's columns)"
        else:
            self.add(
                "log_marginal",
                "skipped",
                "z is not enumerable (no latent_support), so log p(x_n) cannot be checked "
                "against log_joint by summation"
                + (f" ({self.implied_reason})" if self.implied_reason else ""),
            )
            return
        with np.errstate(all="ignore"):
            lse = logsumexp(table, axis=1)
        with np.errstate(invalid="ignore"):
            # rows of zero probability under both agree; NaN anywhere is a failure
            gap = np.where(lse == self.lm, 0.0, np.abs(lse - self.lm))
        gap = np.where(np.isnan(gap), np.inf, gap)
        i = int(np.argmax(gap))
        tol = rtol * self.scale(self.lm)
        if gap[i] > tol:
            self.add(
                "log_marginal",
                "failed",
                f"{self._post_source()} gives log p(x_n) = {float(self.lm[i])!r} at row {i}, but "
                f"log-sum-exp of log_joint over {over} is {float(lse[i])!r} (difference "
                f"{gap[i]:.3g}). log_marginal must be logsumexp(log_joint over z); fix "
                "posterior() or log_joint",
                gap[i],
                tol,
            )
        else:
            self.add(
                "log_marginal",
                "passed",
                f"matches log-sum-exp of log_joint over {over} (max difference {gap[i]:.2g})",
                gap[i],
                tol,
            )

    def law_elbo(self, rtol: float) -> None:
        assert self.lm is not None
        tol = rtol * self.scale(self.lm)
        if self.enumerable or self.implied_table is not None:
            resp = np.asarray(self.post, dtype=float)
            table = (
                enumerate_log_joint(self.model, self.params, self.x, self.n)
                if self.enumerable
                else self.implied_table
            )
            with np.errstate(divide="ignore", invalid="ignore"):
                log_q = np.log(np.where(resp > 0, resp, 1.0))
                elbo = np.sum(np.where(resp > 0, resp * (table - log_q), 0.0), axis=1)
            gap = self.lm - elbo
            i = int(np.argmax(np.abs(gap)))
            kl = float(gap[i])
            tol_row = tol
        elif self.has_q:
            total_lm = float(np.dot(self.weights, self.lm))
            elbo_total = self.model.expected_log_joint(
                self.params, self.x, self.post, self.weights
            ) + self.model.posterior_entropy(self.post, self.weights)
            kl = total_lm - float(elbo_total)
            i = -1
            tol_row = rtol * (abs(total_lm) + float(self.weights.sum()))
        else:
            self.add(
                "elbo",
                "skipped",
                "cannot compute the ELBO of a model-defined posterior: add "
                "expected_log_joint(params, x, posterior, weights) and "
                "posterior_entropy(posterior, weights) to check it",
            )
            return
        where = f" at row {i}" if i >= 0 else " (summed over rows)"
        if abs(kl) > tol_row:
            self.add(
                "elbo",
                "failed",
                f"after the E-step the ELBO must equal log p(x); the gap (KL divergence "
                f"from the posterior) is {kl:.6g}{where}. {self._post_source()} is not the "
                "exact posterior p(z | x, θ) = p(x, z | θ) / p(x | θ)"
                + (" (a negative gap means the entropy or Q is wrong)" if kl < 0 else ""),
                abs(kl),
                tol_row,
            )
        else:
            self.add("elbo", "passed", f"KL gap {kl:.2g}{where}", abs(kl), tol_row)

    def law_additive(self, rtol: float) -> None:
        if not self.closed_form:
            self.add("additive_stats", "skipped", "no expected_stats (numerical M-step path)")
            return
        if self.n < 2:
            self.add("additive_stats", "skipped", "needs at least 2 rows to split")
            return
        k = self.n // 2
        m = self.model
        whole = m.expected_stats(self.params, self.x, self.post, self.weights)
        parts = []
        for sl in (slice(0, k), slice(k, self.n)):
            xs = self.x[sl]
            post, _ = posterior_unchecked(m, self.params, xs, len(self.weights[sl]))
            parts.append(m.expected_stats(self.params, xs, post, self.weights[sl]))
        summed = tree_add(parts[0], parts[1])
        names = _leaf_names(whole)
        a, b = tree_leaves(whole), tree_leaves(summed)
        if len(a) != len(b):
            self.add(
                "additive_stats",
                "failed",
                "expected_stats returns a different structure for a split of the data",
            )
            return
        worst, worst_name, worst_vals = 0.0, "", (0.0, 0.0)
        for name, u, v in zip(names, a, b, strict=True):
            u, v = np.asarray(u, dtype=float), np.asarray(v, dtype=float)
            if u.shape != v.shape:
                self.add(
                    "additive_stats",
                    "failed",
                    f"statistic '{name}' has shape {v.shape} when summed over two halves but "
                    f"{u.shape} for all rows; statistics must be sums over rows",
                )
                return
            diff = np.abs(u - v) / (1.0 + np.abs(u))
            if diff.size and float(diff.max()) > worst:
                j = int(np.argmax(diff))
                worst, worst_name = float(diff.max()), name
                worst_vals = (float(u.ravel()[j]), float(v.ravel()[j]))
        tol = 1e3 * rtol
        if worst > tol:
            self.add(
                "additive_stats",
                "failed",
                f"expected_stats is not additive: statistic '{worst_name}' is "
                f"{worst_vals[0]!r} for all rows but {worst_vals[1]!r} summed over two halves "
                f"(relative difference {worst:.3g}). Return weighted sums over rows "
                "(Σ_n w_n ...), not means, normalized or per-chunk quantities; normalize in "
                "m_step",
                worst,
                tol,
            )
        else:
            self.add(
                "additive_stats",
                "passed",
                f"split into {k} + {self.n - k} rows (max relative difference {worst:.2g})",
                worst,
                tol,
            )

    def _q_function(self) -> Callable[[Any], float] | None:
        """``θ -> Q(θ) + log p(θ)`` with the posterior fixed at the current parameters."""
        m = self.model
        if self.enumerable:
            resp = np.asarray(self.post, dtype=float)

            def q_enum(theta: Any) -> float:
                table = enumerate_log_joint(m, theta, self.x, self.n)
                with np.errstate(invalid="ignore"):
                    terms = np.where(resp > 0, resp * table, 0.0)
                return float(np.dot(self.weights, terms.sum(axis=1))) + log_prior(m, theta)

            return q_enum
        if self.has_q:

            def q_model(theta: Any) -> float:
                value = m.expected_log_joint(theta, self.x, self.post, self.weights)
                return float(value) + log_prior(m, theta)

            return q_model
        return None

    def law_m_step(self, rtol: float, n_perturbations: int) -> None:
        law = "m_step_maximizer"
        if not self.closed_form:
            self.add(
                law,
                "skipped",
                "no closed-form m_step (the numerical M-step keeps θ "
                "whenever it does not improve Q)",
            )
            return
        q_fn = self._q_function()
        if q_fn is None:
            self.add(
                law,
                "skipped",
                "cannot evaluate Q for a model-defined posterior: add "
                "expected_log_joint(params, x, posterior, weights)",
            )
            return
        if not isinstance(self.model, Constrained):
            self.add(
                law,
                "skipped",
                "declare constraints (e.g. {'weights': Simplex()}) so that θ can be "
                "perturbed inside its domain",
            )
            return
        m: Any = self.model
        stats = m.expected_stats(self.params, self.x, self.post, self.weights)
        new = m.m_step(self.params, stats)
        q_old, q_new = q_fn(self.params), q_fn(new)
        tol = rtol * (abs(q_new) + float(self.weights.sum()))
        if not math.isfinite(q_new) or q_new < q_old - tol:
            self.add(
                law,
                "failed",
                f"m_step lowers Q(θ) + log p(θ) from {q_old!r} to {q_new!r}; it must "
                "maximize the expected complete-data log-likelihood"
                + (" (plus log_prior)" if callable(getattr(m, "log_prior", None)) else ""),
                q_old - q_new,
                tol,
            )
            return
        constraints = m.constraints
        u_star = flatten_params(new, constraints)
        # which slice of u belongs to which field, to name the field that is off
        blocks: list[tuple[str, slice]] = []
        start = 0
        for name in constraints:
            size = flatten_params(new, {name: constraints[name]}).size
            blocks.append((name, slice(start, start + size)))
            start += size
        worst, worst_field, worst_step = 0.0, "", 0.0
        for name, block in blocks:
            if block.stop == block.start:
                continue
            for _ in range(n_perturbations):
                direction = np.zeros_like(u_star)
                r = self.rng.normal(size=block.stop - block.start)
                direction[block] = r / np.linalg.norm(r)
                for step in (1e-3, -1e-3, 1e-5, -1e-5):
                    u = u_star + step * direction * np.maximum(1.0, np.abs(u_star))
                    with np.errstate(all="ignore"):
                        value = q_fn(unflatten_params(u, new, constraints))
                    if math.isfinite(value) and value - q_new > worst:
                        worst, worst_field, worst_step = value - q_new, name, step
        if worst > tol:
            self.add(
                law,
                "failed",
                f"m_step is not a maximizer of Q: a relative step of {abs(worst_step):g} in "
                f"'{worst_field}' from m_step's result raises Q(θ) + log p(θ) by {worst:.6g} "
                f"(Q = {q_new:.10g}). Check the closed-form update of '{worst_field}'"
                + (
                    "; a model with log_prior must fold the prior into m_step"
                    if callable(getattr(m, "log_prior", None))
                    else ""
                ),
                worst,
                tol,
            )
        else:
            self.add(
                law,
                "passed",
                f"{n_perturbations} random directions per field, steps ±1e-3 and ±1e-5: no "
                f"increase of Q beyond {tol:.2g} (largest {worst:.2g})",
                worst,
                tol,
            )

    def law_m_step_constraints(self) -> None:
        law = "m_step_constraints"
        m: Any = self.model
        if not isinstance(self.model, Constrained):
            self.add(law, "skipped", "no constraints declared")
            return
        if not self.closed_form:
            self.add(
                law,
                "skipped",
                "no closed-form m_step (the numerical M-step moves θ within the "
                "constraints by construction)",
            )
            return
        stats = m.expected_stats(self.params, self.x, self.post, self.weights)
        new = m.m_step(self.params, stats)
        if isinstance(m, Repairable):
            # as the driver does: a model may rely on repair to mend what m_step left
            new, _ = m.repair(new, stats, self.rng)
        problem = constraint_violation(new, m.constraints)
        if problem is not None:
            self.add(
                law,
                "failed",
                f"m_step returns parameters outside the declared constraints: {problem}. "
                "The driver stops such a fit with a ModelContractError; normalize weights, "
                "keep variances positive, ... in m_step",
            )
        else:
            self.add(
                law,
                "passed",
                "m_step's θ satisfies "
                + ", ".join(f"{k}: {c!r}" for k, c in m.constraints.items()),
            )

    def law_monotone(self, n_em_iter: int) -> None:
        try:
            result = fit(
                self.model,
                self.x,
                params=self.params,
                max_iter=n_em_iter,
                tol=0.0,
                sample_weight=self.weights,
                warn_not_converged=False,
            )
        except MonotonicityError as exc:
            self.add("monotone", "failed", str(exc), exc.drop)
            return
        except ModelContractError as exc:
            self.add("monotone", "failed", f"EM stopped with a contract error: {exc}")
            return
        steps = np.diff(result.history)
        smallest = float(steps.min()) if steps.size else 0.0
        self.add(
            "monotone",
            "passed",
            f"{result.n_iter} EM iterations, objective {result.history[0]:.8g} -> "
            f"{result.history[-1]:.8g} (smallest step {smallest:.2g})",
            max(0.0, -smallest),
        )

    def law_n_parameters(self) -> None:
        m = self.model
        if not (isinstance(m, CountsParameters) and isinstance(m, Constrained)):
            self.add(
                "n_parameters",
                "skipped",
                "needs both n_parameters(params) and constraints to compare",
            )
            return
        declared = int(m.n_parameters(self.params))
        free = count_free_parameters(self.params, m.constraints)
        # optional: the dimension of a continuous symmetry (e.g. rotations of PPCA's W)
        count_redundant = getattr(m, "redundant_parameters", None)
        redundant = int(count_redundant(self.params)) if callable(count_redundant) else 0
        parts = ", ".join(
            f"{name}: {count_free_parameters(self.params, {name: c})}"
            for name, c in m.constraints.items()
        )
        expected = free - redundant
        if declared != expected:
            extra = f" minus {redundant} redundant" if redundant else ""
            self.add(
                "n_parameters",
                "failed",
                f"n_parameters(params) returns {declared} but the constraints declare "
                f"{free} free values ({parts}){extra}, i.e. {expected}; fix n_parameters or "
                "the constraints (state unidentifiable directions such as rotations with "
                "redundant_parameters(params))",
                abs(declared - expected),
                0,
            )
        else:
            self.add("n_parameters", "passed", f"{declared} free parameters ({parts})")

    def law_log_joint_batch(self, rtol: float) -> None:
        m = self.model
        if not (self.enumerable and callable(getattr(m, "log_joint_batch", None))):
            return
        candidates = [self.params]
        if isinstance(m, Constrained):
            u = flatten_params(self.params, m.constraints)
            for _ in range(2):
                step = 1e-2 * self.rng.standard_normal(u.shape) * np.maximum(1.0, np.abs(u))
                candidates.append(unflatten_params(u + step, self.params, m.constraints))
        support = np.asarray(m.latent_support())
        worst = 0.0
        for j, s in enumerate(support):
            z = np.broadcast_to(s, (self.n, *np.shape(s)))
            batch = np.asarray(m.log_joint_batch(candidates, self.x, z), dtype=float)
            if batch.shape != (len(candidates), self.n):
                self.add(
                    "log_joint_batch",
                    "failed",
                    f"log_joint_batch returned shape {batch.shape} for {len(candidates)} "
                    f"parameter values and {self.n} rows; expected "
                    f"({len(candidates)}, {self.n})",
                )
                return
            for b, c in enumerate(candidates):
                one = np.asarray(m.log_joint(c, self.x, z), dtype=float)
                gap = float(np.max(np.abs(batch[b] - one)) / self.scale(one))
                if not np.isfinite(gap) and np.array_equal(batch[b], one):
                    gap = 0.0
                if not gap <= rtol:
                    self.add(
                        "log_joint_batch",
                        "failed",
                        f"row {b} of log_joint_batch differs from log_joint at that parameter "
                        f"value (support point {j}) by {gap:.3g} (relative)",
                        gap,
                        rtol,
                    )
                    return
                worst = max(worst, gap)
        self.add(
            "log_joint_batch",
            "passed",
            f"equals log_joint at {len(candidates)} parameter values",
            worst,
            rtol,
        )

    def law_constraints(self) -> None:
        m = self.model
        if not isinstance(m, Constrained):
            self.add("constraints", "skipped", "no constraints declared")
            return
        problem = constraint_violation(self.params, m.constraints)
        if problem is not None:
            self.add(
                "constraints",
                "failed",
                f"the parameters checked violate their declared constraints: {problem}; fix "
                "the parameters (initialize/m_step) or the declared constraint",
            )
            return
        # constraint_violation has reported a missing field; here every field exists
        for name, c in m.constraints.items():
            value = get_field(self.params, name)
            back = get_field(
                unflatten_params(flatten_params(self.params, {name: c}), self.params, {name: c}),
                name,
            )
            values = list(value) if isinstance(value, (tuple, list)) else [value]
            backs = list(back) if isinstance(back, (tuple, list)) else [back]
            for v, b in zip(values, backs, strict=True):
                v, b = np.asarray(v, dtype=float), np.asarray(b, dtype=float)
                err = float(np.max(np.abs(v - b) / (1.0 + np.abs(v)))) if v.size else 0.0
                if not err <= 1e-6:
                    self.add(
                        "constraints",
                        "failed",
                        f"field '{name}' does not satisfy its declared constraint {c!r}: "
                        f"mapping it to free values and back changes it by {err:.3g} "
                        "(relative); fix the parameters (initialize/m_step) or the declared "
                        "constraint",
                        err,
                        1e-6,
                    )
                    return
        self.add(
            "constraints",
            "passed",
            "parameters satisfy " + ", ".join(f"{k}: {c!r}" for k, c in m.constraints.items()),
        )


def _guard(checker: _Checker, law: str, run: Callable[[], Any]) -> Any:
    """Run one law; an exception raised by the model becomes that law's failure."""
    try:
        return run()
    except Exception as exc:  # the model's own code may raise anything
        checker.add(
            law,
            "failed",
            f"the model raised {type(exc).__name__} while this law was checked: {exc}",
        )
        return False


def _leaf_names(tree: Any) -> list[str]:
    """Dotted names of a statistics tree's leaves (field names of NamedTuples)."""
    if isinstance(tree, tuple) and hasattr(tree, "_fields"):
        out = []
        for field, value in zip(tree._fields, tree, strict=True):
            sub = _leaf_names(value)
            out += [field if s == "" else f"{field}.{s}" for s in sub]
        return out
    if isinstance(tree, dict):
        out = []
        for key, value in tree.items():
            out += [str(key) if s == "" else f"{key}.{s}" for s in _leaf_names(value)]
        return out
    if isinstance(tree, (tuple, list)):
        out = []
        for i, value in enumerate(tree):
            out += [str(i) if s == "" else f"{i}.{s}" for s in _leaf_names(value)]
        return out
    return [""] * len(tree_leaves(tree))


def check_model(
    model: Any,
    x: Any,
    params: Any = None,
    *,
    sample_weight: Any = None,
    random_state: int = 0,
    n_perturbations: int = 10,
    n_em_iter: int = 5,
    rtol: float = 1e-8,
    raise_on_failure: bool = True,
) -> CheckReport:
    """Check a model against the laws EM relies on (see the module table).

    Parameters
    ----------
    model : object
        A model implementing :mod:`latent_em.protocols`.
    x : array-like
        Data, indexed by row along axis 0 (checked by ``model.check_data`` if present).
    params : optional
        Parameters to check at; by default ``model.initialize(x, rng)``.
    sample_weight : array-like of shape (n,), optional
        Row weights used throughout.
    random_state : int, default 0
        Seeds the initialization and the random perturbation directions.
    n_perturbations : int, default 10
        Random directions per constrained field for the M-step maximizer law.
    n_em_iter : int, default 5
        EM iterations for the monotonicity law.
    rtol : float, default 1e-8
        Relative tolerance of the equalities (scaled by the size of the log-likelihood).
    raise_on_failure : bool, default True
        Raise :class:`~latent_em.ModelContractError` listing every failed law.

    Returns
    -------
    CheckReport
        Every law with its status, message and measured discrepancy.

    Raises
    ------
    ModelContractError
        When a law failed and ``raise_on_failure`` is true; the message holds the report.
    """
    name = type(model).__name__
    check_int(n_perturbations, "n_perturbations", minimum=1)
    check_int(n_em_iter, "n_em_iter", minimum=1)
    check_positive_float(rtol, "rtol")
    if isinstance(random_state, bool):
        raise TypeError(f"random_state must be an integer; got {random_state!r}")
    rng = np.random.default_rng(random_state)
    checker: _Checker | None = None
    results: list[LawResult]
    try:
        check_model_contract(model)
    except ModelContractError as exc:
        results = [LawResult("methods", "failed", str(exc))]
    else:
        if isinstance(model, ChecksData):
            x = model.check_data(x)
        weights = check_sample_weight(sample_weight, len(x))
        if params is None:
            params = model.initialize(x, rng)
        checker = _Checker(model, x, params, weights, rng)
        checker.add("methods", "passed", "required methods present")
        if _guard(checker, "posterior", lambda: checker.law_posterior(rtol)):
            _guard(checker, "log_marginal", lambda: checker.law_log_marginal(rtol))
            _guard(checker, "elbo", lambda: checker.law_elbo(rtol))
            _guard(checker, "additive_stats", lambda: checker.law_additive(rtol))
            _guard(checker, "m_step_maximizer", lambda: checker.law_m_step(rtol, n_perturbations))
            _guard(checker, "m_step_constraints", checker.law_m_step_constraints)
        _guard(checker, "monotone", lambda: checker.law_monotone(n_em_iter))
        _guard(checker, "n_parameters", checker.law_n_parameters)
        _guard(checker, "constraints", checker.law_constraints)
        _guard(checker, "log_joint_batch", lambda: checker.law_log_joint_batch(rtol))
        results = checker.results
    report = CheckReport(name, tuple(results))
    if raise_on_failure and not report.passed:
        failed = "\n".join(f"- {r.law}: {r.message}" for r in report.failures)
        raise ModelContractError(f"{name} failed {len(report.failures)} law(s):\n{failed}")
    return report
