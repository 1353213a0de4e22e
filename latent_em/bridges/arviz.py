"""EM fits as ArviZ objects (``InferenceData`` on ArviZ 0.2x, ``xarray.DataTree`` on 1.x).

:func:`to_inference_data` lays an EM fit out the way ArviZ lays out a posterior, so
``arviz.summary``, ``arviz.plot_forest`` (EM next to NUTS) and netCDF files work on it:

=================  ==================================================================
group              content
=================  ==================================================================
posterior          bootstrap or Laplace draws of the parameters when requested, else
                   the EM estimate as a single draw (``chain = draw = 1``)
constant_data      the EM estimate (same variable names as the posterior)
observed_data      the data, variable ``x`` with dims ``(obs_id, feature)``
log_likelihood     ``log p(x_n | θ)`` per posterior draw and row (variable ``x``)
sample_stats       the EM trace: ``em_log_likelihood`` per iteration (one chain)
=================  ==================================================================

Parameter variables are named after the fields of the parameters (``weights``,
``means``, ...); a field holding a tuple of arrays (the categorical mixture's ``probs``)
becomes ``probs_0``, ``probs_1``, ... — the same names :func:`~latent_em.bridges.to_pymc`
uses, so EM and NUTS objects line up in a forest plot.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from . import _compat
from .pymc import resolve_data, resolve_fit

__all__ = [
    "to_inference_data",
    "draws_to_inference_data",
    "parameter_dims",
    "plot_forest_em_vs_nuts",
    "summary",
    "to_netcdf",
    "from_netcdf",
]

DRAW_KINDS = (None, "bootstrap", "laplace")


def _param_variables(params: Any) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for field, value in zip(params._fields, params, strict=True):
        if isinstance(value, (tuple, list)):
            for j, v in enumerate(value):
                out[f"{field}_{j}"] = np.asarray(v, dtype=float)
        else:
            out[field] = np.asarray(value, dtype=float)
    return out


def parameter_dims(values: Mapping[str, Any], n_components: int, n_features: int) -> dict:
    """Named dims of parameter variables, from their shapes (one draw, no chain/draw).

    A leading axis of length K is ``component``; then axes of length D are ``feature``
    and ``feature_bis`` (a covariance matrix); the columns of the categorical model's
    ``probs_j`` are ``level_j``. The same names as the PyMC models of
    :func:`~latent_em.bridges.to_pymc`, so EM and NUTS objects line up.
    """
    dims: dict[str, list[str]] = {}
    for name, value in values.items():
        shape = np.shape(value)
        out: list[str] = []
        rest = list(shape)
        if (
            rest
            and rest[0] == n_components
            and not (name == "covariances" and len(rest) == 2 and rest == [n_features, n_features])
        ):
            out.append("component")
            rest = rest[1:]
        feature_names = ["feature", "feature_bis"]
        for size in rest:
            if name.startswith("probs_") and not out[1:]:
                out.append(f"level_{name.split('_', 1)[1]}")
            elif size == n_features and feature_names:
                out.append(feature_names.pop(0))
            else:
                out.append(f"{name}_dim_{len(out)}")
        dims[name] = out
    return dims


def _component_fields(model: Any, params: Any) -> list[str]:
    """Fields whose leading axis indexes the K components (those a relabeling permutes)."""
    k = len(np.asarray(params.weights))
    shared = {"covariances"} if getattr(model, "covariance_type", None) == "tied" else set()
    fields = []
    for field, value in zip(params._fields, params, strict=True):
        if field in shared:
            continue
        parts = value if isinstance(value, (tuple, list)) else (value,)
        if all(np.ndim(p) >= 1 and np.shape(p)[0] == k for p in parts):
            fields.append(field)
    return fields


def _permute_params(params: Any, perm: np.ndarray, fields: Sequence[str]) -> Any:
    updates = {}
    for field in fields:
        value = getattr(params, field)
        if isinstance(value, (tuple, list)):
            updates[field] = type(value)(np.asarray(v)[perm] for v in value)
        else:
            updates[field] = np.asarray(value)[perm]
    return params._replace(**updates)


def _bootstrap(
    model: Any, params: Any, x: Any, n_draws: int, rng: np.random.Generator
) -> list[Any]:
    """Nonparametric bootstrap: EM refits on resampled rows, started at the estimate and
    relabeled to it (each refit may otherwise come back in any label order) on the whole
    component: the refit's responsibilities on the original rows are matched to the
    estimate's (:func:`latent_em.bridges.relabel.allocation_permutations`)."""
    from ..em import fit, posterior
    from .relabel import allocation_permutations

    fields = _component_fields(model, params)
    reference = np.asarray(posterior(model, params, x)[0], dtype=float)
    n = len(x)
    out = []
    for _ in range(n_draws):
        idx = rng.integers(0, n, size=n)
        res = fit(model, x[idx], params=params, warn_not_converged=False)
        resp = np.asarray(posterior(model, res.params, x)[0], dtype=float)
        perm = allocation_permutations(reference, resp[None])[0]
        out.append(_permute_params(res.params, perm, fields))
    return out


