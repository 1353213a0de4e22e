"""Equivalent PyMC models of latent_em fits.

:func:`to_pymc` builds, for a fitted latent_em model, a PyMC model whose likelihood is
*the same* observed-data likelihood ``Σ_n log Σ_k φ_k p(x_n | θ_k)`` (the latent class is
marginalized, so NUTS never sees a discrete variable) under weak priors. The likelihood
is one ``pm.Potential`` named ``"log_likelihood"``, written row-wise with an explicit
log-sum-exp: ``pm.Mixture`` of Bernoulli components would mix every *cell* separately
(a different model, see ``docs/compare-with-pymc.md``).

Builders are registered per model class (:func:`register_pymc`), by the class itself or
lazily by its qualified name, so a custom model provides its own. A builder returns a
:class:`PyMCModel` record: the PyMC model plus what the cross-check needs (the EM values
of the reported parameters, start values for NUTS, which axis indexes components, and
how to turn one draw back into the model's parameters).

PyMC and PyTensor are imported inside the functions: ``import latent_em`` never loads them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

__all__ = [
    "PyMCModel",
    "to_pymc",
    "build_pymc",
    "register_pymc",
    "resolve_fit",
    "resolve_data",
    "gaussian_mixture_pymc",
    "bernoulli_mixture_pymc",
    "poisson_mixture_pymc",
    "categorical_mixture_pymc",
    "gaussian_mixture_builder",
    "bernoulli_mixture_builder",
    "poisson_mixture_builder",
    "categorical_mixture_builder",
]

#: name of the observed variable of every built model: its log-density summed over the
#: rows is latent_em's observed-data log-likelihood (and its pointwise values are what
#: ``pm.compute_log_likelihood`` and ``az.loo`` use)
OBSERVED = "x"
#: the variable holding the log-likelihood (the observed variable)
LOG_LIKELIHOOD = OBSERVED


@dataclasses.dataclass(frozen=True)
class PyMCModel:
    """A PyMC model equivalent to a latent_em fit, and what the cross-check needs.

    Attributes
    ----------
    model : pymc.Model
        The model; its ``"log_likelihood"`` potential is ``Σ_n log p(x_n | θ)``.
    parameters : dict of str to int or None
        Reported parameters (free variables or deterministics of ``model``) and the axis
        that indexes components (``None`` for a parameter shared by all components).
    estimate : dict of str to numpy.ndarray
        EM values of the reported parameters, in the shapes PyMC stores them.
    initvals : dict of str to numpy.ndarray
        Start values of the free variables at the EM estimate (for ``pm.sample``).
    to_params : callable
        Maps one draw ``{name: value}`` of the reported parameters to the latent_em
        parameters, or ``None`` when the builder has no latent_em model.
    match_features : callable
        Maps ``{name: (..., K, ...) values}`` to a ``(K, F)`` array per draw stack,
        ``(S, K, F)``; the Hungarian relabeling compares components on these features.
    symmetric : frozenset of str
        Parameters whose last two axes form a symmetric matrix (reported as the upper
        triangle only).
    boundaries : dict of str to str
        EM values on a boundary of the parameter space (a collapsed component's variance
        at the floor, a weight or probability of 0 or 1), keyed by element label such as
        ``"covariances[2,0,0]"``, with a description in words.
    """

    model: Any
    parameters: dict[str, int | None]
    estimate: dict[str, np.ndarray]
    initvals: dict[str, np.ndarray]
    to_params: Callable[[Mapping[str, np.ndarray]], Any] | None
    match_features: Callable[[Mapping[str, np.ndarray]], np.ndarray]
    symmetric: frozenset[str] = frozenset()
    boundaries: Mapping[str, str] = dataclasses.field(default_factory=dict)


Builder = Callable[[Any, Any, Any, Mapping[str, Any] | None], PyMCModel]

#: registered builders: keys are classes or fully qualified class names
_REGISTRY: dict[type | str, Builder] = {}


def register_pymc(key: type | str, builder: Builder | None = None) -> Any:
    """Register the PyMC builder of a model class (also usable as a decorator).

    Parameters
    ----------
    key : type or str
        The model class, or its qualified name ``"package.module.ClassName"`` (lazy
        registration: the class need not be importable when registering).
    builder : callable, optional
        ``builder(model, params, x, priors) -> PyMCModel``. Omit to use as a decorator.

    Examples
    --------
    >>> from latent_em.bridges.pymc import register_pymc
    >>> @register_pymc("mypackage.models.MyMixture")       # doctest: +SKIP
    ... def my_mixture_pymc(model, params, x, priors):
    ...     ...
    """
    if not isinstance(key, (type, str)):
        raise TypeError(f"key must be a class or a qualified class name; got {key!r}")

    def decorate(fn: Builder) -> Builder:
        if not callable(fn):
            raise TypeError(f"builder must be callable; got {fn!r}")
        _REGISTRY[key] = fn
        return fn

    return decorate if builder is None else decorate(builder)


def _find_builder(model: Any) -> Builder:
    for cls in type(model).__mro__:
        for key in (cls, f"{cls.__module__}.{cls.__qualname__}"):
            if key in _REGISTRY:
                return _REGISTRY[key]
    raise TypeError(
        f"no PyMC builder registered for {type(model).__module__}.{type(model).__qualname__}; "
        "register one with latent_em.bridges.register_pymc"
    )


def resolve_fit(fitted: Any, model: Any = None) -> tuple[Any, Any]:
    """``(model, params)`` of a fitted estimator, an ``EMResult`` or a ``(model, params)`` pair.

    Raises
    ------
    TypeError
        If ``fitted`` is none of these (the message names the argument).
    """
    if hasattr(fitted, "model_") and hasattr(fitted, "params_"):
        return fitted.model_, fitted.params_
    if hasattr(fitted, "get_params") and hasattr(fitted, "_make_model"):
        from ..exceptions import NotFittedError

        raise NotFittedError(f"fitted: this {type(fitted).__name__} is not fitted yet")
    if hasattr(fitted, "params") and hasattr(fitted, "history"):
        return (model if model is not None else fitted.model), fitted.params
    if isinstance(fitted, tuple) and len(fitted) == 2:
        return fitted
    raise TypeError(
        "fitted must be a fitted estimator, an EMResult or a (model, params) pair; got "
        f"{type(fitted).__name__}"
    )


def resolve_data(fitted: Any, em_model: Any, X: Any) -> Any:
    """Data as the model sees it: through the estimator's own conversion (category codes,
    feature checks) when ``fitted`` is an estimator, else the model's ``check_data``."""
    if hasattr(fitted, "_check_predict_data") and hasattr(fitted, "model_"):
        return fitted._check_predict_data(X)
    return em_model.check_data(X) if hasattr(em_model, "check_data") else X


