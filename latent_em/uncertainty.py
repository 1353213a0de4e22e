"""Standard errors of EM estimates: observed information (Louis 1982) and the bootstrap.

EM gives a point estimate θ̂ but no curvature. Two routes to ``Cov(θ̂)``:

* **Observed information.** ``I(θ̂) = -∇² L(θ̂)`` with ``L(θ) = Σ_n w_n log p(x_n | θ)``,
  and ``Cov(θ̂) ≈ I(θ̂)⁻¹``.

  - Louis' (1982) identity writes it with complete-data quantities only::

        I(θ) = Σ_n w_n ( E[-∇² log p(x_n, z | θ) | x_n] - Cov[∇ log p(x_n, z | θ) | x_n] )

    (complete information minus missing information). For the built-in Gaussian mixture
    (:func:`louis_information`) it is exact and analytic: in the exponential-family
    natural parameters (mixing logits ``α_k = log φ_k/φ_K``; ``η_k = Σ_k⁻¹ μ_k``; the
    precision entries ``Λ_k = Σ_k⁻¹``) the complete-data Hessian does not depend on x, it
    is the covariance of the sufficient statistics, and the per-observation complete-data
    scores are ``T(x_n) - E_k[T]``.
  - For any model with ``constraints`` a numerical fallback differentiates ``L`` twice
    by central differences in the unconstrained parameterization ``u`` of
    :func:`~latent_em.constraints.flatten_params`.

  Either way the covariance is carried to the natural scale by the delta method,
  ``Cov(θ) = J Cov(u) Jᵀ`` with ``J = ∂θ/∂u``; the natural-scale vector lists every entry
  of every constrained field (all K weights, every covariance entry), so it has
  more entries than free parameters and a singular covariance.

* **Bootstrap.** Refit on resampled data (rows with replacement, or draws from the
  fitted model), starting at θ̂, align the component labels to θ̂ by optimal matching
  (:func:`scipy.optimize.linear_sum_assignment` on the overlap of responsibilities), and
  keep the replicate parameters.

References
----------
T. A. Louis (1982), "Finding the observed information matrix when using the EM
algorithm", *JRSS B* 44(2), 226-233. G. McLachlan and D. Peel (2000), *Finite Mixture
Models*, §2.16 (standard errors, bootstrap).
"""

from __future__ import annotations

import dataclasses
import functools
import numbers
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .constraints import flatten_params, get_field, replace_fields, unflatten_params
from .em import EMResult, check_sample_weight, fit, posterior
from .exceptions import ModelContractError
from .models.gaussian import GaussianMixtureModel
from .protocols import ChecksData, Constrained, EnumerableLatent, HasLogPrior, Samples

__all__ = [
    "StandardErrors",
    "BootstrapResult",
    "standard_errors",
    "bootstrap",
    "louis_information",
    "numerical_information",
]


# ----------------------------------------------------------------------------- records


@dataclasses.dataclass(frozen=True)
class StandardErrors:
    """Standard errors from the observed information.

    Attributes
    ----------
    params : Any
        The estimate θ̂ the information was evaluated at.
    se : Any
        Same container as ``params``: for every constrained field an array of its shape
        holding the standard error of each entry on the natural scale; ``None`` for
        fields that are not estimated.
    estimates : numpy.ndarray
        ``(m,)`` natural-scale entries of the constrained fields, in ``constraints`` order.
    covariance : numpy.ndarray
        ``(m, m)`` covariance matrix of ``estimates`` (delta method).
    names : tuple of str
        ``m`` labels such as ``"means[1, 0]"``.
    information : numpy.ndarray
        ``(p, p)`` observed information in the working parameterization (``p`` free
        parameters): natural exponential-family parameters for ``"louis"``, the
        unconstrained vector for ``"numerical"``.
    method : str
        ``"louis"`` or ``"numerical"``.
    """

    params: Any
    se: Any
    estimates: np.ndarray
    covariance: np.ndarray
    names: tuple[str, ...]
    information: np.ndarray
    method: str

    def table(self) -> list[tuple[str, float, float]]:
        """``(name, estimate, standard error)`` for every natural-scale entry."""
        sd = np.sqrt(np.maximum(np.diag(self.covariance), 0.0))
        return [
            (n, float(e), float(s)) for n, e, s in zip(self.names, self.estimates, sd, strict=True)
        ]


