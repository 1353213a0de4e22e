"""mclust's conjugate prior on the means and covariances: MAP-EM.

Fraley & Raftery (2007), "Bayesian regularization for normal mixture estimation and
model-based clustering", Journal of Classification 24, 155-181; mclust's
``priorControl()`` / ``defaultPrior``. The prior is

* ``μ_k | Σ_k ~ N(μ_P, Σ_k / κ_P)`` for every component;
* ellipsoidal structures (full = VVV, tied = EEE): ``Σ ~ inverse-Wishart(ν_P, Λ_P)``, one
  per covariance parameter (K of them for full, one for tied);
* spherical and diagonal structures (spherical = VII, EII, diag = VVI, EEI, and the
  univariate E and V): every variance ``σ² ~ inverse-gamma(ν_P / 2, ς²_P / 2)``;

the mixing proportions have none. EM then maximizes ``log L(θ) + log p(θ)`` (MAP-EM, the
objective the driver reports and checks for monotonicity); BIC and ICL are computed from
the log-likelihood at the MAP estimate, as mclust does.

The M-step in closed form (derived from the densities above; Fraley & Raftery 2007,
section 3): ``μ_k = (n_k ȳ_k + κ_P μ_P) / (n_k + κ_P)`` and, with
``B_k = W_k + (κ_P n_k / (κ_P + n_k)) (ȳ_k - μ_P)(ȳ_k - μ_P)ᵀ`` (``W_k`` the scatter
about ``ȳ_k``),

=============  ======================================================================
structure      covariance
=============  ======================================================================
VVV (full)     ``Σ_k = (Λ_P + B_k) / (ν_P + n_k + d + 2)``
EEE (tied)     ``Σ = (Λ_P + Σ_k B_k) / (ν_P + n + K + d + 1)``
VII, V         ``σ²_k = (ς²_P + tr B_k) / (ν_P + n_k d + d + 2)``
EII, E         ``σ² = (ς²_P + Σ_k tr B_k) / (ν_P + n d + K d + 2)``
VVI (diag)     ``σ²_kj = (ς²_P + (B_k)_jj) / (ν_P + n_k + 3)``
EEI            ``σ²_j = (ς²_P + Σ_k (B_k)_jj) / (ν_P + n + K + 2)``
VEI, EVI       the structure's own M-step on ``S_k = B_k + ς²_P I``, counts
               ``n_k + ν_P + 3`` (an inverse-gamma density on every ``(Σ_k)_jj``)
EEV, VEV       the structure's own M-step on ``S_k = B_k + Λ_P``, counts
               ``n_k + ν_P + d + 2`` (an inverse-Wishart density on every ``Σ_k``)
=============  ======================================================================

For the last four the covariance part of ``Q + log p`` is the structure's maximum-
likelihood objective ``-½ Σ_k [m_k log|Σ_k| + tr(S_k Σ_k⁻¹)]`` with those scatter
matrices and counts ``m_k``, so their M-step (closed form for EVI and EEV, a generalized
step from the current covariances for VEI and VEV) is the MAP step. These are the ten
multivariate models mclust fits with a prior (``?defaultPrior``, ``?priorControl``:
"only 10 out of 14 models", those of mclust up to version 4.4). VEE, EVE, VVE and EVV have
none in mclust either, nor here: a model with a prior and one of them is refused.

Defaults (mclust's ``defaultPrior``): ``κ_P = 0.01``, ``μ_P`` the column means,
``ν_P = d + 2``, and ``Λ_P = var(X) / K^{2/d}`` (ellipsoidal) or
``ς²_P = (Σ_j var(X_j) / d) / K^{2/d}`` (spherical, diagonal; ``var(X) / K²`` in one
dimension), variances with the ``n - 1`` denominator.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from ..._lazy import lazy_module
from ..._registry import register
from .params import GaussianMixtureParams, GaussianMixtureStats

# scipy submodules on first use, so that import latent_em stays light
stats = lazy_module("scipy.stats")

__all__ = ["ConjugatePrior", "PRIOR_STRUCTURES", "map_m_step", "log_prior"]

#: structures with a conjugate prior, and whether theirs is the inverse-Wishart one:
#: mclust's ten multivariate models that take a prior (``?defaultPrior``: "only 10 out of
#: 14 models may be used in conjunction with a prior, i.e. those available in MCLUST up to
#: version 4.4": EII VII EEI VEI EVI VVI EEE EEV VEV VVV) and the univariate E and V
PRIOR_STRUCTURES: dict[str, bool] = {
    "full": True,
    "tied": True,
    "spherical": False,
    "diag": False,
    "EII": False,
    "EEI": False,
    "VEI": False,
    "EVI": False,
    "EEV": True,
    "VEV": True,
    "E": False,
    "V": False,
}

#: mclust's structures that mclust itself fits without a prior only
NO_PRIOR_IN_MCLUST = ("VEE", "EVE", "VVE", "EVV")

#: the structures whose MAP M-step is the structure's own M-step on the scatter matrices
#: ``B_k + prior scale`` with ``n_k + extra`` observations (module docstring)
_PER_COMPONENT = ("VEI", "EVI", "EEV", "VEV")


@dataclasses.dataclass(frozen=True, eq=False)
class ConjugatePrior:
    """Hyperparameters of mclust's conjugate prior.

    Attributes
    ----------
    shrinkage : float
        ``κ_P`` (0.01 by default), the prior's weight on ``mean`` in observations.
    mean : (D,) array
        ``μ_P``.
    dof : float
        ``ν_P``.
    scale : float or (D, D) array
        ``Λ_P`` (a matrix, for the full and tied structures) or ``ς²_P`` (a number, for
        the spherical and diagonal ones).
    """

    shrinkage: float
    mean: Any
    dof: float
    scale: Any

    def __post_init__(self) -> None:
        if not (np.isfinite(self.shrinkage) and self.shrinkage > 0):
            raise ValueError(f"prior shrinkage must be a positive number; got {self.shrinkage!r}")
        mean = np.asarray(self.mean, dtype=float)
        if mean.ndim != 1 or not np.all(np.isfinite(mean)):
            raise ValueError("prior mean must be a finite vector of length n_features")
        scale = np.asarray(self.scale, dtype=float)
        if scale.ndim not in (0, 2) or not np.all(np.isfinite(scale)):
            raise ValueError("prior scale must be a positive number or a (D, D) matrix")
        if scale.ndim == 0 and scale <= 0:
            raise ValueError(f"prior scale must be positive; got {float(scale)}")
        if scale.ndim == 2 and (
            scale.shape != (mean.size, mean.size) or np.linalg.eigvalsh(scale)[0] <= 0
        ):
            raise ValueError("prior scale matrix must be (D, D) and positive definite")
        if not (np.isfinite(self.dof) and self.dof > mean.size - 1):
            raise ValueError(f"prior dof must exceed n_features - 1; got {self.dof!r}")
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "scale", scale)

    @classmethod
    def default(cls, x: Any, n_components: int, covariance_type: str) -> ConjugatePrior:
        """mclust's ``defaultPrior(data, G, modelName)`` (see the module docstring)."""
        x = np.asarray(x, dtype=float)
        n, d = x.shape
        if covariance_type not in PRIOR_STRUCTURES:
            raise ValueError(_unsupported(covariance_type))
        mean = x.mean(axis=0)
        fac = (1.0 / n_components) ** (2.0 / d)
        if PRIOR_STRUCTURES[covariance_type]:
            scale = fac * (np.cov(x, rowvar=False) if n > d else np.diag(x.var(axis=0, ddof=1)))
            scale = np.atleast_2d(scale)
        else:
            scale = fac * float(np.sum(x.var(axis=0, ddof=1))) / d
        return cls(0.01, mean, d + 2.0, scale)