def build_pymc(
    fitted: Any, X: Any, priors: Mapping[str, Any] | None = None, *, model: Any = None
) -> PyMCModel:
    """The :class:`PyMCModel` record for a fit (see :func:`to_pymc`)."""
    em_model, params = resolve_fit(fitted, model)
    if priors is not None and not isinstance(priors, Mapping):
        raise TypeError(f"priors must be a mapping of prior settings; got {type(priors).__name__}")
    x = resolve_data(fitted, em_model, X)
    return _find_builder(em_model)(em_model, params, x, priors)


def to_pymc(
    fitted: Any, X: Any, priors: Mapping[str, Any] | None = None, *, model: Any = None
) -> Any:
    """The PyMC model equivalent to an EM fit: same likelihood, weak priors.

    Parameters
    ----------
    fitted : estimator, EMResult or (model, params)
        A fitted latent_em estimator, an :class:`~latent_em.EMResult` (its ``model`` is
        used unless ``model`` is given) or a ``(model, params)`` pair.
    X : array-like
        The data the likelihood is evaluated on (usually the training data).
    priors : mapping, optional
        Overrides of the default prior settings of the model's builder (unknown keys
        raise ``ValueError``). Defaults are listed in ``docs/compare-with-pymc.md``.

    Returns
    -------
    pymc.Model
        With the free parameters, deterministics for the reported parameters, and the
        potential ``"log_likelihood"`` equal to latent_em's log-likelihood.
    """
    return build_pymc(fitted, X, priors, model=model).model


# ----------------------------------------------------------------------------- helpers


def _settings(priors: Mapping[str, Any] | None, defaults: dict[str, Any]) -> dict[str, Any]:
    out = dict(defaults)
    for key, value in (priors or {}).items():
        if key not in defaults:
            raise ValueError(f"priors: unknown setting {key!r}; valid settings: {sorted(defaults)}")
        out[key] = value
    return out


def _logsumexp_rows(table: Any) -> Any:
    """Row-wise log-sum-exp of an ``(n, K)`` tensor, shape ``(n,)``.

    Written out because ``pm.math.logsumexp``'s dimension handling changed between
    PyTensor versions (see ``pymc-notes``); the max is detached-safe for -inf rows.
    """
    import pytensor.tensor as pt

    top = pt.max(table, axis=1, keepdims=True)
    top = pt.switch(pt.isinf(top), 0.0, top)
    return pt.log(pt.sum(pt.exp(table - top), axis=1)) + top[:, 0]