@dataclasses.dataclass(frozen=True)
class BootstrapResult:
    """Bootstrap replicates of the parameters.

    Attributes
    ----------
    params : Any
        The estimate θ̂ every replicate fit started from (and was aligned to).
    replicates : Any
        Same container as ``params``; every array field gains a leading axis of length
        ``n_boot`` (component labels aligned to ``params``).
    se : Any
        Standard deviation (``ddof=1``) of the replicates, field by field.
    kind : str
        ``"nonparametric"`` (rows resampled with replacement) or ``"parametric"``.
    log_likelihoods : numpy.ndarray
        ``(n_boot,)`` log-likelihood of each replicate fit on its own data.
    converged : numpy.ndarray
        ``(n_boot,)`` whether each replicate fit converged.
    permutations : numpy.ndarray or None
        ``(n_boot, K)``: replicate component ``permutations[b, j]`` was matched to
        component ``j`` of ``params`` (``None`` for models without discrete z).
    """

    params: Any
    replicates: Any
    se: Any
    kind: str
    log_likelihoods: np.ndarray
    converged: np.ndarray
    permutations: np.ndarray | None

    @property
    def n_boot(self) -> int:
        """Number of replicates."""
        return int(self.log_likelihoods.shape[0])


# ----------------------------------------------------------------------------- inputs


def _resolve(fitted: Any, x: Any, params: Any) -> tuple[Any, Any, Any]:
    """``(model, params, x)`` from an EMResult, a fitted estimator or a model."""
    if isinstance(fitted, EMResult):
        model = fitted.model
        params = fitted.params if params is None else params
    elif hasattr(fitted, "result_") and hasattr(fitted, "model_"):
        model = fitted.model_
        params = fitted.params_ if params is None else params
        # the estimator's own conversion (e.g. category labels to codes), then the model's
        return model, params, fitted._check_predict_data(x)
    elif hasattr(fitted, "_make_model") and not hasattr(fitted, "result_"):
        raise ValueError(f"fitted: this {type(fitted).__name__} is not fitted yet; call fit(X)")
    else:
        model = fitted
        if params is None:
            raise ValueError(
                "params: give the estimate when `fitted` is a model (or pass the EMResult "
                "or the fitted estimator instead)"
            )
    if isinstance(model, ChecksData):
        x = model.check_data(x)
    return model, params, x


def _fitted_total_weight(fitted: Any) -> float | None:
    """``n_observations`` of the fit behind ``fitted`` (``None`` for a bare model)."""
    if isinstance(fitted, EMResult):
        return float(fitted.n_observations)
    result = getattr(fitted, "result_", None)
    if isinstance(result, EMResult):
        return float(result.n_observations)
    return None


def _check_fit_weights(fitted: Any, weights: np.ndarray, given: bool, what: str) -> None:
    """The row weights here must give the fit's total weight (``n_observations``).

    A fit made with ``sample_weight`` records only the weights' sum; the information (or
    a resample) computed with other weights, or none, belongs to other data.
    """
    expected = _fitted_total_weight(fitted)
    total = float(weights.sum())
    if expected is None or abs(total - expected) <= 1e-9 * max(abs(expected), 1.0):
        return
    if given:
        raise ValueError(
            f"sample_weight: these weights sum to {total:.10g}, but the fit's total weight "
            f"(n_observations) is {expected:.10g}; pass the data and the sample_weight the "
            "fit used"
        )
    raise ValueError(
        f"sample_weight: the fit's total weight (n_observations = {expected:.10g}) is not "
        f"the {len(weights)} rows of x, so the fit used row weights; {what}"
    )


def _constraints(model: Any) -> Mapping[str, Any]:
    if not isinstance(model, Constrained):
        raise ModelContractError(
            f"{type(model).__name__} declares no `constraints`; standard errors need to know "
            "which parameter fields are free and how they are constrained"
        )
    return model.constraints


def _field_elements(params: Any, constraints: Mapping[str, Any]) -> list[tuple[str, np.ndarray]]:
    out: list[tuple[str, np.ndarray]] = []
    for name in constraints:
        value = get_field(params, name)
        if isinstance(value, (tuple, list)):
            out.extend((f"{name}[{i}]", np.asarray(v, dtype=float)) for i, v in enumerate(value))
        else:
            out.append((name, np.asarray(value, dtype=float)))
    return out