register(ConjugatePrior, "builtin")  # saved and loaded with the model that holds it


def _unsupported(name: str) -> str:
    why = (
        f" (mclust has none for {name} either: its prior covers EII VII EEI VEI EVI VVI EEE "
        "EEV VEV VVV, E and V)"
        if name in NO_PRIOR_IN_MCLUST
        else ""
    )
    return (
        f"prior: no conjugate prior for covariance_type={name!r}{why}; it is available for "
        f"{', '.join(PRIOR_STRUCTURES)} (VVV, EEE, VVI, VII as well)"
    )


def check_structure(prior: ConjugatePrior, name: str) -> None:
    """Raise ``ValueError`` unless ``prior`` fits structure ``name``."""
    if name not in PRIOR_STRUCTURES:
        raise ValueError(_unsupported(name))
    matrix = PRIOR_STRUCTURES[name]
    if matrix != (prior.scale.ndim == 2):
        what = "a (D, D) matrix" if matrix else "a positive number"
        raise ValueError(f"prior scale must be {what} for covariance_type={name!r}")


def map_m_step(
    model: Any, params: GaussianMixtureParams, stats_: GaussianMixtureStats
) -> GaussianMixtureParams:
    """The MAP M-step (module docstring): the maximizer of ``Q(θ) + log p(θ)``."""
    prior: ConjugatePrior = model.prior
    name = model.covariance_type
    counts = np.asarray(stats_.counts, dtype=float)
    k, d = np.shape(params.means)
    kappa, nu, scale = prior.shrinkage, prior.dof, prior.scale
    safe = np.where(counts > 0, counts, 1.0)
    delta = np.where(counts[:, None] > 0, stats_.sum_dx / safe[:, None], 0.0)
    ybar = np.asarray(params.means, dtype=float) + delta
    means = (counts[:, None] * ybar + kappa * prior.mean) / (counts + kappa)[:, None]
    e = ybar - prior.mean
    c = kappa * counts / (kappa + counts)
    correction = c[:, None, None] * np.einsum("kd,ke->kde", e, e) - counts[:, None, None] * (
        np.einsum("kd,ke->kde", delta, delta)
    )
    b = stats_.sum_dxdx + model.covariance.reduce_second(correction)
    n = counts.sum()
    if name == "full":
        cov = (scale + b) / (nu + counts + d + 2.0)[:, None, None]
    elif name == "tied":
        cov = (scale + b) / (nu + n + k + d + 1.0)
    elif name in ("spherical", "V"):
        var = (scale + (b if name == "spherical" else b[:, 0, 0])) / (nu + counts * d + d + 2.0)
        cov = var if name == "spherical" else var[:, None, None] * np.ones((1, 1, 1))
    elif name == "diag":
        cov = (scale + b) / (nu + counts + 3.0)[:, None]
    elif name in _PER_COMPONENT:
        cov = _per_component(model, params, counts, b, prior)
    elif name in ("EII", "E"):
        var = (scale + np.trace(b, axis1=1, axis2=2).sum()) / (nu + n * d + k * d + 2.0)
        cov = np.broadcast_to(var * np.eye(d), (k, d, d)).copy()
    else:  # EEI
        var = (scale + np.diagonal(b, axis1=1, axis2=2).sum(axis=0)) / (nu + n + k + 2.0)
        cov = np.broadcast_to(np.diag(var), (k, d, d)).copy()
    if PRIOR_STRUCTURES[name]:
        cov = 0.5 * (cov + np.swapaxes(cov, -1, -2))
    weights = counts / n
    return GaussianMixtureParams(weights, means, cov)