def _coords(k: int, d: int, n: int) -> dict[str, Any]:
    """Named coordinates of a built model (ArviZ objects carry them as labels)."""
    return {
        "component": np.arange(k),
        "feature": np.arange(d),
        "feature_bis": np.arange(d),
        "obs_id": np.arange(n),
    }


def _simplex_start(w: np.ndarray) -> np.ndarray:
    # NUTS works on the stick-breaking transform, which needs interior points
    w = np.clip(np.asarray(w, dtype=float), 1e-10, None)
    return w / w.sum(axis=-1, keepdims=True)


def _interior(p: np.ndarray, eps: float = 1e-9) -> np.ndarray:
    return np.clip(np.asarray(p, dtype=float), eps, 1.0 - eps)


def _check_weights(weights: Any) -> np.ndarray:
    w = np.asarray(weights, dtype=float)
    if w.ndim != 1 or w.size < 1 or not np.all(np.isfinite(w)) or np.any(w < 0):
        raise ValueError(f"weights must be a non-negative vector of shape (K,); got {w!r}")
    if abs(w.sum() - 1.0) > 1e-6:
        raise ValueError(f"weights must sum to one; they sum to {w.sum():.8g}")
    return w


def _integer_matrix(x: Any, name: str = "X") -> np.ndarray:
    arr = np.asarray(x)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2 or arr.shape[0] == 0:
        raise ValueError(f"{name} must be a non-empty (n, D) matrix; got shape {arr.shape}")
    if not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr)):
        raise ValueError(f"{name} must hold integer codes")
    return arr.astype(np.int64)


def _label(name: str, idx: tuple[int, ...]) -> str:
    return f"{name}[{','.join(map(str, idx))}]" if idx else name


def _unit_boundaries(name: str, values: np.ndarray, what: str, eps: float = 1e-8) -> dict:
    """Elements of a probability-like parameter at exactly 0 or 1 (within ``eps``)."""
    out = {}
    for idx in zip(*np.nonzero((values <= eps) | (values >= 1.0 - eps)), strict=True):
        idx = tuple(int(i) for i in idx)
        v = float(values[idx])
        out[_label(name, idx)] = (
            f"EM {what} {_label(name, idx)} = {v:.3g} on the boundary of [0, 1]"
        )
    return out


def _weight_boundaries(w: np.ndarray, eps: float = 1e-8) -> dict[str, str]:
    return {
        f"weights[{k}]": f"EM weight of component {k} is {w[k]:.3g}: an empty component"
        for k in np.flatnonzero(w <= eps)
    }


def _variance_boundaries(
    cov: np.ndarray, covariance_type: str, floor: float, scale: np.ndarray
) -> dict[str, str]:
    """Components whose smallest variance sits at the floor (collapsed onto a point or a
    lower-dimensional set): keyed by the smallest diagonal element of the component."""
    # reg_covar adds the floor to every variance; an exact zero floor is a tiny relative one
    limit = max(floor * (1.0 + 1e-3), 1e-10 * float(np.min(scale**2)))
    out = {}
    comps: list[tuple[tuple[int, ...], float, float]]
    if covariance_type == "spherical":
        comps = [((k,), float(cov[k]), float(cov[k])) for k in range(cov.shape[0])]
    elif covariance_type == "diag":
        comps = [
            ((k, int(np.argmin(c))), float(c.min()), float(c.min())) for k, c in enumerate(cov)
        ]
    else:
        mats = cov[None] if covariance_type == "tied" else cov
        comps = []
        for k, c in enumerate(mats):
            j = int(np.argmin(np.diag(c)))
            idx: tuple[int, ...] = (j, j) if covariance_type == "tied" else (k, j, j)
            comps.append((idx, float(np.linalg.eigvalsh(c)[0]), float(c[j, j])))
    for idx, smallest, _ in comps:
        if smallest <= limit:
            who = "the tied covariance" if covariance_type == "tied" else f"component {idx[0]}"
            out[_label("covariances", idx)] = (
                f"{who} collapsed: smallest variance {smallest:.3g} at the floor "
                f"({floor:g}; a component on one point or a lower-dimensional set)"
            )
    return out


# Row-wise mixture densities of the discrete models, for pm.CustomDist: ``value`` is the
# (n, D) data, the result the (n,) log-density of every row. pm.Mixture of Bernoulli or
# Poisson components would mix every cell separately (a different model, pymc-notes).


def _bernoulli_mixture_logp(value: Any, weights: Any, probs: Any) -> Any:
    import pytensor.tensor as pt

    xb = pt.cast(value, "float64")[..., None, :]  # (n, 1, D)
    # broadcast sums rather than pt.dot: a Dot op makes PyTensor look for BLAS and warn
    comp = (xb * pt.log(probs) + (1.0 - xb) * pt.log1p(-probs)).sum(axis=-1)
    return _logsumexp_rows(pt.log(weights) + comp)