def _natural_vector(params: Any, constraints: Mapping[str, Any]) -> np.ndarray:
    parts = [v.ravel() for _, v in _field_elements(params, constraints)]
    return np.concatenate(parts) if parts else np.zeros(0)


def _natural_names(params: Any, constraints: Mapping[str, Any]) -> tuple[str, ...]:
    names: list[str] = []
    for name, value in _field_elements(params, constraints):
        if value.ndim == 0:
            names.append(name)
        else:
            names.extend(f"{name}[{', '.join(map(str, idx))}]" for idx in np.ndindex(value.shape))
    return tuple(names)


def _se_tree(params: Any, constraints: Mapping[str, Any], sd: np.ndarray) -> Any:
    """Put natural-scale standard errors back into the parameter container."""
    updates: dict[str, Any] = {}
    start = 0
    for name in constraints:
        value = get_field(params, name)
        elements = list(value) if isinstance(value, (tuple, list)) else [value]
        rebuilt = []
        for element in elements:
            shape = np.shape(element)
            size = int(np.prod(shape))
            rebuilt.append(sd[start : start + size].reshape(shape))
            start += size
        updates[name] = type(value)(rebuilt) if isinstance(value, (tuple, list)) else rebuilt[0]
    fields = getattr(params, "_fields", None) or (
        list(params)
        if isinstance(params, Mapping)
        else [f.name for f in dataclasses.fields(params)]
    )
    for name in fields:
        updates.setdefault(name, None)
    return replace_fields(params, updates)


def _invert_information(information: np.ndarray, method: str) -> np.ndarray:
    sym = 0.5 * (information + information.T)
    eigvals = np.linalg.eigvalsh(sym)
    if not eigvals[0] > 1e-12 * max(abs(eigvals[-1]), 1e-300):
        warnings.warn(
            f"the observed information ({method}) is not positive definite (smallest "
            f"eigenvalue {eigvals[0]:.3g}): the parameters are not a strict local maximum "
            "(EM not converged, an empty or duplicated component, or a non-identified "
            "model); standard errors are unreliable",
            RuntimeWarning,
            stacklevel=3,
        )
        return np.linalg.pinv(sym)
    return np.linalg.inv(sym)


# ------------------------------------------------------------- Louis' method, built-ins