def _laplace(model: Any, params: Any, x: Any, n_draws: int, rng: np.random.Generator) -> list[Any]:
    """Laplace approximation: a normal in the model's unconstrained coordinates with the
    inverse observed information (central finite differences of the log-likelihood)."""
    from ..constraints import flatten_params, unflatten_params
    from ..em import log_likelihood
    from ..protocols import Constrained

    if not isinstance(model, Constrained):
        raise ValueError(
            f"draws='laplace' needs a model with constraints; {type(model).__name__} has none "
            "(use draws='bootstrap')"
        )
    cons = model.constraints
    u0 = flatten_params(params, cons)
    p = u0.size

    def f(u: np.ndarray) -> float:
        return log_likelihood(model, unflatten_params(u, params, cons), x)

    h = 1e-4 * np.maximum(1.0, np.abs(u0))
    hess = np.empty((p, p))
    f0 = f(u0)
    for i in range(p):
        ei = np.zeros(p)
        ei[i] = h[i]
        hess[i, i] = (f(u0 + ei) - 2.0 * f0 + f(u0 - ei)) / h[i] ** 2
        for j in range(i):
            ej = np.zeros(p)
            ej[j] = h[j]
            val = (f(u0 + ei + ej) - f(u0 + ei - ej) - f(u0 - ei + ej) + f(u0 - ei - ej)) / (
                4.0 * h[i] * h[j]
            )
            hess[i, j] = hess[j, i] = val
    info = -0.5 * (hess + hess.T)
    try:
        chol = np.linalg.cholesky(info)
    except np.linalg.LinAlgError as exc:
        raise ValueError(
            "draws='laplace': the observed information is not positive definite at the EM "
            "estimate (not a strict local maximum, or a parameter on a boundary); use "
            "draws='bootstrap'"
        ) from exc
    # u = u0 + L^{-T} ε has covariance (L Lᵀ)^{-1} = info^{-1}
    eps = rng.standard_normal((n_draws, p))
    us = u0 + np.linalg.solve(chol.T, eps.T).T
    return [unflatten_params(u, params, cons) for u in us]