def _poisson_mixture_logp(value: Any, weights: Any, rates: Any) -> Any:
    import pytensor.tensor as pt

    xf = pt.cast(value, "float64")
    comp = (xf[..., None, :] * pt.log(rates)).sum(axis=-1) - rates.sum(axis=-1)
    log_fact = pt.gammaln(xf + 1.0).sum(axis=-1)
    return _logsumexp_rows(pt.log(weights) + comp) - log_fact


def _categorical_mixture_logp(value: Any, columns: Any, weights: Any, *tables: Any) -> Any:
    import pytensor.tensor as pt

    # PyMC may hand the parameters broadcast to the rows ((n, K), (n, K, C_j)): select
    # log π_{k j x_nj} by a one-hot mask over the levels, which works either way
    table = pt.log(weights)
    for j, pj in enumerate(tables):
        levels = pt.arange(pj.shape[-1])
        onehot = pt.eq(value[:, j][:, None, None], levels)  # (n, 1, C_j)
        table = table + pt.switch(onehot, pt.log(pj), 0.0).sum(axis=-1)
    return _logsumexp_rows(table)


# PyMC calls the random functions with the parameters broadcast to its batch shape
# (e.g. weights (1, K) and probs (1, K, D) for ``size=(n,)``): draw the component labels
# and pick their parameters by broadcasting, never by assuming core shapes.


def _labels(weights: np.ndarray, rng: np.random.Generator, size: Any) -> np.ndarray:
    """One component label per row: shape ``size`` (or the batch shape of ``weights``)."""
    w = np.asarray(weights, dtype=float)
    shape = tuple(np.atleast_1d(size)) if size is not None else w.shape[:-1]
    cum = np.cumsum(np.broadcast_to(w, (*shape, w.shape[-1])), axis=-1)
    u = rng.random(shape)[..., None] * cum[..., -1:]
    return np.minimum((u > cum).sum(axis=-1), w.shape[-1] - 1)


def _pick(param: np.ndarray, z: np.ndarray) -> np.ndarray:
    """``param[..., z, :]`` per row: ``(..., K, C)`` parameters, labels of shape ``z.shape``."""
    p = np.asarray(param)
    p = np.broadcast_to(p, (*z.shape, *p.shape[-2:]))
    return np.take_along_axis(p, z[..., None, None], axis=-2)[..., 0, :]


def _bernoulli_mixture_random(
    weights: np.ndarray, probs: np.ndarray, rng: np.random.Generator, size: Any = None
) -> np.ndarray:
    p = _pick(probs, _labels(weights, rng, size))
    return (rng.random(p.shape) < p).astype(np.int64)


def _poisson_mixture_random(
    weights: np.ndarray, rates: np.ndarray, rng: np.random.Generator, size: Any = None
) -> np.ndarray:
    return rng.poisson(_pick(rates, _labels(weights, rng, size))).astype(np.int64)


def _categorical_mixture_random(
    columns: np.ndarray,
    weights: np.ndarray,
    *tables: np.ndarray,
    rng: np.random.Generator,
    size: Any = None,
) -> np.ndarray:
    z = _labels(weights, rng, size)
    cols = []
    for pj in tables:
        cum = np.cumsum(_pick(pj, z), axis=-1)
        u = rng.random(z.shape)[..., None] * cum[..., -1:]
        cols.append(np.minimum((u > cum).sum(axis=-1), cum.shape[-1] - 1))
    return np.stack(cols, axis=-1).astype(np.int64)


def _replace(params: Any, fields: Sequence[str]) -> Callable[[Mapping[str, np.ndarray]], Any]:
    def to_params(values: Mapping[str, np.ndarray]) -> Any:
        if params is None:
            return None
        return params._replace(**{f: values[f] for f in fields})

    return to_params


# ----------------------------------------------------------------------------- Gaussian