@functools.singledispatch
def louis_information(
    model: Any, params: Any, x: Any, weights: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Observed information by Louis' method, for models that register an implementation.

    Returns
    -------
    information : (p, p)
        Observed information in the model's working parameterization.
    jacobian : (m, p)
        Derivative of the natural-scale vector (every entry of every constrained field,
        in ``constraints`` order) with respect to the working parameters.

    Other built-in models register their own implementation with
    ``@louis_information.register``.
    """
    raise NotImplementedError(f"no analytic Louis information for {type(model).__name__}")


def _precision_basis(covariance_type: str, d: int) -> list[np.ndarray]:
    """Symmetric matrices ``B_j`` with ``Λ = Σ_j λ_j B_j`` for the covariance structure."""
    if covariance_type == "spherical":
        return [np.eye(d)]
    basis = []
    for a in range(d):
        for b in range(a, d):
            if a != b and covariance_type == "diag":
                continue
            m = np.zeros((d, d))
            m[a, b] = m[b, a] = 1.0
            basis.append(m)
    return basis


@louis_information.register
def _louis_gaussian_mixture(
    model: GaussianMixtureModel, params: Any, x: Any, weights: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x, dtype=float)
    phi = np.asarray(params.weights, dtype=float)
    k_comp, d = np.shape(params.means)
    ctype = model.covariance_type
    full_cov = model.covariance.to_full(np.asarray(params.covariances, dtype=float), k_comp, d)
    # The natural parameterization depends on the origin; centring the data (and the
    # means) at their weighted average keeps the information well conditioned. The
    # natural-scale covariance of (φ, μ, Σ) does not depend on the shift.
    centre = (weights @ x) / weights.sum()
    xc = x - centre
    mu = np.asarray(params.means, dtype=float) - centre
    basis = _precision_basis(ctype, d)
    q = len(basis)
    shared = ctype == "tied"
    n_alpha = k_comp - 1
    p = n_alpha + k_comp * d + (q if shared else k_comp * q)

    def eta_index(k: int) -> np.ndarray:
        return n_alpha + k * d + np.arange(d)

    def lam_index(k: int) -> np.ndarray:
        return n_alpha + k_comp * d + (0 if shared else k * q) + np.arange(q)

    # complete-data information: Σ_k N_k Cov_k(T) plus the multinomial block of the logits
    resp, _ = posterior(model, params, x)
    resp = np.asarray(resp)
    rw = resp * weights[:, None]
    counts = rw.sum(axis=0)
    complete = np.zeros((p, p))
    head = phi[:n_alpha]
    complete[:n_alpha, :n_alpha] = weights.sum() * (np.diag(head) - np.outer(head, head))
    for k in range(k_comp):
        sig = full_cov[k]
        b_sig = [b @ sig for b in basis]
        cov_xt = np.stack([-(sig @ b @ mu[k]) for b in basis], axis=1)  # (d, q)
        cov_tt = np.array(
            [
                [
                    0.5 * np.trace(bs_j @ bs_l) + mu[k] @ bs_j @ basis[l] @ mu[k]
                    for l, bs_l in enumerate(b_sig)
                ]
                for bs_j in b_sig
            ]
        )
        ie, il = eta_index(k), lam_index(k)
        complete[np.ix_(ie, ie)] += counts[k] * sig
        complete[np.ix_(ie, il)] += counts[k] * cov_xt
        complete[np.ix_(il, ie)] += counts[k] * cov_xt.T
        complete[np.ix_(il, il)] += counts[k] * cov_tt

    # missing information: Σ_n w_n Cov_{z | x_n}[complete-data score], in row blocks
    missing = np.zeros((p, p))
    expected_t = np.array(
        [
            [-0.5 * (np.trace(b @ full_cov[k]) + mu[k] @ b @ mu[k]) for b in basis]
            for k in range(k_comp)
        ]
    )
    block = max(1, 4096 // max(1, k_comp))
    for start in range(0, x.shape[0], block):
        xs = xc[start : start + block]
        r = resp[start : start + block]
        ws = weights[start : start + block]
        scores = np.zeros((xs.shape[0], k_comp, p))
        for k in range(k_comp):
            if n_alpha:
                scores[:, k, :n_alpha] = -head
                if k < n_alpha:
                    scores[:, k, k] += 1.0
            scores[:, k, eta_index(k)] = xs - mu[k]
            t = np.stack([-0.5 * np.einsum("nd,de,ne->n", xs, b, xs) for b in basis], axis=1)
            scores[:, k, lam_index(k)] = t - expected_t[k]
        mean_score = np.einsum("nk,nkp->np", r, scores)
        missing += np.einsum("nk,nkp,nkq->pq", r * ws[:, None], scores, scores)
        missing -= np.einsum("n,np,nq->pq", ws, mean_score, mean_score)
    information = complete - missing

    # Jacobian of (weights, means, covariances) with respect to (α, η, λ)
    sizes = (k_comp, k_comp * d, int(np.prod(np.shape(params.covariances))))
    jac = np.zeros((sum(sizes), p))
    jac[:k_comp, :n_alpha] = (np.eye(k_comp)[:, :n_alpha] - head[None, :]) * phi[:, None]
    cov_rows = sizes[0] + sizes[1]
    for k in range(k_comp):
        sig = full_cov[k]
        rows_mu = k_comp + k * d + np.arange(d)
        jac[np.ix_(rows_mu, eta_index(k))] = sig
        for j, b in enumerate(basis):
            col = lam_index(k)[j]
            # μ = Λ⁻¹ η and Σ = Λ⁻¹, so ∂/∂λ_j gives -Σ B_j μ and -Σ B_j Σ
            jac[rows_mu, col] += -(sig @ b @ mu[k])
            dsig = -(sig @ b @ sig)
            if ctype == "full":
                jac[cov_rows + k * d * d + np.arange(d * d), col] = dsig.ravel()
            elif ctype == "diag":
                jac[cov_rows + k * d + np.arange(d), col] = np.diag(dsig)
            elif ctype == "spherical":
                jac[cov_rows + k, col] = dsig[0, 0]
            elif k == 0:  # tied: one shared Σ
                jac[cov_rows + np.arange(d * d), col] = dsig.ravel()
    return information, jac


# ------------------------------------------------------------- numerical fallback


def _objective(model: Any, params: Any, x: Any, weights: np.ndarray) -> float:
    _, lm = posterior(model, params, x)
    value = float(np.dot(weights, lm))
    if isinstance(model, HasLogPrior):
        value += float(model.log_prior(params))
    return value


def numerical_information(
    model: Any, params: Any, x: Any, weights: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Observed information by finite differences, for any model with ``constraints``.

    ``-∇² L(u)`` at ``u = flatten_params(params)`` by central second differences (step
    ``ε^¼ max(1, |u_i|)``, about ``2 p²`` log-likelihood evaluations), and the Jacobian of
    the natural-scale vector by central first differences (no data involved). For a
    MAP-EM model the log-prior is included (the curvature of the log-posterior).

    Returns
    -------
    information : (p, p)
    jacobian : (m, p)
    """
    constraints = _constraints(model)
    u0 = flatten_params(params, constraints)
    p = u0.size

    def f(u: np.ndarray) -> float:
        with np.errstate(over="ignore", under="ignore"):
            return _objective(model, unflatten_params(u, params, constraints), x, weights)

    h = np.finfo(float).eps ** 0.25 * np.maximum(1.0, np.abs(u0))
    f0 = f(u0)
    hess = np.empty((p, p))
    for i in range(p):
        ei = np.zeros(p)
        ei[i] = h[i]
        hess[i, i] = (f(u0 + 2 * ei) - 2 * f0 + f(u0 - 2 * ei)) / (4 * h[i] ** 2)
        for j in range(i):
            ej = np.zeros(p)
            ej[j] = h[j]
            value = (f(u0 + ei + ej) - f(u0 + ei - ej) - f(u0 - ei + ej) + f(u0 - ei - ej)) / (
                4 * h[i] * h[j]
            )
            hess[i, j] = hess[j, i] = value
    step = np.cbrt(np.finfo(float).eps) * np.maximum(1.0, np.abs(u0))
    columns = []
    for i in range(p):
        e = np.zeros(p)
        e[i] = step[i]
        plus = _natural_vector(unflatten_params(u0 + e, params, constraints), constraints)
        minus = _natural_vector(unflatten_params(u0 - e, params, constraints), constraints)
        columns.append((plus - minus) / (2 * step[i]))
    jac = np.stack(columns, axis=1) if columns else np.zeros((0, 0))
    return -hess, jac


# ------------------------------------------------------------- public entry points


def standard_errors(
    fitted: Any,
    x: Any,
    *,
    params: Any = None,
    method: str = "auto",
    sample_weight: Any = None,
) -> StandardErrors:
    """Standard errors of every free parameter from the observed information.

    Parameters
    ----------
    fitted : EMResult, fitted estimator or model
        What was fitted; with a bare model, ``params`` is required.
    x : array-like
        The data the estimate was fitted to.
    params : optional
        Evaluate at these parameters instead of the fitted ones.
    method : {"auto", "louis", "numerical"}, default "auto"
        ``"louis"``: analytic Louis (1982) information (built-in models);
        ``"numerical"``: finite differences in the unconstrained parameterization (any
        model with ``constraints``); ``"auto"`` uses Louis when available.
    sample_weight : array-like of shape (n,), optional
        The row weights of the fit (frequency weights). Required when the fit used
        them: for an EMResult or a fitted estimator, weights whose sum is not the fit's
        ``n_observations`` (or no weights for a weighted fit) raise ``ValueError``.

    Returns
    -------
    StandardErrors
        Natural-scale standard errors (``se``, shaped like the parameters), the
        covariance matrix and the information.

    Notes
    -----
    The information must be evaluated at a converged maximum (fit with a small ``tol``);
    elsewhere it need not be positive definite and a ``RuntimeWarning`` says so.
    """
    if method not in ("auto", "louis", "numerical"):
        raise ValueError(f"method must be 'auto', 'louis' or 'numerical'; got {method!r}")
    model, params, x = _resolve(fitted, x, params)
    parsimonious = isinstance(model, GaussianMixtureModel) and model.covariance.uses_current
    if parsimonious and method == "louis":
        raise ValueError(
            f"method='louis' is not available for covariance_type="
            f"{model.covariance_type!r} (mclust's parsimonious structures): use "
            "method='numerical' (or 'auto'), which differentiates in the structure's own "
            "parameters, or bootstrap()"
        )
    constraints = _constraints(model)
    weights = check_sample_weight(sample_weight, len(x))
    _check_fit_weights(
        fitted,
        weights,
        sample_weight is not None,
        "pass them as standard_errors(..., sample_weight=w) (without them every row would "
        "count once and the standard errors would belong to other data)",
    )
    has_louis = louis_information.dispatch(type(model)) is not louis_information.dispatch(object)
    if method == "louis" and not has_louis:
        raise ValueError(
            f"method='louis' is not available for {type(model).__name__}; use "
            "method='numerical' (or 'auto')"
        )
    # the analytic Louis information of the Gaussian mixture is for the unstructured
    # covariances; mclust's other structures are differentiated in their own parameters
    has_louis = has_louis and not parsimonious
    use = "louis" if method == "louis" or (method == "auto" and has_louis) else "numerical"
    if use == "louis":
        information, jac = louis_information(model, params, x, weights)
    else:
        information, jac = numerical_information(model, params, x, weights)
    cov_work = _invert_information(information, use)
    covariance = jac @ cov_work @ jac.T
    covariance = 0.5 * (covariance + covariance.T)
    sd = np.sqrt(np.maximum(np.diag(covariance), 0.0))
    return StandardErrors(
        params=params,
        se=_se_tree(params, constraints, sd),
        estimates=_natural_vector(params, constraints),
        covariance=covariance,
        names=_natural_names(params, constraints),
        information=information,
        method=use,
    )


def _component_fields(model: Any, params: Any, k: int) -> tuple[str, ...]:
    """Fields whose axis 0 indexes the components (permuted when labels are aligned)."""
    own = getattr(model, "component_fields", None)
    if callable(own):
        return tuple(own(params))
    if isinstance(model, GaussianMixtureModel):
        fields = ("weights", "means")
        return fields if model.covariance_type == "tied" else (*fields, "covariances")
    # generic rule: constrained fields with one row per support point (for a field
    # holding a tuple of arrays, every element must have one)
    names = model.constraints if isinstance(model, Constrained) else ()

    def per_component(value: Any) -> bool:
        if isinstance(value, (tuple, list)):
            return bool(value) and all(per_component(v) for v in value)
        return np.ndim(value) >= 1 and np.shape(value)[0] == k

    return tuple(n for n in names if per_component(get_field(params, n)))


def _permute(value: Any, perm: np.ndarray) -> Any:
    """Reorder axis 0 of an array, or of every array in a tuple field."""
    if isinstance(value, (tuple, list)):
        return type(value)(np.asarray(v)[perm] for v in value)
    return np.asarray(value)[perm]


def _param_field_names(params: Any) -> list[str]:
    if hasattr(params, "_fields"):
        return list(params._fields)
    if isinstance(params, Mapping):
        return list(params)
    return [f.name for f in dataclasses.fields(params)]


def bootstrap(
    fitted: Any,
    x: Any,
    *,
    n_boot: int = 200,
    kind: str = "nonparametric",
    params: Any = None,
    random_state: Any = None,
    tol: float = 1e-8,
    max_iter: int = 1000,
    accelerate: Any = "squarem",
    component_fields: Sequence[str] | None = None,
) -> BootstrapResult:
    """Bootstrap the estimate: refit on resampled data, starting at the estimate.

    Parameters
    ----------
    fitted : EMResult, fitted estimator or model
        What was fitted; with a bare model, ``params`` is required.
    x : array-like
        The data the estimate was fitted to.
    n_boot : int, default 200
        Number of replicates.
    kind : {"nonparametric", "parametric"}, default "nonparametric"
        Resample rows with replacement, or draw ``n`` rows from the fitted model (which
        needs ``sample(params, n, rng)``).
    params : optional
        Start (and alignment target) instead of the fitted parameters.
    random_state : int, numpy.random.Generator or None
        Seeds the resampling.
    tol, max_iter : float, int
        Passed to :func:`latent_em.fit` for every replicate.
    accelerate : default "squarem"
        Passed to :func:`latent_em.fit` (``None`` for plain EM).
    component_fields : sequence of str, optional
        Fields whose axis 0 indexes the components, permuted to align labels. By default
        the model's ``component_fields(params)`` if it has one, the weights, means and
        (unless tied) covariances for the Gaussian mixture, else every constrained field
        with one row per support point.

    Returns
    -------
    BootstrapResult
        Aligned replicate arrays (leading axis ``n_boot``) and their standard deviations.

    Notes
    -----
    Labels are aligned to the estimate by maximizing ``Σ_j Σ_n r̂_nj r^b_{n π(j)}``, the
    overlap of the responsibilities on the original data under the estimate and under
    replicate ``b``, over permutations ``π`` (:func:`scipy.optimize.linear_sum_assignment`).
    """
    if isinstance(n_boot, bool) or not isinstance(n_boot, numbers.Integral) or n_boot < 2:
        raise ValueError(f"n_boot must be an integer >= 2; got {n_boot!r}")
    if kind not in ("nonparametric", "parametric"):
        raise ValueError(f"kind must be 'nonparametric' or 'parametric'; got {kind!r}")
    model, params, x = _resolve(fitted, x, params)
    _check_fit_weights(
        fitted,
        np.ones(len(x)),
        False,
        "bootstrap resamples rows with equal weights; for frequency weights repeat each "
        "row as often as its weight (np.repeat(x, w, axis=0)) and refit",
    )
    if kind == "parametric" and not isinstance(model, Samples):
        raise ModelContractError(
            f"kind='parametric' needs {type(model).__name__}.sample(params, n, rng)"
        )
    from scipy.optimize import linear_sum_assignment

    rng = np.random.default_rng(random_state)
    n = len(x)
    discrete = isinstance(model, EnumerableLatent)
    if discrete:
        k = len(model.latent_support())
        reference = np.asarray(posterior(model, params, x)[0])
        fields = (
            tuple(component_fields)
            if component_fields is not None
            else _component_fields(model, params, k)
        )
    names = _param_field_names(params)
    draws: dict[str, list[Any]] = {name: [] for name in names}
    lls, conv, perms = [], [], []
    for _ in range(n_boot):
        if kind == "nonparametric":
            xb = x[rng.integers(0, n, size=n)]
        else:
            xb, _z = model.sample(params, n, rng)
        result = fit(
            model,
            xb,
            params=params,
            tol=tol,
            max_iter=max_iter,
            accelerate=accelerate,
            warn_not_converged=False,
        )
        est = result.params
        if discrete:
            overlap = reference.T @ np.asarray(posterior(model, est, x)[0])
            _, perm = linear_sum_assignment(-overlap)
            est = replace_fields(est, {f: _permute(get_field(est, f), perm) for f in fields})
            perms.append(perm)
        for name in names:
            draws[name].append(get_field(est, name))
        lls.append(result.log_likelihood)
        conv.append(result.converged)
    stacked = {name: _stack(values) for name, values in draws.items()}
    replicates = replace_fields(params, stacked)
    se = replace_fields(
        params,
        {name: _std(value) for name, value in stacked.items()},
    )
    return BootstrapResult(
        params=params,
        replicates=replicates,
        se=se,
        kind=kind,
        log_likelihoods=np.asarray(lls),
        converged=np.asarray(conv, dtype=bool),
        permutations=np.asarray(perms) if discrete else None,
    )


def _stack(values: list[Any]) -> Any:
    if isinstance(values[0], (tuple, list)):
        return type(values[0])(np.stack(parts) for parts in zip(*values, strict=True))
    try:
        return np.stack([np.asarray(v, dtype=float) for v in values])
    except (TypeError, ValueError):
        return values


def _std(value: Any) -> Any:
    if isinstance(value, (tuple, list)) and not isinstance(value, np.ndarray):
        return type(value)(_std(v) for v in value)
    if isinstance(value, np.ndarray) and value.dtype.kind == "f":
        return value.std(axis=0, ddof=1)
    return None