def _per_component(
    model: Any,
    params: GaussianMixtureParams,
    counts: np.ndarray,
    b: np.ndarray,
    prior: ConjugatePrior,
) -> np.ndarray:
    """VEI, EVI (an inverse-gamma density on every diagonal entry of every ``Σ_k``) and
    EEV, VEV (an inverse-Wishart density on every ``Σ_k``): the covariance part of
    ``Q + log p`` is ``-½ Σ_k [(n_k + e) log|Σ_k| + tr(S_k Σ_k⁻¹)]`` with
    ``S_k = B_k + ς²_P I, e = ν_P + 3`` or ``S_k = B_k + Λ_P, e = ν_P + d + 2``, the
    structure's own maximum-likelihood objective on those scatter matrices and counts; its
    M-step (closed form, or a generalized step from the current covariances) follows."""
    d = b.shape[-1]
    if PRIOR_STRUCTURES[model.covariance_type]:
        scatter = b + prior.scale
        extra = prior.dof + d + 2.0
    else:
        scatter = b + float(prior.scale) * np.eye(d)
        extra = prior.dof + 3.0
    scatter = 0.5 * (scatter + np.swapaxes(scatter, -1, -2))
    n = counts + extra
    k = counts.shape[0]
    return model.covariance.estimate_from(
        n,
        np.ones(k, dtype=bool),
        np.zeros((k, d)),
        scatter,
        0.0,
        np.asarray(params.covariances, dtype=float),
        0.0,
    )


def log_prior(model: Any, params: GaussianMixtureParams) -> float:
    """``log p(θ)`` under the prior (normalized densities, scipy's)."""
    prior: ConjugatePrior = model.prior
    name = model.covariance_type
    k, d = np.shape(params.means)
    cov = np.asarray(params.covariances, dtype=float)
    full = model.covariance.to_full(cov, k, d)
    total = 0.0
    for j in range(k):
        total += stats.multivariate_normal(prior.mean, full[j] / prior.shrinkage).logpdf(
            params.means[j]
        )
    nu = prior.dof
    if name in ("full", "EEV", "VEV"):
        wishart = stats.invwishart(df=nu, scale=prior.scale)
        total += sum(float(wishart.logpdf(c)) for c in cov) if d > 1 else 0.0
        if d == 1:
            total += float(np.sum(stats.invgamma(nu / 2, scale=prior.scale[0, 0] / 2).logpdf(cov)))
    elif name == "tied":
        if d > 1:
            total += float(stats.invwishart(df=nu, scale=prior.scale).logpdf(cov))
        else:
            total += float(stats.invgamma(nu / 2, scale=prior.scale[0, 0] / 2).logpdf(cov[0, 0]))
    else:
        gamma = stats.invgamma(nu / 2, scale=float(prior.scale) / 2)
        if name in ("spherical", "diag"):
            variances = cov
        elif name in ("VEI", "EVI"):
            variances = np.diagonal(cov, axis1=1, axis2=2)
        elif name == "V":
            variances = cov[:, 0, 0]
        elif name in ("EII", "E"):
            variances = cov[0, 0, 0]
        else:  # EEI
            variances = np.diag(cov[0])
        total += float(np.sum(gamma.logpdf(variances)))
    return float(total)