def gaussian_mixture_pymc(
    weights: Any,
    means: Any,
    covariances: Any,
    x: Any,
    covariance_type: str = "full",
    priors: Mapping[str, Any] | None = None,
    *,
    params: Any = None,
    variance_floor: float = 0.0,
) -> PyMCModel:
    """PyMC Gaussian mixture ``Σ_k φ_k N(x; μ_k, Σ_k)`` at an EM estimate.

    Parameters
    ----------
    weights : (K,)
    means : (K, D)
    covariances : array
        ``(K, D, D)`` full, ``(D, D)`` tied, ``(K, D)`` diag, ``(K,)`` spherical.
    x : (n, D)
    covariance_type : {"full", "tied", "diag", "spherical"}
    priors : mapping, optional
        ``weights_concentration`` (Dirichlet α, default 1), ``means_mu`` (default the
        column means), ``means_sigma`` (default 10 × the column sds), ``sd_sigma``
        (half-normal scale of the component standard deviations, default 10 × the
        column sds), ``lkj_eta`` (LKJ shape of the correlations, default 2).
    params : GaussianMixtureParams, optional
        Template used to map draws back to latent_em parameters.
    variance_floor : float, default 0
        The fit's variance floor (``reg_covar``): a component whose smallest variance sits
        there collapsed, which the cross-check reports as a boundary estimate.
    """
    import pymc as pm
    import pytensor.tensor as pt

    x = np.asarray(x, dtype=float)
    if x.ndim != 2:
        raise ValueError(f"x must be an (n, D) matrix; got shape {x.shape}")
    w = _check_weights(weights)
    mu = np.asarray(means, dtype=float)
    cov = np.asarray(covariances, dtype=float)
    k, d = mu.shape[0], x.shape[1]
    if mu.shape != (k, d) or w.shape != (k,):
        raise ValueError(f"means must have shape (K, D) = ({w.size}, {d}); got {mu.shape}")
    expected = {"full": (k, d, d), "tied": (d, d), "diag": (k, d), "spherical": (k,)}
    if covariance_type not in expected:
        raise ValueError(
            f"covariance_type must be one of {sorted(expected)}; got {covariance_type!r}"
        )
    if cov.shape != expected[covariance_type]:
        raise ValueError(
            f"covariances for covariance_type={covariance_type!r} must have shape "
            f"{expected[covariance_type]}; got {cov.shape}"
        )
    col_sd = np.std(x, axis=0)
    col_sd = np.where(col_sd > 0, col_sd, 1.0)
    s = _settings(
        priors,
        {
            "weights_concentration": 1.0,
            "means_mu": x.mean(axis=0),
            "means_sigma": 10.0 * col_sd,
            "sd_sigma": 10.0 * col_sd,
            "lkj_eta": 2.0,
        },
    )
    sd_sigma = np.broadcast_to(np.asarray(s["sd_sigma"], dtype=float), (d,))
    initvals: dict[str, np.ndarray] = {"weights": _simplex_start(w), "means": mu.copy()}
    # full and tied covariances in one dimension are just variances
    structured = covariance_type in ("full", "tied") and d > 1
    with pm.Model(coords=_coords(k, d, len(x))) as model:
        weights_rv = pm.Dirichlet(
            "weights", a=np.full(k, float(s["weights_concentration"])), dims="component"
        )
        means_rv = pm.Normal(
            "means", mu=s["means_mu"], sigma=s["means_sigma"], dims=("component", "feature")
        )
        if structured:
            n_chol = k if covariance_type == "full" else 1
            covs = cov if covariance_type == "full" else cov[None]
            rows, cols = np.tril_indices(d)
            chols = []
            for j in range(n_chol):
                name = f"chol_cov_{j}" if covariance_type == "full" else "chol_cov"
                packed = pm.LKJCholeskyCov(
                    name,
                    n=d,
                    eta=float(s["lkj_eta"]),
                    sd_dist=pm.HalfNormal.dist(sigma=sd_sigma, shape=d),
                    compute_corr=False,
                )
                chols.append(pm.math.expand_packed_triangular(d, packed, lower=True))
                initvals[name] = np.linalg.cholesky(covs[j])[rows, cols]
            if covariance_type == "full":
                chol = pt.stack(chols)
                pm.Deterministic(
                    "covariances",
                    pt.matmul(chol, chol.transpose(0, 2, 1)),
                    dims=("component", "feature", "feature_bis"),
                )
                comp_chols = [chol[j] for j in range(k)]
            else:
                pm.Deterministic(
                    "covariances", pt.dot(chols[0], chols[0].T), dims=("feature", "feature_bis")
                )
                comp_chols = [chols[0]] * k
        else:
            if covariance_type == "diag":
                sd = pm.HalfNormal(
                    "sd", sigma=np.broadcast_to(sd_sigma, (k, d)), dims=("component", "feature")
                )
                pm.Deterministic("covariances", sd**2, dims=("component", "feature"))
                initvals["sd"] = np.sqrt(cov)
                sds = [sd[j] for j in range(k)]
            elif covariance_type == "spherical":
                sd = pm.HalfNormal("sd", sigma=float(sd_sigma.max()), dims="component")
                pm.Deterministic("covariances", sd**2, dims="component")
                initvals["sd"] = np.sqrt(cov)
                sds = [pt.ones(d) * sd[j] for j in range(k)]
            elif covariance_type == "full":  # d == 1
                sd = pm.HalfNormal("sd", sigma=float(sd_sigma[0]), dims="component")
                pm.Deterministic(
                    "covariances",
                    (sd**2)[:, None, None],
                    dims=("component", "feature", "feature_bis"),
                )
                initvals["sd"] = np.sqrt(cov[:, 0, 0])
                sds = [pt.ones(d) * sd[j] for j in range(k)]
            else:  # tied, d == 1
                sd = pm.HalfNormal("sd", sigma=float(sd_sigma[0]))
                pm.Deterministic(
                    "covariances", pt.reshape(sd**2, (1, 1)), dims=("feature", "feature_bis")
                )
                initvals["sd"] = np.asarray(np.sqrt(cov[0, 0]))
                sds = [pt.ones(d) * sd for _ in range(k)]
            comp_chols = [pt.diag(v) for v in sds]
        if d == 1:
            # one feature: the univariate normal mixture (PyMC's own NormalMixture)
            sigma = pt.stack([c[0, 0] for c in comp_chols])
            pm.NormalMixture(
                OBSERVED,
                w=weights_rv,
                mu=means_rv[:, 0],
                sigma=sigma,
                observed=x[:, 0],
                dims="obs_id",
            )
        else:
            # multivariate components mix whole rows (univariate ones would mix every cell)
            pm.Mixture(
                OBSERVED,
                w=weights_rv,
                comp_dists=[pm.MvNormal.dist(mu=means_rv[j], chol=comp_chols[j]) for j in range(k)],
                observed=x,
                dims=("obs_id", "feature"),
            )

    scale = col_sd

    def match_features(values: Mapping[str, np.ndarray]) -> np.ndarray:
        # components are told apart by their standardized means (and weights)
        m = np.asarray(values["means"]) / scale
        return np.concatenate([m, np.asarray(values["weights"])[..., None]], axis=-1)

    return PyMCModel(
        model=model,
        parameters={
            "weights": 0,
            "means": 0,
            "covariances": None if covariance_type == "tied" else 0,
        },
        estimate={"weights": w, "means": mu, "covariances": cov},
        initvals=initvals,
        to_params=_replace(params, ("weights", "means", "covariances")),
        match_features=match_features,
        symmetric=frozenset({"covariances"} if covariance_type in ("full", "tied") else ()),
        boundaries={
            **_weight_boundaries(w),
            **_variance_boundaries(cov, covariance_type, float(variance_floor), col_sd),
        },
    )