def to_inference_data(
    fitted: Any,
    X: Any,
    *,
    draws: str | None = None,
    n_draws: int = 200,
    random_seed: int | None = None,
    model: Any = None,
) -> Any:
    """An EM fit as an ArviZ object (see the module docstring for the groups).

    Parameters
    ----------
    fitted : estimator, EMResult or (model, params)
        The EM fit.
    X : array-like
        Its data (stored as observed data and used for the pointwise log-likelihood).
    draws : {None, "bootstrap", "laplace"}, default None
        Uncertainty draws to put in the posterior group: EM refits on bootstrap
        resamples, or a normal approximation at the estimate in unconstrained
        coordinates (needs a model with ``constraints``). ``None`` stores the estimate
        as a single draw.
    n_draws : int, default 200
        Number of draws.
    random_seed : int, optional
        Seed of the resampling or normal draws.
    model : optional
        The latent_em model, when ``fitted`` is an EMResult of another model object.

    Returns
    -------
    arviz.InferenceData or xarray.DataTree
        Whichever the installed ArviZ uses.
    """
    from ..em import posterior

    if draws not in DRAW_KINDS:
        raise ValueError(f"draws must be one of {DRAW_KINDS}; got {draws!r}")
    if isinstance(n_draws, bool) or not isinstance(n_draws, (int, np.integer)) or n_draws < 1:
        raise ValueError(f"n_draws must be an integer >= 1; got {n_draws!r}")
    em_model, params = resolve_fit(fitted, model)
    x = resolve_data(fitted, em_model, X)
    rng = np.random.default_rng(random_seed)
    if draws == "bootstrap":
        samples = _bootstrap(em_model, params, x, int(n_draws), rng)
    elif draws == "laplace":
        samples = _laplace(em_model, params, x, int(n_draws), rng)
    else:
        samples = [params]
    per_draw = [_param_variables(s) for s in samples]
    posterior_vars = {name: np.stack([d[name] for d in per_draw])[None] for name in per_draw[0]}
    pointwise = np.stack([np.asarray(posterior(em_model, s, x)[1]) for s in samples])[None]
    _, lm = posterior(em_model, params, x)
    result = getattr(fitted, "result_", fitted)
    history = getattr(result, "history", None)
    groups: dict[str, dict[str, np.ndarray]] = {
        "posterior": posterior_vars,
        "constant_data": _param_variables(params),
        "observed_data": {"x": np.asarray(x)},
        "log_likelihood": {"x": pointwise},
    }
    if history is not None:
        groups["sample_stats"] = {"em_log_likelihood": np.asarray(history, dtype=float)[None]}
    arr = np.asarray(x)
    dims = {"x": ["obs_id", "feature"] if arr.ndim == 2 else ["obs_id"]}
    k = int(np.size(params.weights)) if hasattr(params, "weights") else -1
    dims.update(parameter_dims(groups["constant_data"], k, arr.shape[1] if arr.ndim == 2 else 1))
    attrs = {
        "latent_em_model": type(em_model).__name__,
        "em_log_likelihood": float(np.sum(lm)),
        "draws_kind": draws or "point_estimate",
        "n_draws": len(samples),
    }
    if history is not None:
        attrs["em_converged"] = int(bool(getattr(result, "converged", False)))
    return _compat.from_dict(groups, dims=dims, attrs=attrs)


def draws_to_inference_data(draws: Mapping[str, np.ndarray], **attrs: Any) -> Any:
    """ArviZ object of ``{name: (chain, draw, ...)}`` draws (e.g. a cross-check's NUTS
    draws, ``report.draws``), named like :func:`to_inference_data`'s posterior (dims
    ``component``, ``feature``, ... when ``weights`` and ``means`` or ``probs`` tell K
    and D)."""
    one = {name: np.asarray(v)[0, 0] for name, v in draws.items()}
    k = int(np.size(one["weights"])) if "weights" in one else -1
    d = next((np.shape(one[n])[-1] for n in ("means", "probs", "rates") if n in one), -1)
    dims = parameter_dims(one, k, d)
    return _compat.from_dict({"posterior": dict(draws)}, dims=dims, attrs=attrs)


def plot_forest_em_vs_nuts(
    em: Any, nuts: Any, path: str, var_names: Sequence[str] | None = None
) -> str:
    """``arviz.plot_forest`` of an EM object next to a NUTS object; PNG saved to ``path``."""
    names = list(var_names) if var_names is not None else ["weights", "means"]
    return _compat.plot_forest({"EM": em, "NUTS": nuts}, names, path)


def summary(obj: Any, var_names: Sequence[str] | None = None) -> Any:
    """``arviz.summary`` with a 94 % interval in columns ``lower`` / ``upper`` (both majors)."""
    return _compat.summary(obj, var_names)


def to_netcdf(obj: Any, path: str) -> str:
    """Save an ArviZ object to netCDF (h5netcdf); returns ``path``."""
    return _compat.to_netcdf(obj, path)


def from_netcdf(path: str) -> Any:
    """Read an ArviZ object written by :func:`to_netcdf` (by either ArviZ major)."""
    return _compat.from_netcdf(path)