def gaussian_mixture_builder(
    model: Any, params: Any, x: Any, priors: Mapping[str, Any] | None
) -> PyMCModel:
    """Registered builder of ``GaussianMixtureModel``."""
    if model.covariance.uses_current:
        raise NotImplementedError(
            f"to_pymc does not support covariance_type={model.covariance_type!r}: mclust's "
            "parsimonious structures other than VVV, EEE, VVI, VII (full, tied, diag, "
            "spherical) have no PyMC form in latent_em"
        )
    return gaussian_mixture_pymc(
        params.weights,
        params.means,
        params.covariances,
        x,
        model.covariance_type,
        priors,
        params=params,
        variance_floor=float(getattr(model, "reg_covar", 0.0) or 0.0),
    )


register_pymc("latent_em.models.gaussian.model.GaussianMixtureModel", gaussian_mixture_builder)


# ----------------------------------------------------------------------------- discrete


def bernoulli_mixture_pymc(
    weights: Any,
    probs: Any,
    x: Any,
    priors: Mapping[str, Any] | None = None,
    *,
    params: Any = None,
) -> PyMCModel:
    """PyMC latent class model ``Σ_k φ_k Π_d p_kd^x_nd (1 - p_kd)^(1 - x_nd)``.

    Parameters
    ----------
    weights : (K,)
    probs : (K, D)
    x : (n, D) of 0/1
    priors : mapping, optional
        ``weights_concentration`` (Dirichlet α, default 1), ``probs_alpha`` and
        ``probs_beta`` (Beta prior of every probability, default 1 and 1).
    params : BernoulliMixtureParams, optional
        Template used to map draws back to latent_em parameters.
    """
    import pymc as pm

    w = _check_weights(weights)
    p = np.asarray(probs, dtype=float)
    xi = _integer_matrix(x, "x")
    k, d = w.size, xi.shape[1]
    if p.shape != (k, d):
        raise ValueError(f"probs must have shape (K, D) = ({k}, {d}); got {p.shape}")
    if np.any((xi != 0) & (xi != 1)):
        raise ValueError("x must hold 0/1 values for a Bernoulli mixture")
    s = _settings(priors, {"weights_concentration": 1.0, "probs_alpha": 1.0, "probs_beta": 1.0})
    with pm.Model(coords=_coords(k, d, len(xi))) as model:
        weights_rv = pm.Dirichlet(
            "weights", a=np.full(k, float(s["weights_concentration"])), dims="component"
        )
        probs_rv = pm.Beta(
            "probs", alpha=s["probs_alpha"], beta=s["probs_beta"], dims=("component", "feature")
        )
        pm.CustomDist(
            OBSERVED,
            weights_rv,
            probs_rv,
            logp=_bernoulli_mixture_logp,
            random=_bernoulli_mixture_random,
            signature="(k),(k,d)->(d)",
            dtype="int64",
            observed=xi,
            dims=("obs_id", "feature"),
        )

    def match_features(values: Mapping[str, np.ndarray]) -> np.ndarray:
        return np.asarray(values["probs"])

    return PyMCModel(
        model=model,
        parameters={"weights": 0, "probs": 0},
        estimate={"weights": w, "probs": p},
        initvals={"weights": _simplex_start(w), "probs": _interior(p)},
        to_params=_replace(params, ("weights", "probs")),
        match_features=match_features,
        boundaries={**_weight_boundaries(w), **_unit_boundaries("probs", p, "probability")},
    )


def poisson_mixture_pymc(
    weights: Any,
    rates: Any,
    x: Any,
    priors: Mapping[str, Any] | None = None,
    *,
    params: Any = None,
) -> PyMCModel:
    """PyMC Poisson mixture ``Σ_k φ_k Π_d Poisson(x_nd; λ_kd)``.

    Parameters
    ----------
    weights : (K,)
    rates : (K, D)
    x : (n, D) of non-negative counts
    priors : mapping, optional
        ``weights_concentration`` (Dirichlet α, default 1), ``rates_alpha`` (Gamma shape,
        default 1) and ``rates_beta`` (Gamma rate, default 1 / (10 × column mean)).
    params : PoissonMixtureParams, optional
        Template used to map draws back to latent_em parameters.
    """
    import pymc as pm

    w = _check_weights(weights)
    lam = np.asarray(rates, dtype=float)
    xi = _integer_matrix(x, "x")
    k, d = w.size, xi.shape[1]
    if lam.shape != (k, d):
        raise ValueError(f"rates must have shape (K, D) = ({k}, {d}); got {lam.shape}")
    if np.any(xi < 0):
        raise ValueError("x must hold non-negative counts for a Poisson mixture")
    col_mean = np.maximum(xi.mean(axis=0), 1e-3)
    s = _settings(
        priors,
        {"weights_concentration": 1.0, "rates_alpha": 1.0, "rates_beta": 0.1 / col_mean},
    )
    with pm.Model(coords=_coords(k, d, len(xi))) as model:
        weights_rv = pm.Dirichlet(
            "weights", a=np.full(k, float(s["weights_concentration"])), dims="component"
        )
        rates_rv = pm.Gamma(
            "rates",
            alpha=s["rates_alpha"],
            beta=np.broadcast_to(np.asarray(s["rates_beta"], dtype=float), (k, d)),
            dims=("component", "feature"),
        )
        pm.CustomDist(
            OBSERVED,
            weights_rv,
            rates_rv,
            logp=_poisson_mixture_logp,
            random=_poisson_mixture_random,
            signature="(k),(k,d)->(d)",
            dtype="int64",
            observed=xi,
            dims=("obs_id", "feature"),
        )

    def match_features(values: Mapping[str, np.ndarray]) -> np.ndarray:
        return np.log(np.asarray(values["rates"]))

    return PyMCModel(
        model=model,
        parameters={"weights": 0, "rates": 0},
        estimate={"weights": w, "rates": lam},
        initvals={"weights": _simplex_start(w), "rates": np.maximum(lam, 1e-10)},
        to_params=_replace(params, ("weights", "rates")),
        match_features=match_features,
        boundaries={
            **_weight_boundaries(w),
            **{
                _label(
                    "rates", tuple(map(int, idx))
                ): f"EM rate {_label('rates', tuple(map(int, idx)))} = 0 on the boundary"
                for idx in zip(*np.nonzero(lam <= 1e-8), strict=True)
            },
        },
    )


def categorical_mixture_pymc(
    weights: Any,
    probs: Sequence[Any],
    x: Any,
    priors: Mapping[str, Any] | None = None,
    *,
    params: Any = None,
) -> PyMCModel:
    """PyMC latent class model for categorical data ``Σ_k φ_k Π_j π_{k j x_nj}``.

    Parameters
    ----------
    weights : (K,)
    probs : sequence of (K, C_j) arrays, one per column
    x : (n, J) integer codes ``0 .. C_j - 1``
    priors : mapping, optional
        ``weights_concentration`` (Dirichlet α, default 1) and ``probs_concentration``
        (Dirichlet α of every response distribution, default 1).
    params : CategoricalMixtureParams, optional
        Template used to map draws back to latent_em parameters (``probs_j`` → ``probs``).
    """
    import pymc as pm

    w = _check_weights(weights)
    k = w.size
    xi = _integer_matrix(x, "x")
    tables = [np.asarray(p, dtype=float) for p in probs]
    if len(tables) != xi.shape[1]:
        raise ValueError(f"probs must hold one (K, C_j) array per column of x ({xi.shape[1]})")
    for j, p in enumerate(tables):
        if p.ndim != 2 or p.shape[0] != k:
            raise ValueError(f"probs[{j}] must have shape (K, C_j) with K={k}; got {p.shape}")
        if np.any(xi[:, j] < 0) or np.any(xi[:, j] >= p.shape[1]):
            raise ValueError(f"x column {j} must hold codes 0..{p.shape[1] - 1}")
    s = _settings(priors, {"weights_concentration": 1.0, "probs_concentration": 1.0})
    names = [f"probs_{j}" for j in range(len(tables))]
    coords = _coords(k, xi.shape[1], len(xi))
    coords.update({f"level_{j}": np.arange(p.shape[1]) for j, p in enumerate(tables)})
    with pm.Model(coords=coords) as model:
        weights_rv = pm.Dirichlet(
            "weights", a=np.full(k, float(s["weights_concentration"])), dims="component"
        )
        tables_rv = [
            pm.Dirichlet(
                names[j],
                a=np.full(p.shape, float(s["probs_concentration"])),
                dims=("component", f"level_{j}"),
            )
            for j, p in enumerate(tables)
        ]
        # the first parameter only carries the number of columns J (the signature cannot
        # infer the support shape (J,) from the tables)
        core = ",".join(["(j)", "(k)"] + [f"(k,c{j})" for j in range(len(tables))])
        pm.CustomDist(
            OBSERVED,
            np.zeros(len(tables)),
            weights_rv,
            *tables_rv,
            logp=_categorical_mixture_logp,
            random=_categorical_mixture_random,
            signature=f"{core}->(j)",
            dtype="int64",
            observed=xi,
            dims=("obs_id", "feature"),
        )

    def match_features(values: Mapping[str, np.ndarray]) -> np.ndarray:
        return np.concatenate([np.asarray(values[n]) for n in names], axis=-1)

    def to_params(values: Mapping[str, np.ndarray]) -> Any:
        if params is None:
            return None
        return params._replace(weights=values["weights"], probs=tuple(values[n] for n in names))

    return PyMCModel(
        model=model,
        parameters={"weights": 0, **{n: 0 for n in names}},
        estimate={"weights": w, **{n: p for n, p in zip(names, tables, strict=True)}},
        initvals={
            "weights": _simplex_start(w),
            **{n: _simplex_start(p) for n, p in zip(names, tables, strict=True)},
        },
        to_params=to_params,
        match_features=match_features,
        boundaries={
            **_weight_boundaries(w),
            **{
                k: v
                for n, p in zip(names, tables, strict=True)
                for k, v in _unit_boundaries(n, p, "response probability").items()
            },
        },
    )


def bernoulli_mixture_builder(model: Any, params: Any, x: Any, priors: Any) -> PyMCModel:
    """Registered builder of ``BernoulliMixtureModel (params: weights, probs)``."""
    return bernoulli_mixture_pymc(params.weights, params.probs, x, priors, params=params)


def poisson_mixture_builder(model: Any, params: Any, x: Any, priors: Any) -> PyMCModel:
    """Registered builder of ``PoissonMixtureModel (params: weights, rates)``."""
    return poisson_mixture_pymc(params.weights, params.rates, x, priors, params=params)


def categorical_mixture_builder(model: Any, params: Any, x: Any, priors: Any) -> PyMCModel:
    """Registered builder of ``CategoricalMixtureModel (params: weights, probs tuple)``."""
    return categorical_mixture_pymc(params.weights, params.probs, x, priors, params=params)


# Registered by qualified name: binding needs no import of the model modules here, and a
# subclass finds its parent's builder through the MRO walk in _find_builder.
register_pymc("latent_em.models.bernoulli_mixture.BernoulliMixtureModel", bernoulli_mixture_builder)
register_pymc("latent_em.models.poisson_mixture.PoissonMixtureModel", poisson_mixture_builder)
register_pymc(
    "latent_em.models.categorical_mixture.CategoricalMixtureModel", categorical_mixture_builder
)
